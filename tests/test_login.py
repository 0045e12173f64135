"""Sign-in: no redirect off the site, and failed attempts rate limited on an injected clock."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator

import pytest
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash

from server.schema import Target, apply_schema
from server.storage.embedded import EmbeddedStorage
from server.validation import parse_config
from server.web import WebContext, create_app
from server.web.ratelimit import PER_ADDRESS, PER_USER, WINDOW
from tests.support.clock import FakeClock

Login = Callable[..., tuple[int, dict[str, str]]]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStorage]:
    store = EmbeddedStorage(tmp_path_factory.mktemp("login") / "db", "monitor")
    apply_schema(store, Target("monitor"))  # the API reads need the tables
    yield store
    store.close()


def quick_hash(password: str) -> str:
    return generate_password_hash(password, method="pbkdf2:sha256:1000")  # fast, for tests


@pytest.fixture
def client(storage: EmbeddedStorage, clock: FakeClock) -> FlaskClient:
    config = parse_config(
        "dashboard: {auth: {type: basic, users: {ana: '${ANA}', bo: '${BO}'}}}\n",
        "f.yaml",
        {"ANA": quick_hash("right"), "BO": quick_hash("bo-pw")},
    )
    return create_app(WebContext(config, storage, clock)).test_client()


@pytest.fixture
def login(client: FlaskClient) -> Login:
    def attempt(
        user: str, password: str, address: str = "192.0.2.1", query: str = ""
    ) -> tuple[int, dict[str, str]]:
        page = client.get("/login", environ_base={"REMOTE_ADDR": address})
        token = re.search(r'name="csrf" value="([^"]+)"', page.get_data(as_text=True))
        assert token is not None
        response = client.post(
            f"/login{query}",
            data={"user": user, "password": password, "csrf": token.group(1)},
            environ_base={"REMOTE_ADDR": address},
        )
        return response.status_code, dict(response.headers)

    return attempt


@pytest.mark.parametrize(
    "target",
    ["/%09/evil.example/", "//evil.example/", "/%5Cevil.example", "/%0A/evil.example",
     "/%0D/evil.example", "%20//evil.example", "https://evil.example/", "javascript:alert(1)",
     "/%00/evil.example", "///evil.example", "evil.example", "/\\/evil.example"],
)  # fmt: skip
def test_sign_in_never_redirects_off_the_site(login: Login, target: str) -> None:
    status, headers = login("ana", "right", query=f"?next={target}")
    assert status == 302
    assert headers["Location"] == "/alerts"


def test_sign_in_returns_to_the_page_that_asked(login: Login) -> None:
    status, headers = login("ana", "right", query="?next=/services/db%3Frange%3D1h")
    assert (status, headers["Location"]) == (302, "/services/db?range=1h")


def test_failed_sign_ins_from_one_address_are_limited_even_with_the_right_password(
    login: Login, clock: FakeClock
) -> None:
    for _ in range(PER_ADDRESS):
        assert login("ana", "wrong")[0] == 200
    status, headers = login("ana", "right")
    assert status == 429 and int(headers["Retry-After"]) == WINDOW
    assert login("bo", "bo-pw")[0] == 429  # the address, whoever it claims to be
    assert login("bo", "bo-pw", address="192.0.2.2")[0] == 302  # another address may
    clock.advance(WINDOW - 1)
    assert login("ana", "right")[0] == 429
    clock.advance(1)
    assert login("ana", "right")[0] == 302  # the failures left the window


def test_failed_sign_ins_for_one_user_are_limited_across_addresses(
    login: Login, clock: FakeClock
) -> None:
    for index in range(PER_USER):
        assert login("ana", "wrong", address=f"198.51.100.{index}")[0] == 200
    assert login("ana", "right", address="203.0.113.9")[0] == 429
    assert login("bo", "bo-pw", address="203.0.113.9")[0] == 302


def test_a_successful_sign_in_clears_the_failures(login: Login) -> None:
    for _ in range(PER_ADDRESS - 1):
        assert login("ana", "wrong")[0] == 200
    assert login("ana", "right")[0] == 302
    for _ in range(PER_ADDRESS - 1):
        assert login("ana", "wrong")[0] == 200
    assert login("ana", "right")[0] == 302


# -- credentials sent with API requests count toward the same limits ------------------------
Call = Callable[..., int]


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def api(storage: EmbeddedStorage, clock: FakeClock, client: FlaskClient) -> Call:
    """GET a read that needs credentials (public_reads off), sharing the sign-in form's
    limiter; a 429 must say when to come back."""
    config = parse_config(
        "dashboard: {auth: {type: basic, public_reads: false, users: {ana: '${ANA}'}}}\n",
        "f.yaml",
        {"ANA": quick_hash("right")},
    )
    app = create_app(WebContext(config, storage, clock))
    app.extensions["login_limiter"] = client.application.extensions["login_limiter"]
    api_client = app.test_client()

    def call(headers: dict[str, str], address: str = "192.0.2.1", path: str = "/") -> int:
        response = api_client.get(path, headers=headers, environ_base={"REMOTE_ADDR": address})
        if response.status_code == 429:
            assert int(response.headers["Retry-After"]) >= 1
        return response.status_code

    return call


def test_wrong_basic_credentials_on_the_api_are_limited_per_address_with_retry_after(
    api: Call, clock: FakeClock, login: Login
) -> None:
    for index in range(PER_ADDRESS):
        assert api(basic("ana", f"wrong{index}"), path="/api/v1/services") == 401
    assert api(basic("ana", "right"), path="/api/v1/services") == 429  # even the right one
    assert api(basic("ana", "right"), path="/") == 429  # pages too
    assert login("ana", "right")[0] == 429  # and the sign-in form: one limit
    assert api(basic("ana", "right"), address="192.0.2.2", path="/api/v1/services") == 200
    clock.advance(WINDOW)
    assert api(basic("ana", "right"), path="/api/v1/services") == 200


def test_failures_of_the_form_and_basic_auth_add_up(api: Call, login: Login) -> None:
    for _ in range(PER_ADDRESS - 2):
        assert login("ana", "wrong")[0] == 200
    for _ in range(2):
        assert api(basic("ana", "wrong"), path="/api/v1/services") == 401
    assert api(basic("ana", "right"), path="/api/v1/services") == 429


def test_wrong_basic_passwords_for_one_user_are_limited_across_addresses(api: Call) -> None:
    for index in range(PER_USER):
        assert api(basic("ana", "wrong"), f"198.51.100.{index}", "/api/v1/services") == 401
    assert api(basic("ana", "right"), address="203.0.113.9", path="/api/v1/services") == 429


@pytest.fixture
def bearer(storage: EmbeddedStorage, clock: FakeClock) -> Call:
    config = parse_config(
        "dashboard: {auth: {type: bearer, public_reads: false, tokens: {ops: '${TOKEN}'}}}\n",
        "f.yaml",
        {"TOKEN": "the-right-token"},
    )
    bearer_client = create_app(WebContext(config, storage, clock)).test_client()

    def call(token: str, address: str = "192.0.2.1") -> int:
        response = bearer_client.get(
            "/api/v1/services",
            headers={"Authorization": f"Bearer {token}"},
            environ_base={"REMOTE_ADDR": address},
        )
        return response.status_code

    return call


def test_wrong_bearer_tokens_are_limited_per_address(bearer: Call, clock: FakeClock) -> None:
    for index in range(PER_ADDRESS):
        assert bearer(f"guess-{index}") == 401
    assert bearer("the-right-token") == 429
    assert bearer("the-right-token", address="192.0.2.2") == 200  # a token names no user
    clock.advance(WINDOW)
    assert bearer("the-right-token") == 200
