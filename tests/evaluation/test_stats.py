"""The Wilson score interval against values computed by hand (40-digit decimals)."""

from __future__ import annotations

import math
import re

import pytest

from charter.evaluation.stats import Z_95, wilson_interval


@pytest.mark.parametrize(
    ("passes", "runs", "low", "high"),
    [
        (0, 10, 0.0, 0.277532799863),  # high = z^2 / (n + z^2)
        (10, 10, 0.722467200137, 1.0),  # low = n / (n + z^2)
        (5, 10, 0.236593090513, 0.763406909487),
        (1, 1, 0.206549314377, 1.0),
        (3, 3, 0.438502968245, 1.0),
        (7, 20, 0.181191824101, 0.567145723315),
    ],
)
def test_known_values(passes: int, runs: int, low: float, high: float) -> None:
    got_low, got_high = wilson_interval(passes, runs)
    assert got_low == pytest.approx(low, abs=1e-6)
    assert got_high == pytest.approx(high, abs=1e-6)


def test_bounds_at_zero_and_all_passes_are_exact() -> None:
    assert wilson_interval(0, 7)[0] == 0.0
    assert wilson_interval(7, 7)[1] == 1.0


def test_no_runs_knows_nothing() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_interval_holds_the_rate_and_narrows_with_more_runs() -> None:
    small = wilson_interval(8, 10)
    large = wilson_interval(800, 1000)
    assert small[0] < 0.8 < small[1]
    assert large[0] < 0.8 < large[1]
    assert large[1] - large[0] < small[1] - small[0]


def test_a_wider_z_gives_a_wider_interval() -> None:
    narrow = wilson_interval(5, 10, z=1.0)
    wide = wilson_interval(5, 10, z=Z_95)
    assert wide[0] < narrow[0]
    assert narrow[1] < wide[1]


@pytest.mark.parametrize(
    ("passes", "runs", "z", "message"),
    [
        (4, 3, Z_95, "passes must be between 0 and runs (3), got 4"),
        (-1, 3, Z_95, "passes must be between 0 and runs (3), got -1"),
        (0, -1, Z_95, "runs must be 0 or more, got -1"),
        (True, 3, Z_95, "passes must be an integer, got True"),
        (1.0, 3, Z_95, "passes must be an integer, got 1.0"),
        (1, 3.0, Z_95, "runs must be an integer, got 3.0"),
        (1, 3, 0.0, "z must be a positive finite number"),
        (1, 3, -1.0, "z must be a positive finite number"),
        (1, 3, math.nan, "z must be a positive finite number"),
        (1, 3, math.inf, "z must be a positive finite number"),
    ],
)
def test_bad_input_is_refused(passes: int, runs: int, z: float, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        wilson_interval(passes, runs, z)
