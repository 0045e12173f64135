"""Load and validate ``lightbulb.yaml``.

:func:`load_config` either returns a fully valid :class:`Config` or raises
:class:`ConfigError` carrying *every* problem in the file, so a user fixes the
whole file in one pass.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from server.config.checks import cross_check, duplicate_service_ids
from server.config.errors import ConfigError, ConfigProblem
from server.config.models import Config
from server.config.pydantic_errors import describe, translate
from server.config.source import Source, load_source
from server.config.types import check_host_port

__all__ = ["Config", "ConfigError", "ConfigProblem", "load_config", "parse_config"]

DEFAULT_PATH = "lightbulb.yaml"

# Environment overrides for the storage connection, in the order they apply.
CLICKHOUSE_ENV = {
    "CLICKHOUSE_USER": "user",
    "CLICKHOUSE_PASSWORD": "password",
    "CLICKHOUSE_DATABASE": "database",
    "CLICKHOUSE_SECURE": "secure",
    "CLICKHOUSE_CA_CERT": "ca_cert",
}


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate the file at ``path``."""
    filename = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            [ConfigProblem(filename, None, (), "file not found; pass --config PATH")]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError([ConfigProblem(filename, None, (), f"cannot read: {reason}")]) from None
    return parse_config(text, filename, environ)


def parse_config(text: str, filename: str, environ: Mapping[str, str] | None = None) -> Config:
    env = os.environ if environ is None else environ
    source, problems = load_source(text, filename, env)
    if problems and source.data is None:
        raise ConfigError(problems)
    data = source.data
    if not isinstance(data, dict):
        problems.append(
            ConfigProblem(filename, 1, (), f"expected a mapping of sections, got {describe(data)}")
        )
        raise ConfigError(problems)
    problems.extend(_apply_env_overrides(data, env))
    problems.extend(duplicate_service_ids(data, source))
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems.extend(translate(exc, source, Config))
        _cross_check_partial(data, source, problems)
        raise ConfigError(problems) from None
    problems.extend(cross_check(config, source))
    if problems:
        raise ConfigError(problems)
    source.release()
    config._source = source
    return config


def _cross_check_partial(
    data: dict[str, Any], source: Source, problems: list[ConfigProblem]
) -> None:
    """Cross-section checks still run when some section failed to parse.

    Sections that parse on their own are checked together, so a bad duration in
    one service does not hide a dependency cycle elsewhere. References are only
    judged when what they point to parsed; otherwise every reference would look
    unknown.
    """
    good = {}
    for name in Config.model_fields:
        if name in data:
            try:
                Config.model_validate({name: data[name]})
            except ValidationError:
                continue
            good[name] = data[name]
    if "services" not in good:
        good.pop("relations", None)
        good.pop("alert_rules", None)
    if "channels" not in good:
        good.pop("alert_rules", None)
    problems.extend(cross_check(Config.model_validate(good), source))


def _apply_env_overrides(data: dict[str, Any], env: Mapping[str, str]) -> list[ConfigProblem]:
    """``CLICKHOUSE_*`` variables win over the file, as twelve-factor deployments expect."""
    section = data.get("clickhouse") or {}
    if not isinstance(section, dict):
        return []  # the model reports the wrong type with its line
    overrides: dict[str, Any] = {
        var_key: env[var] for var, var_key in CLICKHOUSE_ENV.items() if var in env
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
