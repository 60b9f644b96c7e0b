"""Confidence intervals for pass rates.

An eval runs each task a handful of times, so a raw pass rate (3 of 3 = 100%) says little on
its own. The Wilson score interval is used rather than the textbook normal approximation
because it stays inside [0, 1] and is not degenerate at 0 or n passes: 3 of 3 gives roughly
[0.44, 1.0], an honest "we do not know much yet", where the normal interval claims [1, 1].
"""

from __future__ import annotations

import math
from typing import Final

__all__ = ["Z_95", "wilson_interval"]

#: The two-sided 95% quantile of the standard normal distribution.
Z_95: Final = 1.959963984540054


def wilson_interval(passes: int, runs: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval for ``passes`` successes in ``runs`` trials.

    Args:
        passes: Trials that passed, ``0 <= passes <= runs``.
        runs: Trials made, ``>= 0``.
        z: The normal quantile of the confidence level (default: 95%, two-sided).

    Returns:
        ``(low, high)``, both in [0, 1]. With no trial nothing is known: ``(0.0, 1.0)``.

    Raises:
        ValueError: If the counts are not integers, are negative, ``passes > runs``, or
            ``z`` is not a positive finite number.
    """
    # bool is an int subclass; a True slipping in as a count is a caller bug, not one run.
    for name, value in (("passes", passes), ("runs", runs)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an integer, got {value!r}")
    if runs < 0:
        raise ValueError(f"runs must be 0 or more, got {runs}")
    if not 0 <= passes <= runs:
        raise ValueError(f"passes must be between 0 and runs ({runs}), got {passes}")
    if not (math.isfinite(z) and z > 0):
        raise ValueError(f"z must be a positive finite number, got {z!r}")
    if runs == 0:
        return (0.0, 1.0)
    n = float(runs)
    p = passes / n
    z2 = z * z
    denominator = 1.0 + z2 / n
    center = (p + z2 / (2.0 * n)) / denominator
    half = (z / denominator) * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n))
    # At 0 or n passes the bound is exactly 0 or 1 in theory; rounding would leave 1e-17
    # either side, which would print as a spurious non-zero lower bound.
    low = 0.0 if passes == 0 else max(0.0, center - half)
    high = 1.0 if passes == runs else min(1.0, center + half)
    return (low, high)
