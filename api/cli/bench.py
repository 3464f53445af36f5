"""``opsloop bench ...``: benchmarks that print figures (ingest, detect, nab, e2e, incidents, correlation,
slo, diagnose, rca, nezha-live, logs, node-exporter). The one CLI module that may import ``bench``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from api.cli import JsonOption

#: The ``bench`` group; each benchmark is one command on it.
bench_app = typer.Typer(help="Benchmarks: measured figures, each against its anchor.", no_args_is_help=True)


QuickOption = Annotated[bool, typer.Option("--quick", help="tiny sizes: a smoke test, not a measurement")]


@bench_app.command("ingest")
def bench_ingest(
    as_json: JsonOption = False,
    quick: QuickOption = False,
) -> None:
    """Points per second of every ingest path, with its ratio to a raw DuckDB Arrow insert."""
    from bench.ingest import PATHS, run_ingest_bench

    err = Console(stderr=True)
    result = run_ingest_bench(quick, progress=None if as_json else lambda msg: err.print(f"[dim]{msg}[/dim]"))
    data = result.as_dict()
    if as_json:
        print(json.dumps(data))
        return
    table = Table("path", "points/s", "ratio to raw", "shape", title="opsloop ingest throughput")
    table.add_row(
        "raw Arrow insert (anchor)",
        f"{data['raw_arrow_rows_per_s']:,.0f}",
        "1.0000",
        f"{result.anchor_rows:,} rows in one INSERT",
    )
    table.add_row(
        "raw Arrow insert, long format",
        f"{data['raw_arrow_long_rows_per_s']:,.0f}",
        f"{data['raw_arrow_long_rows_per_s'] / data['raw_arrow_rows_per_s']:.4f}",
        "the bulk files' rows as they stand (name, labels as text)",
    )
    for name in PATHS:
        entry, res = data["paths"][name], result.paths.get(name)
        if entry["points_per_s"] is None:
            table.add_row(name, "[red]missing[/red]", "", entry.get("missing", ""))
        else:
            table.add_row(
                name,
                f"{entry['points_per_s']:,.0f}",
                f"{entry['ratio_to_raw']:.4f}",
                res.shape if res else "",
            )
    Console().print(table)


#: NAB's published scoreboard rows shown beside ours: (label, results dir, fallback scores).
NAB_SCOREBOARD: tuple[tuple[str, str, tuple[float, float, float]], ...] = (
    ("ARTime", "ARTime", (74.9, 65.1, 80.4)),
    ("Numenta HTM", "numenta", (70.1, 63.1, 74.3)),
    ("CAD OSE", "contextOSE", (69.9, 67.0, 73.2)),
    ("windowedGaussian", "windowedGaussian", (39.6, 20.9, 47.4)),
)
#: Our profile names -> the keys of NAB's ``results/final_results.json``.
NAB_PROFILES = {
    "standard": "standard",
    "reward_low_FP": "reward_low_FP_rate",
    "reward_low_FN": "reward_low_FN_rate",
}


def published_nab_scores(data: Path) -> list[tuple[str, tuple[float, float, float]]]:
    """The scoreboard rows, from ``results/final_results.json`` under ``data`` when it is there."""
    path = data / "results" / "final_results.json"
    published: dict[str, dict[str, float]] = json.loads(path.read_text()) if path.is_file() else {}
    rows = []
    for label, key, fallback in NAB_SCOREBOARD:
        entry = published.get(key)
        scores = tuple(float(entry[p]) for p in NAB_PROFILES.values()) if entry else fallback
        rows.append((label, (scores[0], scores[1], scores[2])))
    return rows


@bench_app.command("detect")
def bench_detect(as_json: JsonOption = False, quick: QuickOption = False) -> None:
    """Points per second of the default detector on 10,000 series, against river's Half-Space Trees."""
    from bench.detect_speed import run_detect_speed

    err = Console(stderr=True)
    if as_json:
        print(json.dumps(run_detect_speed(quick=quick).as_dict()))
        return
    with err.status("measuring detectors") as status:
        result = run_detect_speed(quick=quick, progress=lambda msg: status.update(msg))
    data = result.as_dict()
    table = Table("detector", "points/s", "x HST", "run", title="opsloop detector throughput")
    hst = result.halfspacetrees_points_per_s

    def row(name: str, pps: float, shape: str) -> None:
        table.add_row(name, f"{pps:,.0f}", f"{pps / hst:,.1f}", shape)

    row(f"{data['detector']} (default)", result.points_per_s, f"{result.series:,} series x {result.rounds}")
    row(
        "river HalfSpaceTrees", hst, f"{result.halfspacetrees_series} series x {result.halfspacetrees_rounds}"
    )
    row("EW z-score", result.ewz_points_per_s, "same harness")
    row("EW z-score, bare numpy", result.ewz_raw_points_per_s, "no protocol")
    Console().print(table)


