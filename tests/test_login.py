"""Sign-in: no redirect off the site, and failed attempts rate limited on an injected clock."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash

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
