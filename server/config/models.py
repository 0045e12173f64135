"""The configuration file as typed models: one class per top-level section.

Field defaults here are the documented defaults (README's config reference is
checked against them by a test). Cross-references between sections are checked
in :mod:`server.config.checks`, after every section has parsed.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, PrivateAttr, field_validator, model_validator
from pydantic_core import PydanticCustomError

from server.config.source import Source
from server.config.types import (
    ClockTime,
    ClusterName,
    Flag,
    HostPort,
    Identifier,
    PublicUrl,
    SecretStr,
    ServiceId,
    TypeName,
)
from server.core.secret import Secret
from server.core.strict import StrictModel
from server.core.times import Instant
from server.core.units import ByteSize, Duration, DurationRange, SizeRange


class Section(StrictModel):
    """Unknown keys are errors: a typo must not silently fall back to a default; a value
    of the wrong YAML type is one too (:mod:`server.core.strict`)."""


class ClusterConfig(Section):
    """``clickhouse.cluster``: a name (``cluster: production``) or ``{name, sharding}``."""

    name: ClusterName
    # none: one shard, Replicated tables; service_id: per-shard tables under
    # Distributed ones, sharded by cityHash64(service_id)
    sharding: Literal["none", "service_id"] = "none"


class ClickHouseConfig(Section):
    embedded_path: str = "var/lightbulb"
    hosts: list[HostPort] = Field(default_factory=list)
    database: Identifier = "monitor"
    cluster: ClusterConfig | None = None
    user: str = "default"
    password: SecretStr = Secret("")
    secure: Flag = False
    ca_cert: str | None = None
    retention_days: int = Field(90, ge=1, le=36500)

    @field_validator("cluster", mode="before")
    @classmethod
    def _cluster_name(cls, value: Any) -> Any:
        """``cluster: production`` (the shape before sharding existed) is the name alone."""
        return {"name": value} if isinstance(value, str) else value

    @property
    def embedded(self) -> bool:
        return not self.hosts


class SloConfig(Section):
    """An availability objective: ``target`` percent of checks up over a rolling ``window``."""

    target: float = Field(gt=0, lt=100)
    # at most clickhouse.retention_days (checked in server.validation.slo)
    window: Annotated[Duration, DurationRange("1h", "365d")] = timedelta(days=30)

    @field_validator("target", mode="before")
    @classmethod
    def _percent(cls, value: Any) -> Any:
        """One wording for every refused target (100, 0, "99.9%", nan), as the fix."""
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not 0 < value < 100:  # NaN compares false: refused too
            raise PydanticCustomError(
                "lightbulb",
                'expected a percentage above 0 and below 100 like 99.9, without "%"',
            )
        return value


class ServiceConfig(Section):
    id: ServiceId
    label: str = ""
    # One of checkers.SERVICE_TYPES: checked above the registries (server/validation).
    type: TypeName
    stack: str = "default"
    # At least 1s: a shorter interval checks hundreds of times a second and reports
    # false UNKNOWNs; at most a week.
    interval: Annotated[Duration, DurationRange("1s", "7d")] = timedelta(seconds=30)
    timeout: Annotated[Duration, DurationRange("100ms", "1h")] = timedelta(seconds=10)
    enabled: Flag = True
    # DEGRADED when an OK check's response time is above the learned p99 for this
    # hour of the week, for learned_degraded_for (see baselines)
    learned_degraded: Flag = False
    learned_degraded_for: Annotated[Duration, DurationRange("1s", "1d", zero=True)] = timedelta(0)
    slo: SloConfig | None = None
    # One optional block per entry of checkers.SERVICE_TYPES (a test keeps them in step);
    # each is validated by its checker's Settings model in server.config.checks.
    python_process: dict[str, Any] | None = None
    temporal_workflow: dict[str, Any] | None = None
    http: dict[str, Any] | None = None
    tcp: dict[str, Any] | None = None
    host: dict[str, Any] | None = None
    command: dict[str, Any] | None = None
    temporal_task_queue: dict[str, Any] | None = None
    temporal_schedule: dict[str, Any] | None = None
    temporal_stuck: dict[str, Any] | None = None
    temporal_count: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _default_timeout(self) -> ServiceConfig:
        """An unset timeout is 10s, or the interval when that is shorter."""
        if "timeout" not in self.model_fields_set:
            object.__setattr__(self, "timeout", min(self.timeout, self.interval))
        return self

    @property
    def display_label(self) -> str:
        return self.label or self.id

    def block(self) -> dict[str, Any]:
        """The checker's own settings: the block named after this service's type."""
        value: dict[str, Any] | None = getattr(self, self.type)
        return dict(value) if value else {}


RelationType = Literal["depends_on", "related_to"]


class RelationConfig(Section):
    id: str = ""
    source: ServiceId
    target: ServiceId
    type: RelationType = "depends_on"
    enabled: Flag = True

    @property
    def relation_id(self) -> str:
        return self.id or f"{self.source}->{self.target}:{self.type}"


Severity = Literal["info", "warning", "critical"]


class AlertRuleConfig(Section):
    id: ServiceId
    service: str
    name: str = ""
    condition: str
    threshold: float = Field(0.0, ge=-1e15, le=1e15)
    for_: Annotated[Duration, DurationRange("1s", "7d", zero=True)] = Field(
        timedelta(0), alias="for"
    )
    severity: Severity = "warning"
    channels: list[str] = Field(default_factory=list)
    repeat_interval: Annotated[Duration, DurationRange("1s", "30d")] = timedelta(hours=4)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    enabled: Flag = True


class ChannelConfig(StrictModel):
    """``type`` plus the channel's own settings, validated by its channel module.

    ``type`` is one of ``server.notify.CHANNEL_TYPES``, checked above the registries
    (server/validation) with the settings.
    """

    model_config = ConfigDict(extra="allow", frozen=True)
    type: TypeName


class SilenceConfig(Section):
    """A maintenance window: alerts it matches are recorded but not sent.

    ``service`` and/or ``rule`` select the alerts; ``start``/``end`` give one
    window, ``cron`` + ``duration`` a recurring one (a window opens at each
    cron time, in ``timezone``).
    """

    id: str = ""
    service: str | None = None
    rule: str | None = None
    start: Instant | None = None
    end: Instant | None = None
    cron: str | None = None
    duration: Annotated[Duration, DurationRange("1s", "365d")] | None = None
    timezone: str = "UTC"
    author: str = "config"
    comment: str = ""


class FlappingConfig(Section):
    """Nagios-style: weighted share of state changes over the last ``window`` checks."""

    window: int = Field(21, ge=3, le=1000)
    high: float = Field(0.5, gt=0, le=1)
    low: float = Field(0.25, ge=0, le=1)


class AlertingConfig(Section):
    group_wait: Annotated[Duration, DurationRange("1ms", "10m", zero=True)] = timedelta(
        milliseconds=500
    )
    # Transient delivery failures are retried until this long after a notice was queued.
    delivery_deadline: Annotated[Duration, DurationRange("1s", "7d")] = timedelta(hours=1)
    # Optional cap on retries before the deadline (None: the deadline alone decides).
    retries: int | None = Field(None, ge=0, le=100)
    retry_backoff: Annotated[Duration, DurationRange("10ms", "1h")] = timedelta(seconds=1)
    retry_max_backoff: Annotated[Duration, DurationRange("10ms", "1d")] = timedelta(minutes=5)
    queue_size: int = Field(1000, ge=1, le=1_000_000)
    # Channels told when a notice to another channel fails permanently or past its deadline.
    fallback_channels: list[str] = Field(default_factory=list)
    dashboard_url: PublicUrl = ""
    flapping: FlappingConfig = Field(default_factory=FlappingConfig)


class LogsConfig(Section):
    """Log ingestion (POST /api/v1/logs, POST /v1/logs); off until a token is set."""

    tokens: dict[str, SecretStr] = Field(default_factory=dict)
    # gzip bodies are inflated in memory up to max_body: keep it to what a request
    # can sensibly carry
    max_body: Annotated[ByteSize, SizeRange("1KiB", "64MiB")] = 5 * 2**20
    max_record: Annotated[ByteSize, SizeRange("256B", "16MiB")] = 64 * 2**10
    max_records: int = Field(10_000, ge=1, le=1_000_000)
    unknown_services: Literal["accept", "reject"] = "accept"
    environment: str = ""
    dlq_raw_bytes: Annotated[ByteSize, SizeRange("1B", "1MiB")] = 4096
    # processes that validate and encode pushed records beside the daemon (0: in the
    # daemon's request threads); read at start, a reload does not change it
    workers: int = Field(2, ge=0, le=64)
    # requests waiting for a busy worker beyond which pushes are answered 429
    worker_queue: int = Field(8, ge=0, le=1000)
    # requests the web server holds at once (bodies arriving, waiting for a thread or a
    # worker, being prepared or stored) beyond which a push is answered 429 at once
    max_in_flight: int = Field(16, ge=1, le=10_000)
    # and the bodies they carry: latency and memory grow with bytes, not requests
    max_in_flight_bytes: Annotated[ByteSize, SizeRange("64KiB", "1GiB")] = 8 * 2**20
    # s from a request's first byte to its last: a slower one is answered 408 and closed,
    # so slow or stalled bodies cannot hold every slot of max_in_flight
    body_timeout: float = Field(10.0, gt=0, le=600)


class BaselinesConfig(Section):
    window: Annotated[Duration, DurationRange("1h", "365d")] = timedelta(days=28)
    k: float = Field(3.0, gt=0, le=20)
    min_samples: int = Field(10, ge=1, le=1_000_000)
    every: Annotated[Duration, DurationRange("1m", "30d")] = timedelta(days=1)


class ReportConfig(Section):
    enabled: Flag = True
    time: ClockTime = "02:00"
    timezone: str = ""  # empty: the machine's local time zone
    channels: list[str] = Field(default_factory=list)


AuthType = Literal["none", "basic", "bearer"]


class DashboardAuthConfig(Section):
    type: AuthType = "none"
    # false: every page and API read needs a signed-in user or token too, except
    # /status (the shareable status page), /healthz, /readyz and log ingestion
    public_reads: Flag = True
    # name -> token (bearer) / name -> password hash (basic); values from ${ENV}
    tokens: dict[str, SecretStr] = Field(default_factory=dict)
    users: dict[str, SecretStr] = Field(default_factory=dict)


class DashboardConfig(Section):
    enabled: Flag = True
    bind: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    auth: DashboardAuthConfig = Field(default_factory=DashboardAuthConfig)

    @property
    def url(self) -> str:
        wildcard = self.bind in ("0.0.0.0", "::", "")  # noqa: S104 - detecting it, not binding
        host = "127.0.0.1" if wildcard else self.bind
        return f"http://{host}:{self.port}"


class StatusPageGroupConfig(Section):
    """A group on /status: ``services`` are selectors (an id, ``stack:<name>`` or a glob)."""

    name: str
    services: list[str] = Field(default_factory=list)


class StatusPageConfig(Section):
    """The public status page (/status): without groups, one group per stack."""

    title: str = "Service status"
    groups: list[StatusPageGroupConfig] = Field(default_factory=list)


class SchedulerConfig(Section):
    max_workers: int = Field(32, ge=1, le=1024)
    flush_interval: Annotated[Duration, DurationRange("10ms", "1m")] = timedelta(seconds=1)
    # Inserts into ClickHouse: one per table per insert_interval (the log covers a crash).
    insert_interval: Annotated[Duration, DurationRange("10ms", "10m")] = timedelta(seconds=5)
    batch_rows: int = Field(100_000, ge=1, le=1_000_000)
    spool_dir: str = "var/spool"
    spool_max_bytes: Annotated[ByteSize, SizeRange("1MiB", "1TiB")] = 256 * 2**20
    max_queue_rows: int = Field(500_000, ge=1000, le=100_000_000)


class TemporalConfig(Section):
    """Settings shared by every Temporal check (the connection is per service)."""

    # Visibility calls (count, list, list schedules, describe task queue) per second
    # per Temporal address, all checks together: half of the server's default
    # frontend.namespaceRPS.visibility of 10, so the UI and applications keep theirs.
    # The same default as checkers.temporal_budget.DEFAULT_MAX_VISIBILITY_RPS (config
    # imports no checker; tests/test_temporal_budget.py keeps the two equal). At least
    # 0.1/s: slower, every check would wait past its deadline.
    max_visibility_rps: float = Field(5.0, ge=0.1, le=10_000)
    # The Temporal Web UI (e.g. http://localhost:8233): the dashboard links workflow
    # ids and schedules there; empty: no links.
    ui_url: str = ""

    @field_validator("ui_url")
    @classmethod
    def _ui_url(cls, value: str) -> str:
        if value and not re.fullmatch(r"https?://[^\s/?#]+(/\S*)?", value):
            raise PydanticCustomError(
                "lightbulb", "expected an http:// or https:// URL like http://localhost:8233"
            )
        return value.rstrip("/")


class Config(Section):
    clickhouse: ClickHouseConfig = Field(default_factory=ClickHouseConfig)
    services: list[ServiceConfig] = Field(default_factory=list)
    relations: list[RelationConfig] = Field(default_factory=list)
    alert_rules: list[AlertRuleConfig] = Field(default_factory=list)
    channels: dict[str, ChannelConfig] = Field(default_factory=dict)
    silences: list[SilenceConfig] = Field(default_factory=list)
    alerting: AlertingConfig = Field(default_factory=AlertingConfig)
    logs: LogsConfig = Field(default_factory=LogsConfig)
    baselines: BaselinesConfig = Field(default_factory=BaselinesConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    dashboard: DashboardConfig = Field(default_factory=DashboardConfig)
    status_page: StatusPageConfig = Field(default_factory=StatusPageConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    temporal: TemporalConfig = Field(default_factory=TemporalConfig)

    _source: Source | None = PrivateAttr(default=None)
    # what the checks found valid but likely a mistake (ConfigProblem), for warnings()
    _warnings: list[Any] = PrivateAttr(default_factory=list)

    @property
    def dashboard_url(self) -> str:
        return (self.alerting.dashboard_url or self.dashboard.url).rstrip("/")

    def raw_block(self, index: int) -> dict[str, Any]:
        """Service ``index``'s checker block as written, ``${VAR}`` unexpanded."""
        service = self.services[index]
        block = service.block()
        if self._source is None:
            return block
        raw = self._source.raw(("services", index, service.type), block)
        return dict(raw)
