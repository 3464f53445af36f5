"""The Loghub bench: logparser's grouping accuracy, the bench on a fixture folder, and the CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import typer
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from api.cli import bench as cli_bench
from bench.loghub import grouping_accuracy, load_system, run_log_bench, system_names

LOGHUB = cli_bench.DEFAULT_LOGHUB


@pytest.mark.parametrize(
    ("truth", "parsed", "ga"),
    [
        (["a", "a", "b"], [7, 7, 9], 1.0),
        (["a", "a", "b"], [1, 1, 1], 0.0),  # one cluster mixing a and b: nothing counts
        (["a", "a", "b"], [1, 2, 3], 1 / 3),  # a split in two: only b's cluster is exactly a truth set
        (["a", "a", "a", "b"], [1, 1, 2, 3], 0.25),  # cluster 1 is pure but misses one a: not correct
        (["a", "b", "c", "c"], [1, 1, 2, 2], 0.5),
        (["x"], ["only"], 1.0),
    ],
    ids=["identical", "merged", "split", "pure-but-incomplete", "half", "single"],
)
def test_grouping_accuracy_counts_only_clusters_equal_to_a_truth_set(
    truth: list[str], parsed: list[object], ga: float
) -> None:
    assert grouping_accuracy(truth, parsed) == pytest.approx(ga)


def test_grouping_accuracy_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="truth labels"):
        grouping_accuracy(["a"], [1, 2])


labels = st.lists(st.sampled_from("abcdefg"), min_size=1, max_size=60)


@given(labels)
def test_the_truth_grouping_scores_one(truth: list[str]) -> None:
    assert grouping_accuracy(truth, truth) == 1.0


@given(labels, st.data())
def test_ga_is_invariant_under_renaming_ids(truth: list[str], data: st.DataObject) -> None:
    parsed = data.draw(st.lists(st.integers(0, 5), min_size=len(truth), max_size=len(truth)))
    rename_truth = {t: f"E{ord(t) * 3}" for t in set(truth)}
    ids = sorted(set(parsed))
    shuffled = data.draw(st.permutations(ids))
    rename_parsed = dict(zip(ids, shuffled, strict=True))
    ga = grouping_accuracy(truth, parsed)
    assert 0.0 <= ga <= 1.0
    assert grouping_accuracy([rename_truth[t] for t in truth], [rename_parsed[p] for p in parsed]) == ga
    assert grouping_accuracy(parsed, truth) == ga  # the definition is symmetric: equal sets either way


def _write_system(root: Path, name: str, rows: list[tuple[str, str]], corrected: list[str] | None) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    with (folder / f"{name}_2k.log_structured.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["LineId", "Content", "EventId", "EventTemplate"])
        for i, (content, event) in enumerate(rows, 1):
            w.writerow([i, content, event, "unused"])
    if corrected is not None:
        with (folder / f"{name}_2k.log_structured_corrected.csv").open(
            "w", newline="", encoding="utf-8"
        ) as fh:
            w = csv.writer(fh)
            w.writerow(["LineId", "Content", "EventId", "EventTemplate"])
            for i, ((content, _), event) in enumerate(zip(rows, corrected, strict=True), 1):
                w.writerow([i, content, event, "unused"])


@pytest.fixture
def fixture_folder(tmp_path: Path) -> Path:
    rows = [(f"user u{i} logged in from 10.0.0.{i}", "E1") for i in range(5)]
    rows += [(f"disk /dev/sd{i} full, {i}0 KB left", "E2") for i in range(3)]
    rows += [('quoted, "comma" value\nspanning lines 7', "E3")]
    # the corrected truth splits E1 by its last digit being even: our parser cannot, so GA drops
    corrected = ["E1a" if i % 2 else "E1b" for i in range(5)] + ["E2"] * 3 + ["E3"]
    _write_system(tmp_path, "Alpha", rows, corrected)
    _write_system(tmp_path, "Beta", rows[:8], None)  # no corrected file: scored on the original
    (tmp_path / "Empty").mkdir()  # a folder without files is skipped
    (tmp_path / "README.md").write_text("not a system")
    return tmp_path


def test_bench_on_a_fixture_folder(fixture_folder: Path) -> None:
    assert system_names(fixture_folder) == ["Alpha", "Beta"]
    assert load_system(fixture_folder, "Alpha").content[-1] == 'quoted, "comma" value\nspanning lines 7'
    seen: list[str] = []
    result = run_log_bench(fixture_folder, progress=seen.append)
    data = result.as_dict()
    assert set(data) == {"systems", "mean_grouping_accuracy", "lines_per_s", "n_lines", "original"}
    assert data["n_lines"] == 17 and data["lines_per_s"] > 0
    assert data["original"]["systems"] == {
        "Alpha": {"grouping_accuracy": 1.0},
        "Beta": {"grouping_accuracy": 1.0},
    }
    assert data["systems"]["Alpha"]["grouping_accuracy"] == pytest.approx(4 / 9, abs=1e-4)
    assert data["systems"]["Beta"]["grouping_accuracy"] == 1.0
    assert data["mean_grouping_accuracy"] == pytest.approx((4 / 9 + 1) / 2, abs=1e-4)
    assert len(seen) == 2 and seen[0].startswith("Alpha")
    only = run_log_bench(fixture_folder, systems={"Beta"}).as_dict()
    assert list(only["systems"]) == ["Beta"]


def _cli() -> typer.Typer:
    app = typer.Typer()
    cli_bench.register(app)
    return app


def test_cli_json_on_a_fixture_folder(fixture_folder: Path) -> None:
    result = CliRunner().invoke(_cli(), ["bench", "logs", "--data", str(fixture_folder), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["original"]["mean_grouping_accuracy"] == 1.0
    table = CliRunner().invoke(_cli(), ["bench", "logs", "--data", str(fixture_folder)])
    assert table.exit_code == 0 and "Alpha" in table.stdout and "mean" in table.stdout
    bad = CliRunner().invoke(_cli(), ["bench", "logs", "--data", str(fixture_folder), "--systems", "Nope"])
    assert bad.exit_code != 0


def test_default_data_is_the_shared_folder_next_to_the_repo() -> None:
    repo = Path(cli_bench.__file__).resolve().parents[2]
    expected = repo.parent / "shared" / "benchmarks" / "loghub"
    assert expected == LOGHUB


@pytest.mark.skipif(not system_names(LOGHUB), reason=f"Loghub 2k data not found at {LOGHUB}")
def test_cli_on_two_real_systems() -> None:
    result = CliRunner().invoke(
        _cli(), ["bench", "logs", "--json", "--systems", "HDFS", "--systems", "Apache"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data["systems"]) == {"HDFS", "Apache"}
    assert data["n_lines"] == 4000
    # both are easy systems on which Drain already scores >= 0.99: a regression shows here
    assert data["mean_grouping_accuracy"] >= 0.99
    assert data["original"]["mean_grouping_accuracy"] >= 0.99
