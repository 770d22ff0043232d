"""The subcommand table, in the order ``clisonix --help`` lists them.

Each module imports only typer/rich at module level; heavy rooms load inside the command.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from clisonix_cli.cli.bench import bench
from clisonix_cli.cli.deid import deid
from clisonix_cli.cli.ops import ops
from clisonix_cli.cli.qc import qc
from clisonix_cli.cli.scan import scan
from clisonix_cli.cli.synth import synth
from clisonix_cli.cli.transform import transform
from clisonix_cli.cli.verify import verify

COMMANDS: list[tuple[str, Callable[..., Any]]] = [
    ("scan", scan),
    ("transform", transform),
    ("deid", deid),
    ("ops", ops),
    ("verify", verify),
    ("qc", qc),
    ("synth", synth),
    ("bench", bench),
]
