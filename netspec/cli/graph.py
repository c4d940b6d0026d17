"""`netspec graph` (being written)."""

from __future__ import annotations

from typing import Any


def add(sub: Any) -> None:
    """Registers the command (nothing yet)."""
