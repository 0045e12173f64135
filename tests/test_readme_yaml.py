"""Every YAML example in the README loads with the real config loader.

Fenced ``yaml`` blocks are either a whole config (top-level sections) or one
service type's block (``python_process: {...}``), which is checked inside a
service of that type. Inline code that writes a service type's block
(`` `command: {command: [...]}` ``) is checked the same way, so a snippet that
the loader would refuse cannot stay in the README. ``${VAR}`` references get a
placeholder value; a config without services gets one service per stack it names.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

import checkers
from server.config.models import Config
from server.validation import ConfigError, parse_config
from tests.conftest import REPO

README = (REPO / "README.md").read_text()
FENCED = re.compile(r"```yaml\n(.*?)```", re.S)
SECTIONS = tuple(Config.model_fields)  # top-level keys: an inline `relations: [...]` too
INLINE = re.compile(r"`((" + "|".join((*checkers.SERVICE_TYPES, *SECTIONS)) + r"): [\[{][^`]*)`")


def examples() -> list[tuple[int, str]]:
    found = [(README[: m.start()].count("\n") + 2, m.group(1)) for m in FENCED.finditer(README)]
    found += [
        (README[: m.start()].count("\n") + 1, m.group(1))
        for m in INLINE.finditer(README)
        if "…" not in m.group(1)  # a placeholder, not an example
    ]
    return found


def as_config(text: str) -> str:
    data: Any = yaml.safe_load(text)
    assert isinstance(data, dict), "an example is a mapping"
    if len(data) == 1 and next(iter(data)) in checkers.SERVICE_TYPES:
        kind = next(iter(data))
        service = {"id": "example", "type": kind, kind: data[kind]}
        return yaml.safe_dump({"services": [service]})
    if "services" not in data:
        stacks = set(re.findall(r"stack:([\w-]+)", text)) or {"default"}
        ids = {f"svc-{s}": s for s in sorted(stacks)}
        for relation in data.get("relations") or []:  # services the example relates
            ids.update({relation[k]: "default" for k in ("source", "target") if k in relation})
        data["services"] = [
            {"id": i, "stack": s, "type": "tcp", "tcp": {"host": "127.0.0.1", "port": 1}}
            for i, s in ids.items()
        ]
    if "channels" not in data:  # a fragment: the channels it names are defined elsewhere
        named = {c for rule in data.get("alert_rules") or [] for c in rule.get("channels", [])}
        stub = {"type": "webhook", "url": "https://alerts.example.org/hook"}
        data["channels"] = dict.fromkeys(sorted(named), stub) or None
        if data["channels"] is None:
            del data["channels"]
    return yaml.safe_dump(data, sort_keys=False)


EXAMPLES = examples()


def test_the_readme_has_yaml_examples_to_check() -> None:
    assert len(EXAMPLES) >= 8


@pytest.mark.parametrize(("line", "text"), EXAMPLES, ids=[f"README:{n}" for n, _ in EXAMPLES])
def test_each_readme_yaml_example_loads_with_the_real_loader(line: int, text: str) -> None:
    env = dict.fromkeys(re.findall(r"\$\{(\w+)", text), "placeholder")
    try:
        parse_config(as_config(text), f"README.md:{line}", environ=env)
    except ConfigError as exc:
        pytest.fail(f"README.md line {line}: the example does not load:\n{exc.report()}")
