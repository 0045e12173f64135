"""Documentation stays in step with the code: every config key has a README row."""

from __future__ import annotations

import typing

from pydantic import BaseModel

import checkers
from server.config.models import ChannelConfig, Config, ServiceConfig
from tests.conftest import REPO

README = (REPO / "README.md").read_text()


def _is_model(annotation: object) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def documented_keys(model: type[BaseModel], prefix: str) -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        inner = field.annotation
        if typing.get_origin(inner) is list and _is_model(typing.get_args(inner)[0]):
            keys.extend(documented_keys(typing.get_args(inner)[0], key + "[]."))
        elif typing.get_origin(inner) is dict and typing.get_args(inner)[1] is ChannelConfig:
            keys.append(f"{key}.<name>.type")
        elif _is_model(inner):
            keys.extend(documented_keys(inner, key + "."))
        else:
            keys.append(key)
    return keys


def test_every_config_key_has_a_readme_row() -> None:
    type_blocks = {f"services[].{t}" for t in checkers.SERVICE_TYPES}
    missing = [
        key
        for key in documented_keys(Config, "")
        if key not in type_blocks and f"| `{key}` |" not in README
    ]
    assert missing == []
    assert "| `services[].<type>` |" in README


def test_every_service_type_has_a_config_block() -> None:
    fields = set(ServiceConfig.model_fields)
    assert set(checkers.SERVICE_TYPES) <= fields
    for service_type in checkers.SERVICE_TYPES:
        assert f"`{service_type}`" in README


def test_the_documented_webhook_payload_has_the_fields_we_send() -> None:
    import json
    import re
    from datetime import UTC, datetime

    from server.notify.base import AlertItem, Notice, payload

    section = README.split("### Webhook payload (version 1)", 1)[1]
    documented = json.loads(re.search(r"```json\n(.*?)```", section, re.S).group(1))  # type: ignore[union-attr]
    now = datetime.now(UTC)
    alert = AlertItem("r:s", "r", "r", "s", "S", "x", "firing", "info", "", 0, None, now, "", "")
    sent = payload(Notice("c", "alert", "r", [alert], now))
    assert set(documented) == set(sent)
    assert set(documented["alerts"][0]) == set(sent["alerts"][0])
    assert documented["version"] == sent["version"]
