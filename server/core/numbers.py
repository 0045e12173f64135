"""Numbers written in config text: plain decimal in ASCII digits, nothing else.

Python's ``int()``/``float()`` read more than a config documents: other scripts'
digits (``"\u0661"`` is 1), underscores (``"1_000"``), surrounding blanks; YAML 1.1 reads
``1_000``, ``0x1F``, ``017`` (octal 15), ``0b101`` and ``1:30`` (base 60: 90) as
numbers too. A value written so is refused with the plain spelling of what it was
read as (``write 1000``), in conditions, ``${VAR}`` text and the file alike.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

from server.core import humanize

# sign, digits with an optional fraction (or a bare fraction), optional exponent
PLAIN = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DIGITS = re.compile(r"[+-]?[0-9]+")
_LEADING_ZERO = re.compile(r"[+-]?0[0-9]")  # 017: YAML 1.1 reads it as octal
EXPECTED = 'a plain decimal number in ASCII digits 0-9 (no "_", no other scripts\' digits)'


SHOWN_DIGITS = 40  # a number written longer is quoted back by its ends and its length


def is_finite(value: float) -> bool:
    """``math.isfinite`` for any number YAML reads: an ``int`` of 400 digits is finite,
    though ``math.isfinite`` raises ``OverflowError`` converting it to a float."""
    return isinstance(value, int) or math.isfinite(value)


def abbreviated(text: str) -> str:
    """``text`` as a report quotes it: a 400-digit number as ``99999999…99999999 (400
    characters)``, so one bad value cannot bury the other problems; shorter text unchanged."""
    if len(text) <= SHOWN_DIGITS:
        return text
    return f"{text[:8]}…{text[-8:]} ({len(text)} characters)"


def is_plain(text: str) -> bool:
    """Whether ``text`` is a number as the README documents them (``-2``, ``0.5``, ``1e3``)."""
    return bool(PLAIN.fullmatch(text)) and not _LEADING_ZERO.match(text)


def read_plain(text: str) -> float | None:
    """The number a plain decimal ``text`` spells, or None when it is none.

    YAML 1.1 reads ``1e3`` and ``9.99e1`` as strings (its floats need a ``.`` and a
    signed exponent), while a condition reads them as numbers; the config reads them as
    the README documents, one rule everywhere. A whole value of at most 18 digits
    (``9e1``) is an ``int``, so a whole-number setting takes it as written; any other is
    a ``float`` (``1e400`` is infinite: refused where it is judged, never expanded).
    """
    if not is_plain(text):
        return None
    exact = Decimal(text)
    if exact == exact.to_integral_value() and exact.adjusted() < 18:
        return int(exact)
    return float(text)


def read_whole(text: str) -> int | None:
    """The whole number a plain decimal ``text`` spells, or None: ``-42``, ``9e1`` and
    ``2.0`` are whole; ``017``, ``1_0``, ``0.5`` and ``12e-1`` are not (:func:`is_plain`).
    Digits alone are read exactly up to :data:`SHOWN_DIGITS` (a longer one is refused
    as written: ``int()`` refuses over 4300 digits); an exponent, as :func:`read_plain`."""
    if not is_plain(text):
        return None
    if _DIGITS.fullmatch(text):
        return int(text) if len(text) <= SHOWN_DIGITS else None
    whole = read_plain(text)
    return whole if isinstance(whole, int) else None


def as_read(text: str, value: float) -> str:
    """A plain number ``text`` quoted back as written, noting what a float made of it when
    that is another number: ``99.999999999999999 (a float rounds it to 100)``,
    ``1e400 (too large to read as a number)``."""
    shown = abbreviated(text)
    if not is_finite(value):
        return f"{shown} (too large to read as a number)"
    if isinstance(value, float) and Decimal(repr(value)) != Decimal(text):
        return f"{shown} (a float rounds it to {spelled(value)})"
    return shown


def spelled(value: float) -> str:
    """``value`` in plain decimal, as a report's fix writes it (``1000``, ``0.5``), never in
    scientific notation: ``1e16`` is ``10000000000000000``, a float read from
    ``123456789012345678`` is ``123456789012345680`` (the digits it holds), an ``int`` is
    every digit of it; a float's shortest digits otherwise (:func:`server.core.humanize.exact`).
    ``value`` is finite; a long result is the caller's to :func:`abbreviated`."""
    if isinstance(value, int) or (value == int(value) and abs(value) < 1e16):
        return str(int(value))
    return humanize.exact(value)