@bench_app.command("nab")
def bench_nab(
    data: Annotated[
        Path, typer.Option("--data", help="NAB checkout: data/, labels/ and (for the table) results/")
    ] = Path("../shared/benchmarks/nab"),
    as_json: JsonOption = False,
) -> None:
    """NAB's three profile scores of the default detector, beside NAB's published scoreboard."""
    from bench.nab import run_nab

    if not (data / "labels").is_dir():
        raise typer.BadParameter(f"{data} holds no NAB corpus (labels/ is missing)", param_hint="--data")
    err = Console(stderr=True)
    if as_json:
        print(json.dumps(run_nab(data).as_dict()))
        return
    with err.status("running NAB") as status:
        result: dict[str, Any] = run_nab(data, progress=lambda msg: status.update(msg)).as_dict()
    table = Table("detector", *NAB_PROFILES, title=f"NAB scores ({result['points_per_s']:,.0f} points/s)")
    table.add_row("opsloop (default detector)", *(f"{result[p]:.2f}" for p in NAB_PROFILES), style="bold")
    for label, scores in published_nab_scores(data):
        table.add_row(f"{label} (published)", *(f"{s:.2f}" for s in scores))
    table.add_row("threshold (ours)", *(f"{result['thresholds'][p]:.4g}" for p in NAB_PROFILES), style="dim")
    Console().print(table)


@bench_app.command("e2e")
def bench_e2e(
    as_json: JsonOption = False,
    quick: Annotated[
        bool, typer.Option("--quick", help="tiny sizes: a smoke test, not a measurement")
    ] = False,
) -> None:
    """Lag from remote-write ack to bands/anomalies stored, at 100,000 points/s (target: p99 < 1 s)."""
    from bench.detect_e2e import run_detect_e2e

    err = Console(stderr=True)
    if as_json:
        print(json.dumps(run_detect_e2e(quick).as_dict()))
        return
    with err.status("end-to-end detection") as status:
        result = run_detect_e2e(quick, progress=lambda msg: status.update(msg))
    table = Table("figure", "value", title="opsloop end-to-end detection (POST ack -> output stored)")
    table.add_row(
        "rate sent / target", f"{result.points_per_s:,.0f} / {result.target_points_per_s:,.0f} points/s"
    )
    table.add_row("series x seconds", f"{result.series:,} x {result.seconds:.1f}")
    table.add_row("points scored / sent", f"{result.points_scored:,} / {result.points_sent:,}")
    table.add_row(
        "band lag p50 / p99 / max",
        f"{result.lag_p50_s:.3f} / {result.lag_p99_s:.3f} / {result.lag_max_s:.3f} s ({result.probes} probes)",
    )
    anomaly = "not seen" if result.anomaly_lag_s is None else f"{result.anomaly_lag_s:.3f} s"
    table.add_row("spike -> anomaly listed", anomaly)
    table.add_row(
        "engine lag mean / within 1 s",
        f"{result.engine_lag_mean_s:.3f} s / {result.engine_lag_within_1s:.1%}",
    )
    table.add_row("target met", "[green]yes[/green]" if result.meets_target else "[red]no[/red]")
    Console().print(table)


