"""What counts as a whole number, a real number and a float type's name, said once for every check.

Python's ``bool`` is an ``int``, but ``True`` is never a count, a size or a rate: every setting,
file format and estimator parameter refuses it through these checks.
"""

from __future__ import annotations

import math
import numbers


def is_whole_number(value) -> bool:
    """An integer (Python's or NumPy's) that is not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real_number(value) -> bool:
    """An integer or a float (Python's or NumPy's) that is not a bool; it may be infinite or NaN."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_finite_number(value) -> bool:
    """A real number that is neither infinite nor NaN."""
    return is_real_number(value) and math.isfinite(value)


def plain_number(value):
    """NumPy's whole and real numbers as Python's ``int`` and ``float`` (as JSON writes them); others as they are."""
    if is_whole_number(value):
        return int(value)
    if is_real_number(value):
        return float(value)
    return value


def dtype_name(value) -> str:
    """The plain name of an array's (or a dtype's) float type in any library: ``float32``, ``float64``."""
    return str(getattr(value, "dtype", value)).split(".")[-1]
