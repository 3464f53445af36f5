"""``opsloop bench ingest --quick --json`` runs every path end to end and prints the contract.

No timing thresholds: the figures depend on the machine. The bench itself checks that the
database holds exactly the points the servers acknowledged, so a passing run also means
every path stored what it was sent.
"""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from api.cli_bench import register
from bench.ingest import PATHS


def test_quick_bench_prints_the_json_contract_with_positive_figures() -> None:
    root = typer.Typer()
    register(root)
    result = CliRunner().invoke(root, ["bench", "ingest", "--quick", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    # the contract's keys, plus the documented extension (the long-format anchor)
    assert set(data) == {"raw_arrow_rows_per_s", "raw_arrow_long_rows_per_s", "paths"}
    assert data["raw_arrow_rows_per_s"] > 0 and data["raw_arrow_long_rows_per_s"] > 0
    assert list(data["paths"]) == list(PATHS)
    for name, entry in data["paths"].items():
        assert set(entry) == {"points_per_s", "ratio_to_raw", "shape"}, name
        assert entry["shape"], name
        assert entry["points_per_s"] > 0, name
        assert entry["ratio_to_raw"] > 0, name
