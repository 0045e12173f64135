"""Temporal over TLS: a private CA, client certificates, and honest handshake failures.

The session's dev server behind a real TLS front (tests/support/tls_proxy.py) with
certificates made by openssl. The attack: only ``tls: true`` existed (no private
CA, no client certificate), and a handshake failure read "Failed client connect:
Server connection error".
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from checkers.base import CheckContext, Status
from checkers.temporal_count import CountSettings, TemporalCountChecker
from server.runner import run_check
from tests.support.temporal_server import Harness
from tests.support.tls_proxy import Pki, make_pki, tls_front


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def front(temporal_server: Harness, pki: Pki) -> Iterator[str]:
    with tls_front(temporal_server.address, pki) as address:
        yield address


def count(address: str, tls: Any) -> Any:
    settings = CountSettings(address=address, tls=tls, count_query="ExecutionStatus = 'Running'")
    return run_check(TemporalCountChecker(settings), CheckContext("tls", datetime.now(UTC), 10))


def test_a_private_ca_is_trusted_through_tls_ca_cert(front: str, pki: Pki) -> None:
    result = count(front, {"ca_cert": str(pki.ca), "server_name": "localhost"})
    assert result.status == Status.OK, result.message


def test_client_certificates_are_presented_for_mtls(temporal_server: Harness, pki: Pki) -> None:
    with tls_front(temporal_server.address, pki, require_client=True) as address:
        tls = {"ca_cert": str(pki.ca), "server_name": "localhost"}
        without = count(address, tls)
        with_pair = count(
            address, {**tls, "client_cert": str(pki.client_cert), "client_key": str(pki.client_key)}
        )
    assert with_pair.status == Status.OK, with_pair.message
    assert without.status == Status.UNKNOWN
    assert "TLS handshake failed" in without.message


@pytest.mark.parametrize("tls", ["system roots", "another CA"])
def test_an_untrusted_server_certificate_reads_tls_handshake_failed(
    front: str, pki: Pki, tls: str
) -> None:
    setting: Any = True if tls == "system roots" else {"ca_cert": str(pki.other_ca)}
    result = count(front, setting)
    assert result.status == Status.UNKNOWN
    assert result.message.startswith(f"Temporal at {front}: TLS handshake failed with {front}")


def test_plain_text_to_a_tls_server_says_to_set_tls(front: str) -> None:
    result = count(front, False)
    assert result.status == Status.UNKNOWN
    assert result.message.endswith("(a TLS server? set tls: true)"), result.message


def test_tls_files_are_checked_at_load(tmp_path: Path, pki: Pki) -> None:
    not_pem = tmp_path / "notes.txt"
    not_pem.write_text("hello\n")
    cases = {
        "ca_cert": ({"ca_cert": str(tmp_path / "missing.pem")}, "expected a readable PEM file"),
        "not pem": ({"ca_cert": str(not_pem)}, "expected a PEM file (-----BEGIN"),
        "key alone": ({"client_key": str(pki.client_key)}, "set client_cert and client_key"),
        "swapped": (
            {"client_cert": str(pki.client_cert), "client_key": str(pki.server_key)},
            "are not a certificate and its key",
        ),
        "server_name": ({"server_name": "bad name"}, "expected a host name"),
    }
    for name, (tls, words) in cases.items():
        with pytest.raises(ValueError, match=None) as caught:
            CountSettings(count_query="ExecutionStatus = 'Running'", tls=tls)
        assert words in str(caught.value), (name, str(caught.value))