def _family_bench(families: str, keep: Path | None, as_json: bool) -> None:
    """``bench incidents --families``: figures per split (tune, report) and the gap between them."""
    from bench.incidents import FAMILY_SPLITS, family_gap, run_family_bench

    splits = list(FAMILY_SPLITS) if families == "all" else [families]
    if any(s not in FAMILY_SPLITS for s in splits):
        raise typer.BadParameter(f"expected tune, report or all; got {families!r}", param_hint="--families")
    err = Console(stderr=True)
    out: dict[str, Any] = {}
    with err.status("simulate + replay families") as status:
        for split in splits:

            def progress(n: int, info: dict[str, Any], split: str = split) -> None:
                status.update(f"{split} family {info['seed']} ({n}/{len(FAMILY_SPLITS[split])}): "
                              f"{info['detected']}/{info['faults']} faults detected, {info['incidents']} incidents")  # fmt: skip

            out[split] = run_family_bench(split, keep=keep / split if keep else None, progress=progress)
    if len(splits) == 2:
        out["gap"] = family_gap(out["tune"], out["report"])
    if as_json:
        print(json.dumps(out))
        return
    table = Table("split", "families", "faults", "recall", "precision", "AC@1", "AC@3", "pairwise F1",
                  title="opsloop incidents over simulator families")  # fmt: skip
    for split in splits:
        r = out[split]
        table.add_row(split, str(r["seeds"]), str(r["faults"]), f"{r['fault_recall']:.3f}",
                      f"{r['incident_precision']:.3f}", f"{r['rca']['AC@1']:.3f}", f"{r['rca']['AC@3']:.3f}",
                      f"{r['pairwise_f1']:.3f}")  # fmt: skip
    if "gap" in out:
        g = out["gap"]
        table.add_row("gap (report - tune)", "", "", f"{g['fault_recall']:+.3f}", f"{g['incident_precision']:+.3f}",
                      f"{g['AC@1']:+.3f}", f"{g['AC@3']:+.3f}", "")  # fmt: skip
    Console().print(table)


@bench_app.command("incidents")
def bench_incidents(
    as_json: JsonOption = False,
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="how many simulator seeds")] = 10,
    first_seed: Annotated[int, typer.Option("--first-seed", min=1, help="the first seed (default 1)")] = 1,
    families: Annotated[
        str | None, typer.Option("--families", help="randomised families instead: tune, report or all")
    ] = None,
    keep: Annotated[
        Path | None, typer.Option("--keep", help="keep the scenarios and databases in this folder")
    ] = None,
) -> None:
    """Simulate N seeds, replay each, score incidents against truth (recall, precision, grouping, TTD, root cause)."""
    from bench.incidents import run_incident_bench

    err = Console(stderr=True)
    if families is not None:
        _family_bench(families, keep, as_json)
        return
    with err.status("simulate + replay") as status:

        def progress(n: int, info: dict[str, Any]) -> None:
            status.update(f"seed {info['seed']} ({n}/{seeds}): {info['detected']}/{info['faults']} faults "
                          f"detected, {info['incidents']} incidents")  # fmt: skip

        result = run_incident_bench(
            tuple(range(first_seed, first_seed + seeds)), keep=keep, progress=progress
        )
    if as_json:
        print(json.dumps(result))
        return
    table = Table(
        "figure", "value", "target", title=f"opsloop incidents over {result['seeds']} simulator seeds"
    )
    table.add_row("fault recall", f"{result['fault_recall']:.3f} of {result['faults']} faults", ">= 0.95")
    table.add_row(
        "incident precision", f"{result['incident_precision']:.3f} of {result['incidents']}", ">= 0.9"
    )
    table.add_row(
        "alert grouping pairwise F1",
        f"{result['pairwise_f1']:.3f} (P {result['pairwise_precision']:.3f}, R {result['pairwise_recall']:.3f})",
        ">= 0.9",
    )
    table.add_row(
        "alerts per incident", f"{result['alerts_per_incident']:.1f} ({result['alerts']} alerts)", ""
    )
    table.add_row(
        "time to detect, median / p90",
        f"{result['median_ttd_intervals']} / {result['p90_ttd_intervals']} intervals",
        "median <= 2",
    )
    for kind, v in result["per_kind"].items():
        table.add_row(f"  recall: {kind}", f"{v['recall']:.2f} of {v['faults']}", "")
    rca = result["rca"]
    table.add_row(
        "root cause ranked first (AC@1)",
        f"{rca['AC@1']:.3f} (AC@3 {rca['AC@3']:.3f}, Avg@5 {rca['Avg@5']:.3f}, n {rca['n']})",
        ">= 0.85",
    )
    if rca["kind_agreement"] is not None:
        table.add_row("  kind agrees with the fault", f"{rca['kind_agreement']:.3f}", "")
    table.add_row("replay speed", f"{result['replay_points_per_s']:,.0f} points/s", "")
    Console().print(table)


