"""``opsloop bench ingest --quick --json`` runs every path end to end and prints the contract.

No timing thresholds: the figures depend on the machine. The bench itself checks that the
database holds exactly the points the servers acknowledged, so a passing run also means
every path stored what it was sent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from click.testing import Result
from typer.testing import CliRunner

from api.cli.bench import register
from bench.ingest import PATHS
from tests.bench.nab_corpus import write_corpus


def bench_cli(args: list[str], **kw: Any) -> Result:
    """Run ``opsloop <args>`` with only the bench commands registered."""
    root = typer.Typer()
    register(root)
    return CliRunner().invoke(root, args, **kw)


def test_quick_bench_prints_the_json_contract_with_positive_figures() -> None:
    result = bench_cli(["bench", "ingest", "--quick", "--json"])
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


def test_quick_detect_bench_prints_the_json_contract_with_positive_figures() -> None:
    result = bench_cli(["bench", "detect", "--quick", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    figures = {
        "points_per_s",
        "series",
        "rounds",
        "halfspacetrees_points_per_s",
        "halfspacetrees_series",
        "ratio_to_halfspacetrees",
        "ewz_points_per_s",
        "ewz_raw_points_per_s",
    }
    assert set(data) == figures | {"detector", "halfspacetrees_rounds"}
    for key in figures:
        assert data[key] > 0, key
    assert data["ratio_to_halfspacetrees"] == pytest.approx(
        data["points_per_s"] / data["halfspacetrees_points_per_s"], rel=0.01
    )


def test_nab_bench_runs_on_a_tiny_corpus_and_prints_the_json_contract(tmp_path: Path) -> None:
    result = bench_cli(
        [
            "bench",
            "nab",
            "--data",
            str(write_corpus(tmp_path, lengths=(300, 300, 300), irregular=False)),
            "--json",
        ]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    profiles = {"standard", "reward_low_FP", "reward_low_FN"}
    assert profiles | {"thresholds", "points_per_s"} <= set(data)
    assert set(data["thresholds"]) == profiles
    assert all(data[p] <= 100.0 for p in profiles)
    assert data["points_per_s"] > 0


def test_nab_table_shows_the_published_rows_from_final_results(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path, lengths=(300, 300, 300), irregular=False)
    (corpus / "results").mkdir()
    published = {"numenta": {"standard": 12.345, "reward_low_FP_rate": 6.789, "reward_low_FN_rate": 23.456}}
    (corpus / "results" / "final_results.json").write_text(json.dumps(published))
    result = bench_cli(["bench", "nab", "--data", str(corpus)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "12.35" in result.stdout and "23.46" in result.stdout  # numenta, read from the file
    assert "74.90" in result.stdout  # ARTime, not in the file: NAB's scoreboard


def test_nab_bench_refuses_a_directory_without_a_corpus(tmp_path: Path) -> None:
    result = bench_cli(["bench", "nab", "--data", str(tmp_path), "--json"])
    assert result.exit_code != 0
