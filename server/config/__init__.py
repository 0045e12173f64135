"""Read ``lightbulb.yaml`` into typed sections: the structure of the config file.

:func:`read_file` / :func:`read_text` return a :class:`Draft`: every section and
list item that parsed, the problems found so far, and what error messages need.
This package knows nothing of checkers, channels or alert rules beyond their
names; :mod:`server.validation` runs the checks that need those registries and
is what callers use (``load_config``, ``parse_config``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from server.config.checks import section_checks
from server.config.draft import Draft, build
from server.config.errors import ConfigError, ConfigProblem
from server.config.models import Config
from server.config.pydantic_errors import describe
from server.config.source import EMPTY_MESSAGE, load_source
from server.config.types import check_host_port
from server.core.strict import EnvText

__all__ = [
    "Config",
    "ConfigError",
    "ConfigProblem",
    "Draft",
    "missing_sections",
    "read_file",
    "read_text",
    "warnings",
]

DEFAULT_PATH = "lightbulb.yaml"
MAX_FILE_BYTES = 64 * 2**20  # a config file beyond this is a mistake (or an attack)

# Environment overrides for the storage connection, in the order they apply.
CLICKHOUSE_ENV = {
    "CLICKHOUSE_USER": "user",
    "CLICKHOUSE_PASSWORD": "password",
    "CLICKHOUSE_DATABASE": "database",
    "CLICKHOUSE_SECURE": "secure",
    "CLICKHOUSE_CA_CERT": "ca_cert",
}


def read_file(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Draft:
    """Read the file at ``path``; raises :class:`ConfigError` only if it cannot be read."""
    filename = str(path)
    try:
        with Path(path).open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            message = f"larger than {MAX_FILE_BYTES // 2**20} MiB; is this the config file?"
            raise ConfigError([ConfigProblem(filename, None, (), message)])
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(
            [ConfigProblem(filename, None, (), "file not found; pass --config PATH")]
        ) from None
    except IsADirectoryError:
        message = "is a directory; pass --config FILE"
        raise ConfigError([ConfigProblem(filename, None, (), message)]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([_not_utf8(filename, raw, exc.start)]) from None
    except OSError as exc:
        message = f"cannot read: {exc.strerror}"
        raise ConfigError([ConfigProblem(filename, None, (), message)]) from None
    return read_text(text, filename, environ)


def _not_utf8(filename: str, raw: bytes, offset: int) -> ConfigProblem:
    """Where the first byte that is no UTF-8 sits: its offset, line and column."""
    line = raw.count(b"\n", 0, offset) + 1
    column = offset - (raw.rfind(b"\n", 0, offset) + 1) + 1
    kind = ""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        kind = " (a UTF-16 byte-order mark: the file is UTF-16)"
    message = (
        f"not UTF-8 text: byte 0x{raw[offset]:02x} at offset {offset} (line {line}, column "
        f"{column}){kind}; save the file as UTF-8"
    )
    return ConfigProblem(filename, line, (), message)


def read_text(text: str, filename: str, environ: Mapping[str, str] | None = None) -> Draft:
    """Parse ``text``; raises :class:`ConfigError` only when it is no YAML mapping at all."""
    env = os.environ if environ is None else environ
    source, problems = load_source(text, filename, env)
    if problems and source.data is None:
        raise ConfigError(problems)
    data = source.data
    if data is None:  # "---" alone, or a bare null: as empty as an empty file
        raise ConfigError([*problems, ConfigProblem(filename, None, (), EMPTY_MESSAGE)])
    if not isinstance(data, dict):
        problems.append(
            ConfigProblem(filename, 1, (), f"expected a mapping of sections, got {describe(data)}")
        )
        raise ConfigError(problems)
    problems.extend(_apply_env_overrides(data, env))
    draft = build(data, source, problems)
    section_checks(draft)
    return draft


def warnings(config: Config) -> list[str]:
    """What is valid but likely a mistake, worded as the fix, one ``file:line key.path:
    warning: ...`` line each; shown by ``config check`` and logged when the daemon starts.

    A file without a ``services:`` key checks nothing: often a file cut short. The
    checks add their own (a disabled service named on the status page).
    """
    found = list(config._warnings)
    if "services" not in config.model_fields_set:
        filename = config._source.filename if config._source is not None else "config"
        found.insert(0, ConfigProblem(filename, None, (),
                     "no `services:` key, so nothing is checked (a file cut short?); "
                     "write `services: []` if that is meant"))  # fmt: skip
    return [w.as_warning() for w in found]


def missing_sections(running: Config, new: Config) -> list[str]:
    """Top-level sections the running config's file set that the new file lacks.

    A reload refuses such a file (:meth:`server.daemon.Daemon.reload`): a file cut
    short would otherwise remove every service, or drop the dashboard's auth to its
    default. A section emptied on purpose is written out (``channels: {}``).
    """
    return [name for name in Config.model_fields
            if name in running.model_fields_set and name not in new.model_fields_set]  # fmt: skip


def _apply_env_overrides(data: dict[str, Any], env: Mapping[str, str]) -> list[ConfigProblem]:
    """``CLICKHOUSE_*`` variables win over the file, as twelve-factor deployments expect."""
    section = data.get("clickhouse") or {}
    if not isinstance(section, dict):
        return []  # the model reports the wrong type with its line
    overrides: dict[str, Any] = {
        var_key: EnvText(env[var]) for var, var_key in CLICKHOUSE_ENV.items() if var in env
    }
    hosts = _env_hosts(section, overrides, env)
    for value in hosts or []:
        try:
            check_host_port(value)
        except ValueError:
            message = f'expected a host name and a port number, got "{value}"'
            where = ("CLICKHOUSE_HOST/CLICKHOUSE_PORT",)
            return [ConfigProblem("environment", None, where, message)]
    if hosts is not None:
        overrides["hosts"] = hosts
    if overrides:
        data["clickhouse"] = {**section, **overrides}
    return []


def _env_hosts(
    section: dict[str, Any], overrides: dict[str, Any], env: Mapping[str, str]
) -> list[str] | None:
    """Hosts from CLICKHOUSE_HOST (comma-separated) and/or CLICKHOUSE_PORT, or None if unset."""
    host, port = env.get("CLICKHOUSE_HOST"), env.get("CLICKHOUSE_PORT")
    if not host and not port:
        return None
    secure = str(overrides.get("secure", section.get("secure", False))).lower()
    default_port = "9440" if secure in {"true", "1", "yes", "on"} else "9000"
    if host:
        names = [h.strip() for h in host.split(",") if h.strip()]
        return [h if _has_port(h) and not port else f"{h}:{port or default_port}" for h in names]
    file_hosts = [str(h).rpartition(":")[0] for h in section.get("hosts") or []]
    return [f"{h}:{port}" for h in file_hosts or ["localhost"]]


def _has_port(host: str) -> bool:
    return ":" in host.rpartition("]")[2]