@bench_app.command("correlation")
def bench_correlation(
    as_json: JsonOption = False,
    rate: Annotated[int, typer.Option("--rate", min=1, help="alerts per minute")] = 10_000,
    seconds: Annotated[float, typer.Option("--seconds", min=1.0, help="how long to sustain it")] = 60.0,
    services: Annotated[int, typer.Option("--services", min=2, help="services in the estate")] = 300,
) -> None:
    """Sustain N alerts/minute into the incident pipeline; print p50/p99 queued -> correlated and stored."""
    from bench.correlation_speed import run_correlation_speed

    err = Console(stderr=True)
    with err.status(f"{rate:,} alerts/min for {seconds:.0f} s"):
        result = run_correlation_speed(rate, seconds, services)
    if as_json:
        print(json.dumps(result))
        return
    table = Table("figure", "value", title="opsloop correlation throughput")
    table.add_row("alerts/min sustained", f"{result['alerts_per_min']:,.0f} for {result['seconds']:.0f} s")
    table.add_row("alerts stored / incidents", f"{result['alerts_stored']:,} / {result['incidents']:,}")
    table.add_row(
        "latency p50 / p99 / max",
        f"{result['latency_p50_s']:.3f} / {result['latency_p99_s']:.3f} / {result['latency_max_s']:.3f} s",
    )
    table.add_row(
        "target p99 < 1 s", "[green]met[/green]" if result["latency_p99_s"] < 1 else "[red]missed[/red]"
    )
    Console().print(table)


@bench_app.command("slo")
def bench_slo(
    as_json: JsonOption = False,
    slos: Annotated[int, typer.Option("--slos", min=1, help="SLOs (each with its own two series)")] = 1000,
    days: Annotated[int, typer.Option("--days", min=1, help="days of 1-minute data")] = 30,
) -> None:
    """Evaluate N SLOs over D days of 1-minute data once; print the time and the ratio to a bare scan."""
    from bench.slo_speed import run_slo_speed

    err = Console(stderr=True)
    with err.status("loading") as status:
        result = run_slo_speed(slos, days, progress=lambda msg: status.update(msg))
    if as_json:
        print(json.dumps(result))
        return
    table = Table("figure", "value", title=f"opsloop SLO evaluation: {slos:,} SLOs x {days} days")
    table.add_row("points read", f"{result['points']:,}")
    table.add_row("evaluate every SLO (target <= 5 s)", f"{result['evaluate_s']:.2f} s")
    table.add_row("bare DuckDB scan of the same rows", f"{result['scan_s']:.2f} s")
    table.add_row("ratio to the scan", f"{result['ratio_to_scan']:.1f}x")
    table.add_row("states", ", ".join(f"{k} {v}" for k, v in sorted(result["states"].items())))
    Console().print(table)


