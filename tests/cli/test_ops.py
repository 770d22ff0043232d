"""``clisonix ops``: the catalogue from the declarations, human and JSON, without numba."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from clisonix_cli.cli.app import app
from clisonix_cli.transforms.registry import all_ops

runner = CliRunner()


def test_ops_json_lists_every_op_with_params() -> None:
    result = runner.invoke(app, ["ops", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    ops = {op["name"]: op for op in doc["ops"]}
    assert list(ops) == list(all_ops())
    window = ops["window"]
    assert (
        window["version"] == 1 and window["family"] == "intensity" and window["fusable"]
    )
    params = {p["name"]: p for p in window["params"]}
    assert params["preset"]["choices"][:2] == ["brain", "subdural"]
    assert params["center"]["unit"] == "HU" and params["center"]["type"] == "float"
    assert params["dtype"]["default"] == "float32" and not params["dtype"]["required"]
    assert {p["name"]: p["required"] for p in ops["svd"]["params"]}["k"] is True
    for op in doc["ops"]:
        assert op["summary"]
        for p in op["params"]:
            assert set(p) == {
                "name",
                "type",
                "required",
                "default",
                "unit",
                "choices",
                "doc",
            }


def test_ops_table_names_every_op_and_param() -> None:
    result = runner.invoke(app, ["ops"])
    assert result.exit_code == 0, result.output
    for name, op in all_ops().items():
        assert name in result.stdout
        for p in op.params:
            assert p.name in result.stdout


def test_ops_and_help_import_no_numba() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from clisonix_cli.cli.app import app\n"
        "r = CliRunner().invoke(app, ['ops'])\n"
        "assert r.exit_code == 0, r.output\n"
        "r = CliRunner().invoke(app, ['ops', '--json'])\n"
        "assert r.exit_code == 0, r.output\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "assert 'numba' not in sys.modules, 'numba imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
