"""Annexin V / PI on a 96-file plate, end to end: ours against a flowkit Session doing the same.

One run writes a plate of simulated Annexin V-FITC / PI samples with
``write_apoptosis_sample`` (modern dialect: FCS 3.1 float32, ``$SPILLOVER``; 20,000 events
each, a fixed seed) plus an unstained control. Wells vary: viable cells fall from 92% to 37%
across the 12 columns, and the share of the dead cells that is early apoptotic rises from 20%
to 62% down the 8 rows. The quadrant thresholds are set once, before timing, at the 99.5th
percentile of the unstained control (``ApoptosisGating.prepare``); the spillover matrix is the
plate's (every file carries the same one). Then, per file, both sides do the same work:

* ``ours``       ``read_fcs`` + ``Compensation.apply`` + logicle (``make_transform``) of the
                 Annexin V and PI channels + a fixed polygon debris gate on FSC-A/SSC-A
                 (``PolygonGate``) + quadrant counts (``QuadrantGate``, dividers at the
                 thresholds on the logicle scale) among the events in the debris gate.
                 Our logicle evaluates a table of its root that it builds once per parameter
                 set (a few ms, when the setup converts the dividers), like the thresholds;
* ``flowkit``    ``flowkit.Session(GatingStrategy, [paths])`` (reads every file with the default
                 ``flowkit.Sample`` constructor) + ``analyze_samples(use_mp=False)`` +
                 ``get_analysis_report()``: the strategy has the same spillover as a ``Matrix``,
                 a ``LogicleTransform`` on the two fluorescence dimensions, the same polygon as a
                 ``PolygonGate`` and a ``QuadrantGate`` child with the same dividers;
* ``ours_auto``  (context) our full pipeline, ``ApoptosisGating.analyze(read_fcs(path))``:
                 compensation from each file's ``$SPILLOVER``, the automatic debris and singlet
                 gates placed per file, quadrant counts in data units with the same thresholds.
                 It does more work than the other two (it places two gates per file and counts
                 singlets), so it is not part of the ratio;
* ``logicle_ours`` / ``logicle_fk``  (context) the logicle transform alone, ours and flowkit's
                 (flowutils, C), on the compensated Annexin V and PI columns of every file held in
                 memory: the one step both sides share that dominates the work.

Both sides run in one process: ``use_mp=False`` makes flowkit's choice explicit (on a 2-core
machine flowkit's default would also run serially, as it leaves one CPU free).

Before timing, the per-file counts of the debris gate and the four quadrants of ``ours`` and
``flowkit`` must be identical for every file, or the script stops with exit status 1: a speed
comparison of different results means nothing. Each case then runs once as a warm-up, and
``--repeats`` timed runs are interleaved across cases; the median is reported.

::

    python benchmarks/bench_apoptosis.py                 # defaults, about 40 s on 2 cores
    python benchmarks/bench_apoptosis.py --quick         # smoke run, a few seconds
    python benchmarks/bench_apoptosis.py --repeats 5 --json out.json --workdir /tmp/bench_apo
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flowkit
import numpy as np

try:
    import cytoflow_res
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import cytoflow_res

from _machine import machine_info as _machine_info  # benchmarks/ is the script's folder

from cytoflow_res import read_fcs
from cytoflow_res import simulate as sim
from cytoflow_res.apoptosis import QUADRANTS, ApoptosisGating
from cytoflow_res.gating import PolygonGate, QuadrantGate
from cytoflow_res.transforms import Compensation, Transform, make_transform

SEED = 20240613
LOGICLE = {"type": "logicle", "t": 262144.0, "w": 0.5, "m": 4.5, "a": 0.0}
# Debris gate, data units (FSC-A, SSC-A): cells sit around (45-150k, 15-120k), debris below
# FSC-A 30,000 with SSC-A near 8,000; the slanted lower-left edge keeps shrunken cells.
DEBRIS_VERTICES = ((30_000.0, 3_000.0), (250_000.0, 3_000.0), (250_000.0, 250_000.0),
                   (60_000.0, 250_000.0), (25_000.0, 40_000.0))
ANNEXIN, PI, FSC, SSC = "FITC-A", "PE-A", "FSC-A", "SSC-A"
GATES = ("debris", *QUADRANTS)
TARGET_SPEEDUP = 3.0  # flowkit / ours end to end, at least


# ------------------------------------------------------------------------- data


def well_spec(row: int, col: int, n_events: int) -> sim.ApoptosisSpec:
    viable = 0.92 - 0.05 * col
    dead = 1.0 - viable
    early = 0.20 + 0.06 * row
    necrotic = 0.10
    late = 1.0 - early - necrotic
    return sim.ApoptosisSpec(n_events=n_events, viable=viable, early_apoptotic=dead * early,
                             late_apoptotic=dead * late, necrotic=dead * necrotic)


def write_plate(workdir: Path, *, n_files: int, n_events: int) -> tuple[Path, list[Path]]:
    plate_dir = workdir / "plate"
    plate_dir.mkdir(exist_ok=True)
    unstained = workdir / "unstained.fcs"
    base = well_spec(0, 0, n_events)
    sim.write_apoptosis_sample(unstained, sim.apoptosis_control_spec("unstained", base),
                               seed=(SEED, 0), dialect="modern")
    paths = []
    for i in range(n_files):
        row, col = i // 12 % 8, i % 12
        path = plate_dir / f"plate_{i // 96 + 1}_{'ABCDEFGH'[row]}{col + 1:02d}.fcs"
        sim.write_apoptosis_sample(path, well_spec(row, col, n_events), seed=(SEED, i + 1), dialect="modern")
        paths.append(path)
    return unstained, paths


# ------------------------------------------------------------------- the setup


@dataclass(frozen=True)
class Setup:
    """What both sides share: thresholds (data units), spillover, debris polygon."""

    thresholds: tuple[float, float]
    compensation: Compensation
    logicle: Transform
    debris: PolygonGate
    quadrants: QuadrantGate  # on the logicle scale, dividers converted by our logicle
    auto: ApoptosisGating


def make_setup(unstained: Path, first: Path) -> Setup:
    thr = ApoptosisGating.prepare("generic_modern", unstained=read_fcs(unstained)).thresholds
    thresholds = (thr.annexin, thr.pi)
    logicle = make_transform(LOGICLE)
    cuts = tuple(float(logicle.apply(np.array([t]))[0]) for t in thresholds)
    return Setup(
        thresholds=thresholds,
        compensation=Compensation.from_sample(read_fcs(first)),
        logicle=logicle,
        debris=PolygonGate((FSC, SSC), DEBRIS_VERTICES, name="debris"),
        # QuadrantGate names in index order: x-y-, x+y-, x-y+, x+y+ (Annexin V on x, PI on y)
        quadrants=QuadrantGate(("annexin", "pi"), (cuts[0], cuts[1]),
                               names=("viable", "early_apoptotic", "necrotic", "late_apoptotic")),
        auto=ApoptosisGating.prepare("generic_modern", thresholds=thresholds),
    )


def flowkit_strategy(setup: Setup) -> Any:
    strategy = flowkit.GatingStrategy()
    comp = setup.compensation
    strategy.add_comp_matrix("spill", flowkit.Matrix(np.array(comp.spillover), list(comp.channels)))
    fk_logicle = flowkit.transforms.LogicleTransform(LOGICLE["t"], LOGICLE["w"], LOGICLE["m"], LOGICLE["a"])
    strategy.add_transform("logicle", fk_logicle)
    strategy.add_gate(
        flowkit.gates.PolygonGate("debris", [flowkit.Dimension(FSC), flowkit.Dimension(SSC)],
                                  [list(v) for v in DEBRIS_VERTICES]),
        ("root",),
    )
    # dividers on flowkit's logicle scale, converted by flowkit's own transform
    cuts = [float(fk_logicle.apply(np.array([t]))[0]) for t in setup.thresholds]
    dividers = [
        flowkit.QuadrantDivider("annexin", ANNEXIN, "spill", [cuts[0]], transformation_ref="logicle"),
        flowkit.QuadrantDivider("pi", PI, "spill", [cuts[1]], transformation_ref="logicle"),
    ]

    def side(cut: float, positive: bool) -> list[float | None]:
        return [cut, None] if positive else [None, cut]

    quadrants = [
        flowkit.gates.Quadrant(name, ["annexin", "pi"], [side(cuts[0], ann), side(cuts[1], pi)])
        for name, (ann, pi) in QUADRANTS.items()
    ]
    strategy.add_gate(flowkit.gates.QuadrantGate("quadrants", dividers, quadrants), ("root", "debris"))
    return strategy


# ---------------------------------------------------------------- the pipelines

Counts = dict[str, dict[str, int]]  # file name -> gate -> events


def run_ours(paths: Sequence[Path], setup: Setup) -> Counts:
    out: Counts = {}
    for path in paths:
        sample = setup.compensation.apply(read_fcs(path))
        values = {
            "annexin": setup.logicle.apply(np.asarray(sample.column(ANNEXIN), dtype=np.float64)),
            "pi": setup.logicle.apply(np.asarray(sample.column(PI), dtype=np.float64)),
        }
        cells = setup.debris.apply(sample)
        out[path.name] = {
            "debris": int(np.count_nonzero(cells)),
            **{q: int(np.count_nonzero(cells & setup.quadrants.apply(values, q))) for q in QUADRANTS},
        }
    return out


def run_flowkit(paths: Sequence[Path], strategy: Any) -> Counts:
    session = flowkit.Session(gating_strategy=strategy, fcs_samples=[str(p) for p in paths])
    session.analyze_samples(use_mp=False)
    report = session.get_analysis_report()
    out: Counts = {}
    for row in report.itertuples():
        out.setdefault(str(row.sample_id), {})[str(row.gate_name)] = int(row.count)
    return out


def run_ours_auto(paths: Sequence[Path], setup: Setup) -> Counts:
    out: Counts = {}
    for path in paths:
        result = setup.auto.analyze(read_fcs(path))
        out[path.name] = {"cells": result.pregate.events_cells, "singlets": result.pregate.events_singlets,
                          **result.counts}
    return out


def fluorescence_columns(paths: Sequence[Path], setup: Setup) -> list[np.ndarray]:
    """The compensated Annexin V and PI columns of every file, for timing the transforms alone."""
    cols = []
    for path in paths:
        sample = setup.compensation.apply(read_fcs(path))
        cols += [np.asarray(sample.column(ch), dtype=np.float64) for ch in (ANNEXIN, PI)]
    return cols


def run_logicle_ours(cols: Sequence[np.ndarray], setup: Setup) -> Counts:
    for col in cols:
        setup.logicle.apply(col)
    return {}


def run_logicle_flowutils(cols: Sequence[np.ndarray], transform: Any) -> Counts:
    for col in cols:
        transform.apply(col[:, None])  # as flowkit calls it: one (n, 1) column at a time
    return {}


@dataclass(frozen=True)
class Case:
    name: str
    run: Callable[[], Counts]
    peer: bool  # third-party: its warnings are silenced while it runs

    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        if not self.peer:
            yield
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield


def time_cases(cases: Sequence[Case], repeats: int) -> dict[str, list[float]]:
    for case in cases:  # warm-up: imports, caches, OS page cache
        with case.quiet():
            case.run()
    times: dict[str, list[float]] = {case.name: [] for case in cases}
    for _ in range(repeats):
        for case in cases:
            gc.collect()
            with case.quiet():
                t0 = time.perf_counter()
                case.run()
                times[case.name].append(time.perf_counter() - t0)
    return times


def compare(ours: Mapping[str, Mapping[str, int]], theirs: Mapping[str, Mapping[str, int]]) -> list[str]:
    """Files whose counts differ, one line each (empty when every count is identical)."""
    problems = []
    if set(ours) != set(theirs):
        problems.append(f"different files: ours {sorted(set(ours) - set(theirs))}, "
                        f"flowkit {sorted(set(theirs) - set(ours))}")
    for name in sorted(set(ours) & set(theirs)):
        a = {g: ours[name][g] for g in GATES}
        b = {g: theirs[name].get(g) for g in GATES}
        if a != b:
            problems.append(f"{name}: ours {a}, flowkit {b}")
    return problems


# ------------------------------------------------------------------- reporting


def machine_info() -> dict[str, Any]:
    return _machine_info(flowkit=flowkit.__version__, cytoflow_res=cytoflow_res.__version__)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed runs per case (default 5; 3 with --quick)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 12 files x 5,000 events")
    parser.add_argument("--workdir", type=Path, default=None, help="write the files here and keep them")
    parser.add_argument("--json", type=Path, default=None, help="save results to this JSON file")
    args = parser.parse_args(argv)
    repeats = args.repeats if args.repeats is not None else (3 if args.quick else 5)
    if repeats < 1:
        parser.error("--repeats must be at least 1")
    n_files, n_events = (12, 5_000) if args.quick else (96, 20_000)

    machine = machine_info()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()))

    with contextlib.ExitStack() as stack:
        if args.workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench_apoptosis_")))
        else:
            workdir = args.workdir
            workdir.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        unstained, paths = write_plate(workdir, n_files=n_files, n_events=n_events)
        print(f"wrote {n_files} files x {n_events:,} events and an unstained control to {workdir} "
              f"in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        setup = make_setup(unstained, paths[0])
        prepare_s = time.perf_counter() - t0
        spills = {Compensation.from_sample(read_fcs(p)).spillover.tobytes() for p in paths}
        if len(spills) != 1:
            print("the plate's files carry different spillover matrices; one Matrix cannot serve them all")
            return 1
        strategy = flowkit_strategy(setup)
        print(f"thresholds (99.5th percentile of the unstained control, data units): Annexin V "
              f"{setup.thresholds[0]:.1f}, PI {setup.thresholds[1]:.1f}; set in {prepare_s:.2f} s")

        ours_counts = run_ours(paths, setup)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            flowkit_counts = run_flowkit(paths, strategy)
        problems = compare(ours_counts, flowkit_counts)
        if problems:
            print(f"COUNTS DIFFER in {len(problems)} file(s); not timing different results:")
            print("\n".join(f"  {p}" for p in problems[:20]))
            return 1
        total = {g: sum(c[g] for c in ours_counts.values()) for g in GATES}
        print(f"counts identical in all {len(paths)} files (debris gate and 4 quadrants); plate totals: "
              + ", ".join(f"{g} {v:,}" for g, v in total.items()))
        auto_counts = run_ours_auto(paths, setup)
        cols = fluorescence_columns(paths, setup)
        fk_logicle = strategy.get_transform("logicle")

        cases = [
            Case("ours", lambda: run_ours(paths, setup), peer=False),
            Case("flowkit", lambda: run_flowkit(paths, strategy), peer=True),
            Case("ours_auto", lambda: run_ours_auto(paths, setup), peer=False),
            Case("logicle_ours", lambda: run_logicle_ours(cols, setup), peer=False),
            Case("logicle_fk", lambda: run_logicle_flowutils(cols, fk_logicle), peer=True),
        ]
        t0 = time.perf_counter()
        times = time_cases(cases, repeats)
        print(f"timed {repeats} runs per case (+1 warm-up) in {time.perf_counter() - t0:.1f} s")

    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["flowkit"] / med["ours"]
    ratio_auto = med["flowkit"] / med["ours_auto"]
    logicle_share = med["logicle_ours"] / med["ours"]
    ratio_rest = (med["flowkit"] - med["logicle_fk"]) / max(med["ours"] - med["logicle_ours"], 1e-9)
    met = ratio >= TARGET_SPEEDUP

    print()
    print(f"{'case':<12}{'plate (s)':>12}{'per file (ms)':>16}   what")
    what = {
        "ours": "read + compensate + logicle + debris polygon + quadrants",
        "flowkit": "Session: the same GatingStrategy, analyze_samples, report",
        "ours_auto": "full pipeline: + automatic debris and singlet gates per file",
        "logicle_ours": "context: our logicle alone on the 2 compensated channels",
        "logicle_fk": "context: flowkit's logicle (flowutils, C) alone on the same",
    }
    for case in cases:
        n = case.name
        print(f"{n:<12}{med[n]:>12.3f}{1e3 * med[n] / len(paths):>16.2f}   {what[n]}")
    print(f"(median of {repeats} runs; {len(paths)} files x {n_events:,} events)")
    print()
    print(f"flowkit / ours        {ratio:6.2f} x   target >= {TARGET_SPEEDUP:g} x   "
          f"{'MET' if met else 'NOT MET'}")
    print(f"flowkit / ours_auto   {ratio_auto:6.2f} x   (context: our full pipeline does more work)")
    print(f"logicle share of ours {100 * logicle_share:5.0f} %   (logicle flowkit / ours "
          f"{med['logicle_fk'] / med['logicle_ours']:.2f} x)")
    print(f"flowkit / ours without the logicle of either side   {ratio_rest:6.2f} x   (context)")
    if args.quick:
        print("(--quick: small plate; the target is meant for the default size)")

    if args.json is not None:
        result = {
            "machine": machine,
            "config": {
                "seed": SEED, "repeats": repeats, "quick": args.quick, "files": len(paths),
                "events_per_file": n_events, "logicle": LOGICLE, "debris_vertices": DEBRIS_VERTICES,
                "thresholds": setup.thresholds, "flowkit_use_mp": False,
            },
            "counts_identical": True,
            "counts": {"ours": ours_counts, "ours_auto": auto_counts},
            "seconds": times,
            "median_seconds": med,
            "ratios": {
                "flowkit_over_ours": ratio, "flowkit_over_ours_auto": ratio_auto,
                "logicle_share_of_ours": logicle_share,
                "logicle_flowkit_over_ours": med["logicle_fk"] / med["logicle_ours"],
                "flowkit_over_ours_without_logicle": ratio_rest,
            },
            "target_met": {f"flowkit_over_ours >= {TARGET_SPEEDUP:g}": met},
        }
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"saved {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
