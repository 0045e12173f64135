"""The alerts and silences API on the Flask test client, with a fake clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash

from checkers.base import Status
from server.config.models import DashboardConfig
from server.schema import Target, apply_schema
from server.spool import Spool
from server.storage.embedded import EmbeddedStorage
from server.tables import WRITTEN_TABLES
from server.web import WebContext, create_app
from server.writer import Busy, Writer
from tests.alerting_harness import Harness
from tests.test_full_disk import padded, small_tmpfs

RULES = """
alert_rules:
  - {id: down, service: "*", condition: "status >= FAILED", channels: [hook]}
"""
TOKEN = {"Authorization": "Bearer t0ken"}


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStorage]:
    store = EmbeddedStorage(tmp_path_factory.mktemp("chdb") / "db", "monitor")
    apply_schema(store, Target("monitor"))
    yield store
    store.close()


@pytest.fixture
def h() -> Harness:
    return Harness(RULES)


@pytest.fixture
def client(h: Harness, storage: EmbeddedStorage) -> Callable[[dict[str, Any] | None], FlaskClient]:
    def make(auth: dict[str, Any] | None = None) -> FlaskClient:
        dashboard = DashboardConfig.model_validate({"auth": auth or {"type": "none"}})
        config = h.config.model_copy(update={"dashboard": dashboard})
        return create_app(WebContext(config, storage, h.clock, h.engine)).test_client()

    return make


@pytest.fixture
def api(client: Callable[..., FlaskClient]) -> FlaskClient:
    return client({"type": "bearer", "tokens": {"ops": "t0ken"}})


def test_a_silence_created_through_the_api_suppresses_and_then_expires(
    h: Harness, api: FlaskClient
) -> None:
    response = api.post(
        "/api/v1/silences",
        json={"service": "db", "duration": "10m", "comment": "swapping a disk"},
        headers=TOKEN,
    )
    assert response.status_code == 201
    silence = response.get_json()
    assert (silence["author"], silence["comment"]) == ("ops", "swapping a disk")
    assert [t for t, _ in h.rows if t == "silences"] == ["silences"]  # persisted

    h.result("db", Status.FAILED, advance=1)
    assert h.told() == []
    alerts = api.get("/api/v1/alerts").get_json()["alerts"]
    assert (alerts[0]["state"], alerts[0]["suppressed"], alerts[0]["silence_id"]) == (
        "firing",
        "silenced",
        silence["id"],
    )
    h.tick(9 * 60)
    assert h.told() == []
    h.tick(60)  # the silence has ended: the alert, still firing, goes out
    assert h.told() == [("alert", "db", "firing")]
    assert api.get("/api/v1/silences").get_json()["silences"] == []


def test_deleting_a_silence_releases_what_it_held(h: Harness, api: FlaskClient) -> None:
    created = api.post(
        "/api/v1/silences", json={"rule": "down", "duration": "1h"}, headers=TOKEN
    ).get_json()
    h.result("api", Status.FAILED, advance=1)
    assert h.told() == []
    response = api.delete(f"/api/v1/silences/{created['id']}", headers=TOKEN)
    assert response.status_code == 200
    h.deliver()  # the channel's worker thread, in the daemon
    assert h.told() == [("alert", "api", "firing")]
    assert api.delete(f"/api/v1/silences/{created['id']}", headers=TOKEN).status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"duration": "1h"}, 400, "service and/or rule"),
        ({"service": "db"}, 400, "duration"),
        ({"service": "db", "duration": "soon"}, 400, "duration"),
        ({"service": "db", "duration": "400d"}, 400, "within 365 days"),
        ({"service": "db", "ends_at": "yesterday"}, 400, "RFC 3339"),
        ({"service": 5, "duration": "1h"}, 400, "service: expected a string"),
        ([1, 2], 400, "JSON object"),
        ({"service": "\u0000", "duration": "1h"}, 400, "service: expected an id"),
        ({"rule": "[", "duration": "1h"}, 400, 'rule: expected an id or a glob like "disk-*" with'),
        ({"service": "DB prod", "duration": "1h"}, 400, "of lowercase letters, digits"),
        ({"service": "stack:", "duration": "1h"}, 400, 'expected a name after "stack:"'),
        ({"service": "hdb\n", "duration": "1h"}, 400, "service: expected an id"),
        ({"rule": "\tdown", "duration": "1h"}, 400, "rule: expected an id"),
    ],
)
def test_bad_silence_requests_get_a_4xx_that_says_why(
    api: FlaskClient, body: Any, status: int, message: str
) -> None:
    response = api.post("/api/v1/silences", json=body, headers=TOKEN)
    assert response.status_code == status
    assert message in response.get_json()["error"]


def test_changes_need_a_valid_token(api: FlaskClient) -> None:
    body = {"service": "db", "duration": "1h"}
    missing = api.post("/api/v1/silences", json=body)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = api.post("/api/v1/silences", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401


def test_form_posts_are_refused_so_a_foreign_page_cannot_silence(api: FlaskClient) -> None:
    response = api.post("/api/v1/silences", data={"service": "db", "duration": "1h"}, headers=TOKEN)
    assert response.status_code == 415


def test_without_auth_configured_changes_are_refused(client: Callable[..., FlaskClient]) -> None:
    response = client().post("/api/v1/silences", json={"service": "db", "duration": "1h"})
    assert response.status_code == 403
    assert "dashboard.auth" in response.get_json()["error"]


def test_basic_auth_users_are_checked_against_password_hashes(
    client: Callable[..., FlaskClient],
) -> None:
    api = client({"type": "basic", "users": {"ana": generate_password_hash("pw")}})
    body = {"service": "db", "duration": "1h"}
    ok = api.post("/api/v1/silences", json=body, auth=("ana", "pw"))
    assert ok.status_code == 201
    assert ok.get_json()["author"] == "ana"
    assert api.post("/api/v1/silences", json=body, auth=("ana", "x")).status_code == 401


def test_responses_carry_security_headers(api: FlaskClient) -> None:
    response = api.get("/api/v1/alerts")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_unknown_routes_answer_json_not_html(api: FlaskClient) -> None:
    response = api.get("/api/v1/nope")
    assert response.status_code == 404
    assert "error" in response.get_json()


def test_a_silence_the_writer_cannot_take_is_503_with_retry_after_and_not_kept(
    h: Harness, storage: EmbeddedStorage, tmp_path: Path
) -> None:
    """A real writer whose spool disk (a real 2 MiB tmpfs) is full: create and delete."""
    with small_tmpfs(tmp_path / "tiny", "2m") as disk:
        writer = Writer(storage, Spool(disk.path / "spool", 2**28), columns=WRITTEN_TABLES)
        h.log.sink = writer
        config = h.config.model_copy(update={"dashboard": DashboardConfig.model_validate(
            {"auth": {"type": "bearer", "tokens": {"ops": "t0ken"}}})})  # fmt: skip
        api = create_app(WebContext(config, storage, h.clock, h.engine, sink=writer)).test_client()
        body = {"service": "db", "duration": "1h", "comment": "refused-while-full"}
        kept = api.post("/api/v1/silences", json={**body, "comment": "kept"}, headers=TOKEN)
        assert kept.status_code == 201
        disk.fill()
        with pytest.raises(Busy):  # and the slack of the log's last page
            for i in range(100):
                writer.add_durable("service_status", [padded(i)])
        refused = api.post("/api/v1/silences", json=body, headers=TOKEN)
        assert refused.status_code == 503 and refused.headers["Retry-After"].isdigit()
        assert "space" in refused.get_json()["error"]
        gone = api.delete(f"/api/v1/silences/{kept.get_json()['id']}", headers=TOKEN)
        assert gone.status_code == 503 and gone.headers["Retry-After"].isdigit()
        active = api.get("/api/v1/silences").get_json()["silences"]
        assert [s["comment"] for s in active] == ["kept"]  # neither change happened
        assert active[0]["ends_at"] == kept.get_json()["ends_at"]
        disk.free()
        writer.flush()
        comments = storage.query(
            "SELECT comment, count() AS n FROM monitor.silences WHERE comment IN "
            "('kept', 'refused-while-full') GROUP BY comment"
        )
        assert {r["comment"]: r["n"] for r in comments} == {"kept": 1}
        assert writer.stats.busy_refusals == 2
