"""Numbers as pages and notices write them: no scientific notation, and never rounded
onto a number they are not (100 %, 0 %, a target's last digit, 1,000x)."""

from __future__ import annotations

import re

import pytest

from server.core.humanize import exact, multiple, number, percent, significant, times_ten_to

SCIENTIFIC = re.compile(r"\de[-+]?\d", re.I)


@pytest.mark.parametrize(
    "value", [99.99999999999999, 1e-10, 5e-324, 99.9, 0.1 + 0.2, 1e16, 123456.789, 100.0]
)
def test_exact_reads_back_as_the_same_float_without_an_exponent(value: float) -> None:
    shown = exact(value)
    assert float(shown) == value and not SCIENTIFIC.search(shown), shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [(4.32e-8, "0.0000000432"), (0.0432, "0.0432"), (12.34, "12.3"), (12_345.6, "12,300"),
     (-0.000123, "-0.000123"), (0.0, "0")],
)  # fmt: skip
def test_significant_figures_are_written_out(value: float, shown: str) -> None:
    assert significant(value) == shown


@pytest.mark.parametrize(
    ("value", "places", "shown"),
    [(99.68, 0, "99.7%"), (28.4, 0, "28%"), (0.04, 0, "0.04%"), (-0.3, 0, "-0.3%"),
     (100.0, 0, "100%"), (0.0, 2, "0.00%"), (99.996, 2, "99.996%"), (99.95, 2, "99.95%"),
     (99.99999999999999, 2, "99.99999999999999%")],
)  # fmt: skip
def test_a_percentage_never_rounds_onto_0_or_100_unless_it_is(
    value: float, places: int, shown: str
) -> None:
    assert percent(value, places) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [(1000.0, "1,000x"), (999.9999999999991, "1,000x"), (1000.0000000001, "1,000x"),
     (1000.6, "over 1,000x"), (float("inf"), "over 1,000x"), (0.4123, "0.41x"),
     (1e-5, "0.00001x"), (14.4, "14x")],
)  # fmt: skip
def test_a_multiple_is_over_the_cap_only_past_it(value: float, shown: str) -> None:
    assert multiple(value) == shown


def test_plain_numbers_and_axis_powers_have_no_exponent() -> None:
    assert [number(v) for v in (1.23e-5, 2.4285714285714284, 1e-15, None)] == [
        "0.0000123", "2.43", "0.000000000000001", "-"]  # fmt: skip
    assert times_ten_to(-15) == "\N{MULTIPLICATION SIGN} 10⁻¹⁵"
