"""A site of incidents for tests: real chDB, the real recorder feeding the real alert
engine (:class:`tests.alerting_harness.Harness`: db, api and web checked every 10 s,
api depends on db, web on api), a plan of checks, and the dashboard over it.

A plan gives each service one character per check: ``.`` OK, ``x`` FAILED, ``d``
DEGRADED. Checks
are ``step`` apart; every service's check of one step is at the same instant, the
plan's first service first (a cause before its dependants, as a daemon's tick may).
The status page shows ``shown`` (one group, "Front"); bearer token ``t0ken``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from xml.etree import ElementTree as ET

from flask.testing import FlaskClient

from checkers.base import CheckResult, Status
from server.analytics.incidents import Incident, Incidents, incident_id
from server.config.models import Config, DashboardConfig, StatusPageConfig
from server.recorder import Recorder
from server.schema import Target, apply_schema
from server.storage.embedded import EmbeddedStorage
from server.validation import parse_config
from server.web import WebContext, create_app
from tests.alerting_harness import SERVICES, Harness
from tests.support.clock import FakeClock
from tests.web_fixture import NOW, RULES, Svc

ATOM = "{http://www.w3.org/2005/Atom}"
TOKEN = {"Authorization": "Bearer t0ken"}
PLAYED = {"x": Status.FAILED, "d": Status.DEGRADED}  # a plan's characters; else OK
__all__ = ["ATOM", "NOW", "TOKEN", "Site", "Svc", "entries", "play", "sections", "stamp"]


class Site:
    """``rules``: the harness's alert rules (YAML, after its services and channels)."""

    def __init__(self, root: Path, rules: str = RULES, *, step: timedelta = timedelta(minutes=5),
                 shown: Sequence[str] = ("api", "web"),
                 start: datetime | None = None) -> None:  # fmt: skip
        self.store = EmbeddedStorage(root / "db", "monitor")
        apply_schema(self.store, Target("monitor"))
        self.h = Harness(rules, FakeClock(start or NOW - timedelta(hours=2)))
        self.recorder = Recorder(self.h, listener=self.h.engine)
        self.step, self.shown = step, list(shown)
        self.at: list[datetime] = []

    def play(self, plan: Mapping[str, str]) -> None:
        """One check per character of each service's line, ``step`` apart, then the rows
        into storage, read a second after the last check."""
        self.at += play(self.h, self.recorder, self.store, plan, self.step)

    def reload(self, rules: str, disabled: str = "") -> None:
        """As a SIGHUP with ``rules`` (and service ``disabled`` off) does to the engine, a
        second after the last check: alerts that left are retired, new ones start
        inactive."""
        text = SERVICES.format(url=self.h.receiver.url + self.h.path) + rules
        if "\nalerting:" not in rules:
            text += "\nalerting: {group_wait: 0s}\n"
        config = parse_config(text, "test.yaml")
        services = [s.model_copy(update={"enabled": s.id != disabled}) for s in config.services]
        self.h.config = config.model_copy(update={"services": services})
        self.h.clock.advance(1)
        self.h.engine.configure(self.h.config)
        self.h.log.sync()
        self.h.insert_into(self.store)

    def config(self, disabled: str = "") -> Config:
        services = [s.model_copy(update={"enabled": False}) if s.id == disabled else s
                    for s in self.h.config.services]  # fmt: skip
        return self.h.config.model_copy(update={
            "services": services,
            "status_page": StatusPageConfig.model_validate(
                {"groups": [{"name": "Front", "services": self.shown}]}),
            "dashboard": DashboardConfig.model_validate(
                {"auth": {"type": "bearer", "tokens": {"ops": "t0ken"}}}),
        })  # fmt: skip

    def client(self, disabled: str = "") -> FlaskClient:
        app = create_app(WebContext(self.config(disabled), self.store, self.h.clock,
                                    self.h.engine))  # fmt: skip
        return app.test_client()

    def incidents(self, start: datetime | None = None, limit: int | None = None) -> list[Incident]:
        """Every incident from a day before :data:`NOW` to now, oldest first; each the
        same, looked up by its id and by each member's, as in the list (one assembly:
        an incident's own page never disagrees with the pages listing it)."""
        incidents, now = Incidents(self.store, self.config()), self.h.clock.now()
        found = incidents.between(start or NOW - timedelta(days=1), now, limit=limit)
        for listed in found:
            for iid in dict.fromkeys([listed.id, *(incident_id(m) for m in listed.members)]):
                got = incidents.get(iid, now)
                assert got is not None, iid
                assert (got.as_dict(now), got.notices) == (listed.as_dict(now), listed.notices)
        return sorted(found, key=lambda i: i.start)

    def close(self) -> None:
        self.store.close()


def play(h: Harness, recorder: Recorder, store: EmbeddedStorage, plan: Mapping[str, str],
         step: timedelta) -> list[datetime]:  # fmt: skip
    """Play ``plan`` (one check per character, ``step`` apart, the services in its order)
    through ``recorder`` and ``h``'s engine, then move the rows into ``store`` a second
    after the last check; returns the checks' instants."""
    instants = []
    for i in range(max(len(line) for line in plan.values())):
        at = h.clock.advance(step.total_seconds())
        instants.append(at)
        for sid, line in plan.items():
            if i < len(line):
                status = PLAYED.get(line[i], Status.OK)
                recorder.record(Svc(sid), CheckResult(status, f"{sid} {i}"), at)
        h.deliver()
    h.clock.advance(1)
    h.log.sync()
    h.insert_into(store)
    return instants


def sections(page: str) -> str:
    """The incident sections of a ``/status`` page."""
    return "".join(re.findall(r'<section class="incidents.*?</section>', page, re.S))


def entries(c: FlaskClient) -> list[dict[str, str]]:
    """Each Atom entry's title, summary, id, published and updated."""
    root = ET.fromstring(c.get("/status/feed.atom").data)  # noqa: S314 - our own output
    keys = ("title", "summary", "id", "published", "updated")
    return [{k: e.findtext(f"{ATOM}{k}") or "" for k in keys}
            for e in root.findall(f"{ATOM}entry")]  # fmt: skip


def stamp(at: datetime) -> str:
    """As the feed spells a time."""
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")
