"""The ingest pool's counts, apart from the pool: the daemon reports them (/metrics, its
self-monitoring row) without importing the pool, which loads the decoders (protobuf,
OpenTelemetry's messages) a daemon with its dashboard off never uses."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PoolStats:
    """Counts since start of :class:`server.logs.workers.IngestPool`."""

    jobs: int = 0  # requests prepared by a worker
    inline: int = 0  # requests prepared in the daemon
    queue_refusals: int = 0  # answered 429: every worker busy and the queue full
    worker_exits: int = 0  # workers that died or hung and were replaced
    start_failures: int = 0  # attempts to start a worker that failed (tried again)
