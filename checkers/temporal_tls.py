"""``tls`` of the Temporal types: ``true``, or a block with a private CA and client certs.

``tls: true`` trusts the system's roots; ``tls: {ca_cert, client_cert, client_key,
server_name}`` trusts ``ca_cert`` (PEM) instead, presents the client certificate
(mTLS, both or neither) and checks the server's certificate against
``server_name`` instead of the address's host. Each file is checked at load: a
regular readable file of at most 1 MiB that parses as what it should be (the CA as
certificates, the client pair as a certificate and its private key), so a wrong
path or a swapped file is a config error with its line, not an UNKNOWN at the
first check. The files are read again when the client connects.
"""

from __future__ import annotations

import re
import ssl
from typing import Any

from pydantic import field_validator, model_validator
from temporalio.service import TLSConfig

from checkers.base import Settings, invalid
from server.core.files import read_capped

PEM_MAX = 2**20  # bytes: a CA bundle or a certificate chain is far smaller
SERVER_NAME = re.compile(r"[A-Za-z0-9_.-]{1,253}")


def read_pem(path: str) -> bytes:
    """The file's bytes; raises ValueError worded as the fix when it cannot serve as PEM."""
    try:
        data, more = read_capped(path, PEM_MAX)
    except OSError as exc:
        raise ValueError(f"expected a readable PEM file: {exc}") from None
    if more:
        raise ValueError(f"expected a PEM file of at most {PEM_MAX} bytes")
    if b"-----BEGIN " not in data:
        raise ValueError("expected a PEM file (-----BEGIN …), e.g. made by openssl")
    return data


class TemporalTls(Settings):
    ca_cert: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    server_name: str | None = None

    @field_validator("ca_cert")
    @classmethod
    def _ca(cls, path: str | None) -> str | None:
        if path is None:
            return None
        try:
            data = read_pem(path)
            ssl.create_default_context(cadata=data.decode("ascii", "replace"))
        except ValueError as exc:
            raise invalid(str(exc)) from None
        except ssl.SSLError as exc:
            raise invalid(f"expected PEM CA certificates: {exc.reason or exc}") from None
        return path

    @field_validator("client_cert", "client_key")
    @classmethod
    def _pem(cls, path: str | None) -> str | None:
        if path is not None:
            try:
                read_pem(path)
            except ValueError as exc:
                raise invalid(str(exc)) from None
        return path

    @field_validator("server_name")
    @classmethod
    def _name(cls, name: str | None) -> str | None:
        if name is not None and not SERVER_NAME.fullmatch(name):
            raise invalid("expected a host name, e.g. temporal.example.com")
        return name

    @model_validator(mode="after")
    def _pair(self) -> TemporalTls:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("set client_cert and client_key together (mTLS), or neither")
        if self.client_cert and self.client_key:
            try:
                ssl.create_default_context().load_cert_chain(self.client_cert, self.client_key)
            except (ssl.SSLError, OSError) as exc:
                raise ValueError(
                    f"client_cert and client_key are not a certificate and its key: {exc}"
                ) from None
        return self

    def config(self) -> TLSConfig:
        """The SDK's TLS settings, the files read now."""
        return TLSConfig(
            server_root_ca_cert=read_pem(self.ca_cert) if self.ca_cert else None,
            client_cert=read_pem(self.client_cert) if self.client_cert else None,
            client_private_key=read_pem(self.client_key) if self.client_key else None,
            domain=self.server_name,
        )


def client_tls(tls: bool | TemporalTls) -> Any:
    """What ``Client.connect(tls=…)`` takes: False, True or a TLSConfig."""
    return tls.config() if isinstance(tls, TemporalTls) else tls


def tls_key(tls: bool | TemporalTls) -> str:
    """The part of a shared client's key that the TLS settings make."""
    return tls.model_dump_json() if isinstance(tls, TemporalTls) else str(tls)
