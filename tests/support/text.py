"""Text that exercises what PostgreSQL stores of it."""

from __future__ import annotations


def incompressible(count: int, start: int = 0) -> str:
    """`count` distinct printable characters of four bytes each in UTF-8 (CJK extension B),
    in an order PostgreSQL cannot compress away."""
    return "".join(chr(0x20000 + (start + i * 7919) % 40000) for i in range(count))
