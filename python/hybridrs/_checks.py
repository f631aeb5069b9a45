"""Argument checks shared by the Python wrappers of the Rust core: integers are integers (no
silent truncation of ``1.5``), in range, and every error names the argument."""

from __future__ import annotations

import operator
from typing import Any

__all__ = ["U63", "as_int"]

#: The largest value the core takes for sizes and seeds (Python ints beyond it cannot be sizes).
U63 = (1 << 63) - 1


def as_int(value: Any, field: str, lo: int = 0, hi: int = U63) -> int:
    """``value`` as an int in ``[lo, hi]``, or TypeError / ValueError naming ``field``."""
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{field}: expected an integer, got {value!r}") from None
    if not lo <= v <= hi:
        raise ValueError(f"{field}: must lie in {lo}..{hi}, got {v}")
    return v
