"""A real TLS front for the session's plain-text Temporal dev server (which has no TLS flags).

``openssl`` makes a private CA and a server certificate for ``localhost`` signed by
it; an asyncio server on its own loop thread terminates TLS (ALPN ``h2``, as gRPC
wants) and pipes bytes to the dev server. Optionally it asks for a client
certificate signed by the same CA (mTLS).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import free_port


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing here


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_pki(folder: Path) -> Pki:
    """A CA, a server pair for localhost and a client pair signed by it, and a stray CA."""
    for name in ("ca", "other"):
        _openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            f"/CN={name}", "-keyout", str(folder / f"{name}.key"),
            "-out", str(folder / f"{name}.pem"),
        )  # fmt: skip
    ext = folder / "san.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name in ("server", "client"):
        _openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
            "-keyout", str(folder / f"{name}.key"), "-out", str(folder / f"{name}.csr"),
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", str(folder / f"{name}.csr"), "-CA", str(folder / "ca.pem"),
            "-CAkey", str(folder / "ca.key"), "-CAcreateserial", "-days", "2",
            "-extfile", str(ext), "-out", str(folder / f"{name}.pem"),
        )  # fmt: skip
    return Pki(
        folder / "ca.pem",
        folder / "server.pem",
        folder / "server.key",
        folder / "client.pem",
        folder / "client.key",
        folder / "other.pem",
    )


@contextlib.contextmanager
def tls_front(target: str, pki: Pki, require_client: bool = False) -> Iterator[str]:
    """``127.0.0.1:PORT`` speaking TLS and forwarding to ``target`` (host:port)."""
    host, _, port = target.rpartition(":")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    context.set_alpn_protocols(["h2"])
    if require_client:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(pki.ca)
    loop = asyncio.new_event_loop()
    listen = free_port()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", listen, ssl=context))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listen}"
    finally:

        async def close() -> None:
            """Every connection's tasks ended before the loop stops: left pending, each was
            logged "Task was destroyed but it is pending!" at an ERROR when collected, in
            whatever test ran then (a test counting its ERRORs failed on it)."""
            server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        if not thread.is_alive():
            loop.close()