@bench_app.command("diagnose")
def bench_diagnose(
    as_json: JsonOption = False,
    services: Annotated[int, typer.Option("--services", min=2, help="services, ten series each")] = 50,
    minutes: Annotated[int, typer.Option("--minutes", min=10, help="minutes of data")] = 60,
    interval: Annotated[int, typer.Option("--interval", min=1, help="seconds between points")] = 10,
) -> None:
    """Time one incident diagnosis over SERVICES x 10 series and MINUTES of data (target < 1 s for 500 x 1 h)."""
    from bench.diagnose_speed import run_diagnose_speed

    with Console(stderr=True).status("building the estate and diagnosing"):
        result = run_diagnose_speed(services=services, minutes=minutes, interval_s=interval)
    if as_json:
        print(json.dumps(result))
        return
    table = Table("figure", "value", title=f"opsloop diagnose: {result['series']} series x {minutes} min")
    table.add_row("points / log lines stored", f"{result['points']:,} / {result['log_lines']:,}")
    table.add_row("candidates / series / log lines read",
                  f"{result['candidates']} / {result['series_read']} / {result['log_lines_read']:,}")  # fmt: skip
    table.add_row(
        "diagnosis, median (max) of 5", f"{result['median_seconds']:.3f} s ({result['max_seconds']:.3f} s)"
    )
    table.add_row(
        "target < 1 s", "[green]met[/green]" if result["median_seconds"] < 1 else "[red]missed[/red]"
    )
    top = result["top_hypothesis"] or {}
    table.add_row(
        "top hypothesis / injected root", f"{top.get('service')} ({top.get('kind')}) / {result['root_cause']}"
    )
    Console().print(table)


#: The Nezha subset shipped beside the repository (``/work/shared/...`` from ``/work/main``).
DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "benchmarks" / "rca" / "nezha"


@bench_app.command("rca")
def bench_rca(
    data: Annotated[
        Path, typer.Option("--data", help="folder of Nezha day folders (<day>/metric/*.csv + fault list)")
    ] = DEFAULT_DATA,
    as_json: JsonOption = False,
) -> None:
    """AC@1/3/5 and Avg@5 of the metric-based ranker per system, split into resource and code faults."""
    from bench.rca_nezha import PUBLISHED, day_folders, run_rca_bench

    if not data.is_dir() or not day_folders(data):
        raise typer.BadParameter(f"{data} holds no Nezha day folders (<day>/metric/)", param_hint="--data")
    if as_json:
        print(json.dumps(run_rca_bench(data).as_dict()))
        return
    err = Console(stderr=True)
    with err.status("ranking") as status:
        result = run_rca_bench(data, progress=lambda msg: status.update(msg)).as_dict()
    table = Table(
        "system",
        "method",
        "faults",
        "AC@1",
        "AC@3",
        "AC@5",
        "Avg@5",
        title="Nezha RCA, service level (published rows dim)",
    )
    ablation = result.get("ablation", {})
    for system, splits in result.items():
        if not isinstance(splits, dict) or system == "ablation":
            continue
        for split, fig in splits.items():
            table.add_row(
                system if split == "all" else "",
                f"opsloop, {split}",
                str(fig["n"]),
                *(f"{fig[k]:.2f}" for k in ("AC@1", "AC@3", "AC@5", "Avg@5")),
                style="bold" if split == "all" else None,
            )
        for source, fig in ablation.get(system, {}).items():  # the faults the day has traces for
            table.add_row(
                "", f"opsloop, {source} (traced faults)", str(fig["n"]),
                *(f"{fig[k]:.2f}" for k in ("AC@1", "AC@3", "AC@5", "Avg@5")),
            )  # fmt: skip
        for method, figures in PUBLISHED.items():
            if system in figures:
                table.add_row("", method, "", *(f"{v:.2f}" for v in figures[system]), "-", style="dim")
    Console().print(table)
    err.print(f"[dim]{result['seconds']:.1f} s[/dim]")


