"""Human units. Every size says which unit it is in: GB = 10^9 bytes, GiB = 2^30 bytes."""

from __future__ import annotations

__all__ = ["GB", "GIB", "gb", "gib", "human_bytes", "human_count"]

GB = 10**9
GIB = 2**30


def gb(n: int | float) -> str:
    """``n`` bytes in GB (10^9) with two decimals: ``"137.95 GB"``."""
    return f"{n / GB:,.2f} GB"


def gib(n: int | float) -> str:
    """``n`` bytes in GiB (2^30) with two decimals: ``"128.48 GiB"``."""
    return f"{n / GIB:,.2f} GiB"


def human_bytes(n: int | float) -> str:
    """Decimal units scaled to the size (B, kB, MB, GB, TB), with the binary figure for GB and above."""
    if n < 1000:
        return f"{int(n)} B"
    for unit, scale in (("kB", 10**3), ("MB", 10**6)):
        if n < scale * 1000:
            return f"{n / scale:,.1f} {unit}"
    if n < 10**12:
        return f"{gb(n)} ({gib(n)})"
    return f"{n / 10**12:,.2f} TB ({n / 2**40:,.2f} TiB)"


def human_count(n: int) -> str:
    """A parameter count in short scale: ``"68.98B"``, ``"494.0M"``, ``"1.06T"``."""
    for unit, scale in (("T", 10**12), ("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= scale:
            digits = 2 if unit in ("T", "B") else 1
            return f"{n / scale:,.{digits}f}{unit}"
    return str(n)
