"""One cell of a text report: the number formatting every renderer shares
(terminal, pipeline, compare), apart so that renderers import it, not each other."""

from __future__ import annotations

from typing import Any


def num(x: Any, fmt: str = ".3f") -> str:
    """A number in ``fmt``, "-" for a missing one (every text report's cell)."""
    return format(x, fmt) if isinstance(x, (int, float)) and not isinstance(x, bool) else "-"