@bench_app.command("nezha-live")
def bench_nezha_live(
    data: Annotated[
        Path, typer.Option("--data", help="folder of Nezha day folders (<day>/metric/*.csv + fault list)")
    ] = DEFAULT_DATA,
    as_json: JsonOption = False,
    keep: Annotated[
        Path | None, typer.Option("--keep", help="keep the scenarios and databases in this folder")
    ] = None,
) -> None:
    """Replay each Nezha day as a scenario (no fault time given); recall, precision, AC@1/3, MTTD per system."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from bench.nezha_live import NezhaScenario, run_nezha_live
    from bench.rca_nezha import day_folders

    if not data.is_dir() or not day_folders(data):
        raise typer.BadParameter(f"{data} holds no Nezha day folders (<day>/metric/)", param_hint="--data")
    err = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(), console=err, disable=as_json, transient=True,
    ) as bar:  # fmt: skip
        tasks: dict[str, Any] = {}

        def on_day(s: NezhaScenario) -> None:
            edges = "no call graph" if s.edges is None else f"{s.edges} edges"
            tasks[s.day] = bar.add_task(f"{s.day} {s.system}: {s.series} series, {edges}", total=1.0)

        def progress(s: NezhaScenario, share: float) -> None:
            bar.update(tasks[s.day], completed=share)

        result = run_nezha_live(data, keep=keep, on_day=on_day, progress=progress)
    if as_json:
        print(json.dumps(result))
        return
    table = Table(
        "system", "faults", "recall", "precision", "AC@1", "AC@3", "MTTD", "incidents",
        title="Nezha replayed live (no fault time given; per-type rows dim)",
    )  # fmt: skip

    def mttd(v: float | None) -> str:
        return "-" if v is None else f"{v:.0f} s"

    for system, fig in result.items():
        if not isinstance(fig, dict):
            continue
        table.add_row(system, str(fig["n"]), f"{fig['recall']:.2f}", f"{fig['precision']:.2f}",
                      f"{fig['AC@1']:.2f}", f"{fig['AC@3']:.2f}", mttd(fig["mttd_s"]), str(fig["incidents"]),
                      style="bold")  # fmt: skip
        for name, sub in {**fig["by_kind"], **fig["by_type"]}.items():
            table.add_row(f"  {name}", str(sub["n"]), f"{sub['recall']:.2f}", "", f"{sub['AC@1']:.2f}",
                          f"{sub['AC@3']:.2f}", mttd(sub["mttd_s"]), "", style="dim")  # fmt: skip
    Console().print(table)
    err.print(f"[dim]{result['seconds']:.1f} s[/dim]")


#: The Loghub 2k folder next to the repository (``../shared/benchmarks/loghub``).
DEFAULT_LOGHUB = Path(__file__).resolve().parents[3] / "shared" / "benchmarks" / "loghub"


@bench_app.command("logs")
def bench_logs(
    data: Annotated[
        Path, typer.Option("--data", help="Loghub 2k folder: one <S>/<S>_2k.log_structured*.csv per system")
    ] = DEFAULT_LOGHUB,
    as_json: JsonOption = False,
    systems: Annotated[
        list[str] | None, typer.Option("--systems", help="only these systems (repeat the option)")
    ] = None,
) -> None:
    """Grouping accuracy per Loghub system (corrected and original truth) and lines/s of parsing."""
    from bench.loghub import DRAIN_PUBLISHED_GA, run_log_bench, system_names

    names = system_names(data)
    if not names:
        raise typer.BadParameter(f"{data} holds no Loghub system folder", param_hint="--data")
    unknown = sorted(set(systems or ()) - set(names))
    if unknown:
        raise typer.BadParameter(f"no such system under {data}: {', '.join(unknown)}", param_hint="--systems")
    if as_json:
        print(json.dumps(run_log_bench(data, systems=systems).as_dict()))
        return
    err = Console(stderr=True)
    with err.status("parsing Loghub") as status:
        result = run_log_bench(data, progress=lambda msg: status.update(msg), systems=systems)
    table = Table(
        "system",
        "GA (corrected)",
        "GA (original)",
        "Drain GA (published, original)",
        "templates",
        title=f"opsloop log templates on Loghub 2k ({result.lines_per_s:,.0f} lines/s)",
    )
    for name, ga in result.grouping_accuracy.items():
        drain = DRAIN_PUBLISHED_GA.get(name)
        table.add_row(
            name,
            f"{ga:.4f}",
            f"{result.grouping_accuracy_original[name]:.4f}",
            "" if drain is None else f"{drain:.4f}",
            str(result.clusters[name]),
        )
    shown = [DRAIN_PUBLISHED_GA[n] for n in result.grouping_accuracy if n in DRAIN_PUBLISHED_GA]
    table.add_row(
        "mean",
        f"{result.mean_grouping_accuracy:.4f}",
        f"{result.mean_grouping_accuracy_original:.4f}",
        f"{sum(shown) / len(shown):.4f}" if shown else "",
        "",
        style="bold",
    )
    Console().print(table)


@bench_app.command("node-exporter")
def bench_node_exporter(
    minutes: Annotated[float, typer.Option("--minutes", help="steady-state minutes to run")] = 10.0,
    scrape: Annotated[
        float, typer.Option("--scrape-interval", help="Prometheus scrape interval, seconds")
    ] = 5.0,
    as_json: JsonOption = False,
    keep: Annotated[Path | None, typer.Option("--keep", help="copy the database here, to look into")] = None,
) -> None:
    """Real node exporter through real Prometheus into ``opsloop serve``: share of series with false alarms."""
    from bench.node_exporter import run_node_exporter_bench

    err = Console(stderr=True)
    result = run_node_exporter_bench(
        minutes, scrape, progress=None if as_json else lambda m: err.print(f"[dim]{m}[/dim]"), keep=keep
    )
    if as_json:
        print(json.dumps(result.as_dict()))
        return
    table = Table(
        "figure", "value", title=f"node exporter, {minutes:g} min steady state (target: < 1 % of series)"
    )
    table.add_row("series (all)", f"{result.series:,}")
    table.add_row("raw running totals (scored as :rate)", f"{result.raw_cumulative_series:,}")
    table.add_row("series scored by detection", f"{result.scored_series:,}")
    table.add_row("anomalies", f"{result.anomalies:,}")
    table.add_row("series with an anomaly", f"{result.anomalous_series:,}")
    table.add_row("share of scored series", f"{result.anomalous_share:.2%}", style="bold")
    Console().print(table)


@bench_app.command("resolve")
def bench_resolve(
    seeds: Annotated[str, typer.Option("--seeds", help="seeds A-B (or one seed)")] = "101-103",
    db: Annotated[str | None, typer.Option("--db", help="keep the database (one seed only)")] = None,
    as_json: JsonOption = False,
) -> None:
    """Closed loop: bench runbooks in autonomous mode through the real executor against a live estate."""
    import tempfile

    from bench.resolve import parse_seeds, run_seeds

    with tempfile.TemporaryDirectory() as tmp:
        result = run_seeds(parse_seeds(seeds), Path(tmp), db=db)
    typer.echo(json.dumps(result if as_json else {k: v for k, v in result.items() if k != "seeds"}, indent=2))


def register(app: typer.Typer) -> None:
    """Add the ``bench`` group."""
    app.add_typer(bench_app, name="bench")
