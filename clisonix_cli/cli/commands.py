"""The subcommand table: (name, function). Add one line per subcommand module."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

COMMANDS: list[tuple[str, Callable[..., Any]]] = []
