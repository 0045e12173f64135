"""What the web layer may use: config, storage, clock, and (in the daemon) live state."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from server.alerting.engine import AlertEngine
from server.alerting.log import AlertLog
from server.analytics.baselines import Baselines
from server.analytics.incidents import SavedNotes
from server.config.models import Config
from server.core.clock import Clock
from server.storage import Storage
from server.web.errors import ApiError
from server.web.queries import Reader
from server.web.read_cache import ReadCache
from server.writer import Busy, Writer

if TYPE_CHECKING:
    from server.logs.workers import IngestPool  # the daemon's; its decoders load with it


class ServiceState(NamedTuple):
    """One service's last result as the daemon holds it in memory (for /metrics)."""

    id: str
    stack: str
    type: str
    status_code: int
    checked: bool
    response_time_ms: int | None
    last_check: datetime | None


class DaemonState(Protocol):
    """The running daemon's figures, for /metrics and /readyz (absent when standalone).

    Both answer from memory: they must work while ClickHouse is away.
    """

    def health(self) -> dict[str, Any]: ...

    def service_states(self) -> list[ServiceState]: ...


@dataclass
class WebContext:
    config: Config
    storage: Storage
    clock: Clock
    alerts: AlertEngine | None = None  # None: standalone dashboard, alerts read from storage
    daemon: DaemonState | None = None
    sink: Writer | None = None  # the daemon's writer: where pushed logs go
    baselines: Baselines | None = None  # learned normal, for chart bands
    ingest: IngestPool | None = None  # the daemon's ingest workers (None: prepared inline)
    reader: Reader = field(init=False)
    alert_log: AlertLog = field(init=False)  # alert history, states, deliveries, incidents
    saved_notes: SavedNotes = field(default_factory=SavedNotes)  # read-your-writes of notes
    read_cache: ReadCache = field(default_factory=ReadCache)  # answers kept while unchanged

    def __post_init__(self) -> None:
        self.reader = Reader(self.storage, self.config)
        self.alert_log = AlertLog(None, self.storage, self.clock)

    def engine(self) -> AlertEngine:
        """The live alert engine, for actions; a standalone dashboard has none (409)."""
        if self.alerts is None:
            raise ApiError(409, "alert actions need the daemon: this dashboard runs standalone")
        return self.alerts

    def make_durable(self) -> None:
        """Before answering an action (ack, silence): its rows must be on disk.

        The engine has handed them to the writer; this waits for the fsync.
        Raises ApiError 503 with Retry-After when the disk cannot take them.
        """
        if self.sink is None:
            return
        try:
            self.sink.sync()
        except Busy as exc:
            raise ApiError(exc.status, str(exc), {"Retry-After": str(exc.retry_after)}) from None

    def reconfigure(self, config: Config) -> None:
        """After SIGHUP: new services, channels, tokens and auth for the next request.

        (A changed dashboard.bind or port takes effect on restart.)
        """
        self.config = config
        self.reader = Reader(self.storage, config)


def current() -> WebContext:
    """The context of the app handling this request."""
    from flask import current_app  # here: a daemon without its dashboard loads no Flask

    ctx: WebContext = current_app.extensions["lightbulb"]
    return ctx
