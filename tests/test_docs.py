"""Documentation stays in step with the code: every config key has a README row."""

from __future__ import annotations

import re
import typing

import annotated_types as at
from pydantic import BaseModel
from pydantic.fields import FieldInfo

import checkers
from server.config.models import ChannelConfig, Config, ServiceConfig
from server.core.units import DurationRange, SizeRange
from tests.conftest import REPO

README = (REPO / "README.md").read_text()


def _is_model(annotation: object) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def config_fields(model: type[BaseModel], prefix: str) -> list[tuple[str, FieldInfo]]:
    """Every setting of ``model`` as ``(README key, field)``: lists of sections as
    ``key[].inner``, nested sections as ``key.inner``, the channels map as
    ``key.<name>.type`` (each channel type's settings are its module's)."""
    fields: list[tuple[str, FieldInfo]] = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        inner = field.annotation
        if typing.get_origin(inner) is list and _is_model(typing.get_args(inner)[0]):
            fields.extend(config_fields(typing.get_args(inner)[0], key + "[]."))
        elif typing.get_origin(inner) is dict and typing.get_args(inner)[1] is ChannelConfig:
            fields.append((f"{key}.<name>.type", field))
        elif _is_model(inner):
            fields.extend(config_fields(inner, key + "."))
        else:
            fields.append((key, field))
    return fields


def documented_keys(model: type[BaseModel], prefix: str) -> list[str]:
    return [key for key, _ in config_fields(model, prefix)]


def test_every_config_key_has_a_readme_row() -> None:
    type_blocks = {f"services[].{t}" for t in checkers.SERVICE_TYPES}
    missing = [
        key
        for key in documented_keys(Config, "")
        if key not in type_blocks and f"| `{key}` |" not in README
    ]
    assert missing == []
    assert "| `services[].<type>` |" in README


def range_text(field: FieldInfo) -> str | None:
    """The range a numeric, duration or size field allows, as the README states it."""
    metadata = list(field.metadata)
    for arg in typing.get_args(field.annotation):  # Optional[Annotated[...]]
        metadata.extend(getattr(arg, "__metadata__", ()))
    low = high = None
    above = False
    for item in metadata:
        if isinstance(item, DurationRange | SizeRange):
            return item.text
        if isinstance(item, at.Ge):
            low = item.ge
        if isinstance(item, at.Gt):
            low, above = item.gt, True
        if isinstance(item, at.Le):
            high = item.le
    if low is None and high is None:
        return None
    show = [f"{v:g}" if isinstance(v, float) else str(v) for v in (low, high)]
    return f"{'above ' if above else ''}{show[0]} to {show[1]}"


def ranged_fields(model: type[BaseModel], prefix: str) -> list[tuple[str, FieldInfo]]:
    return [
        (key, field)
        for key, field in config_fields(model, prefix)
        if field.annotation in (int, float) or range_text(field)
    ]


def test_every_numeric_duration_and_size_key_has_a_range_documented_in_its_row() -> None:
    undocumented = []
    for key, field in ranged_fields(Config, ""):
        text = range_text(field)
        assert text is not None, f"{key} has no range: give it ge/le or a DurationRange"
        row = re.search(rf"^\| `{re.escape(key)}` \|.*$", README, re.M)
        if row is None or f"Range: {text}." not in row.group(0):
            undocumented.append(f"{key}: Range: {text}.")
    assert undocumented == []


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
