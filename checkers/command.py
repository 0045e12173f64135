"""``command``: run a Nagios-compatible plugin; its exit code is the status, perfdata the metrics.

Exit 0/1/2/3 map to OK/DEGRADED/FAILED/UNKNOWN, so the whole monitoring-plugins
ecosystem (check_http, check_disk, check_procs …) works unchanged. The command
runs without a shell, from an argument list, in a session of its own
(:mod:`checkers.plugins`): at the deadline, or when it exits, every process it
left behind is killed, grandchildren that double-forked or called setsid too.
Output is read up to a bound and decoded as UTF-8 with replacement characters,
so a Latin-1 plugin is still FAILED with its message and perfdata.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import time

from pydantic import Field, field_validator

from checkers.base import (
    CheckContext,
    Checker,
    CheckResult,
    Metric,
    Settings,
    Status,
    invalid,
)
from checkers.plugins import run_plugin
from server.core.measures import BEYOND_LARGEST
from server.core.text import clip

EXIT_STATUS = {0: Status.OK, 1: Status.DEGRADED, 2: Status.FAILED, 3: Status.UNKNOWN}
_TOKEN = re.compile(r"(?:'(?:[^']|'')*'?|[^\s'])+")  # a quoted section may hold spaces
_PERF = re.compile(r"""(?:'((?:[^']|'')+)'|([^\s'=]+))=([^;=]*)((?:;[^;=]*){0,4})""")
_VALUE = re.compile(r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)([a-zA-Z%/]*)")
# Why a value that is not a number is refused, by its word (sign and case aside).
_NOT_NUMBERS = {
    "nan": "not a number (NaN)",
    "inf": "not a finite number",
    "infinity": "not a finite number",
    "u": "undetermined (U): the plugin could not measure it",
    "": "no value",
}
_UNITS = {
    "s": "seconds",
    "ms": "ms",
    "us": "us",
    "%": "percent",
    "B": "bytes",
    "KB": "KB",
    "MB": "MB",
    "GB": "GB",
    "TB": "TB",
    "c": "counter",
}


class CommandSettings(Settings):
    command: list[str] | str
    env: dict[str, str] = Field(default_factory=dict)

    @field_validator("command")
    @classmethod
    def _runnable(cls, value: list[str] | str) -> list[str] | str:
        """Refused at load what could only fail at every check: no program, bad quoting."""
        if isinstance(value, str):
            try:
                argv = shlex.split(value)
            except ValueError as exc:  # "No closing quotation", "No escaped character"
                raise invalid(f"expected a command line with balanced quotes ({exc})") from None
        else:
            argv = value
        if not argv or not argv[0].strip():
            raise invalid("expected a program to run, such as /usr/lib/nagios/plugins/check_disk")
        if any("\x00" in part for part in argv):
            raise invalid("expected a command without NUL characters")
        return value

    def argv(self) -> list[str]:
        return shlex.split(self.command) if isinstance(self.command, str) else list(self.command)


def parse_perfdata(text: str) -> tuple[list[Metric], list[str]]:
    """``'time'=0.2s;1;2;0; size=512B`` -> ``(metrics, refused)``.

    Labels follow the monitoring-plugins development guidelines ("Performance data"):
    items are ``'label'=value[UOM];[warn];[crit];[min];[max]`` separated by spaces; the
    quotes are optional unless the label holds a space; a label holds no ``=`` and no
    lone ``'``; a quote inside a quoted label is written twice (``'quo''te'`` is the
    label ``quo'te``). warn/crit/min/max go to a metric's tags.

    Nothing is silently dropped, merged or made up; what is no metric is named in
    ``refused`` with its reason (the check reports it as ``metrics_refused``, never
    failing the check):

    - a value that is not a finite number (``x=nan``, ``x=inf``, ``x=U``, ``x=1.2.3``,
      ``x=0,5s``, ``x=1e999``): ``"x=nan: not a number (NaN)"``;
    - an item that is not ``label=value`` as above (``sp='a b'=1``, ``e2=5=6``,
      ``'open=1``): refused whole, never split into a metric nobody printed;
    - a label printed again in the same output (``dup=1 dup=2``): the first is kept,
      the repeat refused, as Centreon's broker does (it keeps the first of identical
      metrics and warns, centreon-collect #1560) rather than averaging two readings.
    """
    metrics: list[Metric] = []
    refused: list[str] = []
    seen: set[str] = set()
    for token in _TOKEN.findall(text):
        item = _PERF.fullmatch(token)
        if not item:
            refused.append(f"{clip(token, 104)}: expected 'label'=value[unit];warn;crit;min;max")
            continue
        quoted, plain, raw, rest = item.groups()
        label = quoted.replace("''", "'") if quoted is not None else plain
        found = _VALUE.fullmatch(raw)
        value = float(found.group(1)) if found else math.nan
        if not found or not math.isfinite(value):  # a finite value's size: the runner's
            word = raw.lstrip("+-").lower()
            why = _NOT_NUMBERS.get(word, "not a number") if not found else BEYOND_LARGEST
            refused.append(f"{clip(label, 80)}={clip(raw, 24)}: {why}")
            continue
        if label in seen:
            refused.append(f"{clip(label, 80)}={clip(raw, 24)}: label printed twice, first kept")
            continue
        seen.add(label)
        tags = {}
        for name, part in zip(("warn", "crit", "min", "max"), rest.split(";")[1:], strict=False):
            if part:
                tags[name] = part
        unit = found.group(2)
        metrics.append(Metric(label, value, _UNITS.get(unit, unit), tags))
    return metrics, refused


def split_output(output: str) -> tuple[str, list[Metric], list[str]]:
    """A plugin's output -> ``(message, metrics, refused)``, by the Nagios plugin API.

    The Nagios Core plugin API ("Plugin Output Spec", also the monitoring-plugins
    guidelines' "Plugin Output"): the first line is ``TEXT OUTPUT | OPTIONAL PERFDATA``;
    the lines after it are long text up to the first later line holding a ``|``,
    whose part after the ``|`` is perfdata, and every line after that one is perfdata
    too::

        TEXT OUTPUT | OPTIONAL PERFDATA
        LONG TEXT LINE 1
        LONG TEXT LINE N | PERFDATA LINE 2
        PERFDATA LINE 3

    The message is the first line's text; ``metrics`` and ``refused`` are as
    :func:`parse_perfdata` returns for all the perfdata together.
    """
    lines = output.strip().splitlines() or [""]
    message, _, perf = lines[0].partition("|")
    perf_parts = [perf]
    for i, line in enumerate(lines[1:], start=1):
        if "|" in line:
            perf_parts.append(line.partition("|")[2])
            perf_parts.extend(lines[i + 1 :])
            break
    return message.strip(), *parse_perfdata(" ".join(perf_parts))


class CommandChecker(Checker[CommandSettings]):
    Settings = CommandSettings
    timeout_status = Status.UNKNOWN  # Nagios' convention for a plugin that timed out

    def describe(self) -> str:
        return self.settings.argv()[0]

    async def check_async(self, ctx: CheckContext) -> CheckResult:
        argv = self.settings.argv()
        started = time.perf_counter()
        try:
            run = await run_plugin(argv, {**_base_env(), **self.settings.env})
        except OSError as exc:
            return CheckResult(Status.UNKNOWN, f"cannot run {argv[0]}: {exc.strerror or exc}")
        elapsed = int((time.perf_counter() - started) * 1000)
        stdout = run.stdout.decode("utf-8", errors="replace")
        stderr = run.stderr.decode("utf-8", errors="replace").strip()
        message, metrics, refused = split_output(stdout)
        code = run.returncode
        status = EXIT_STATUS.get(code, Status.UNKNOWN)
        if code not in EXIT_STATUS:
            message = f"exit code {code}: {message or clip(stderr, 200)}"
        details: dict[str, object] = {"exit_code": code}
        if stderr:
            details["stderr"] = clip(stderr, 1000)
        if run.dropped:
            details["output_bytes_dropped"] = run.dropped
        if refused:
            details["metrics_refused"] = refused
        return CheckResult(
            status, message or f"exit code {code}", details, elapsed, metrics=metrics
        )


def _base_env() -> dict[str, str]:
    """Plugins get a minimal, predictable environment, not the daemon's secrets."""
    return {k: v for k, v in os.environ.items() if k in {"PATH", "LANG", "LC_ALL", "HOME", "TZ"}}
