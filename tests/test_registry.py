"""Every registered checker imports, is a Checker with a Settings model, and has tests and docs."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

import checkers
from checkers.base import Checker
from tests.conftest import REPO


@pytest.mark.parametrize("service_type", checkers.SERVICE_TYPES)
def test_registered_checker_is_complete(service_type: str) -> None:
    cls = checkers.checker_class(service_type)
    assert issubclass(cls, Checker)
    assert issubclass(cls.Settings, BaseModel) and cls.Settings is not Checker.Settings
    assert (REPO / "tests" / f"test_checker_{service_type}.py").is_file()
    assert f"### `{service_type}`" in (REPO / "README.md").read_text()


def test_registry_covers_every_service_type() -> None:
    assert set(checkers.REGISTRY) == set(checkers.SERVICE_TYPES)


def test_systemd_unit_runs_the_daemon_and_reloads_with_hup() -> None:
    unit = (REPO / "deploy" / "lightbulb.service").read_text()
    assert "ExecStart=/opt/lightbulb/venv/bin/lightbulb run --config" in unit
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit
    assert "RestartPreventExitStatus=2" in unit
