"""A config file that is no UTF-8 is refused at its first bad byte (attack report 2, 13d)."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.config import ConfigError, read_file

BYTES = Path(__file__).parent / "fixtures" / "config" / "bytes"


def _problem(name: str) -> str:
    with pytest.raises(ConfigError) as caught:
        read_file(BYTES / name)
    (problem,) = caught.value.problems
    return str(problem).replace(str(BYTES) + "/", "")


def test_latin1_byte_is_reported_with_offset_line_and_column() -> None:
    assert _problem("latin1.yaml.bin") == (
        "latin1.yaml.bin:4: not UTF-8 text: byte 0xe9 at offset 49 (line 4, column 15); "
        "save the file as UTF-8"
    )


def test_utf16_file_is_named_as_such() -> None:
    assert _problem("utf16.yaml.bin") == (
        "utf16.yaml.bin:1: not UTF-8 text: byte 0xff at offset 0 (line 1, column 1) "
        "(a UTF-16 byte-order mark: the file is UTF-16); save the file as UTF-8"
    )
