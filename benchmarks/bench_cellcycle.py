"""Speed of Dean-Jett-Fox cell-cycle fits, per histogram and for a 96-sample batch.

One run writes a 96-file plate of simulated PI cell-cycle samples with
``write_cellcycle_sample`` (20,000 events each, a fixed seed): the four profiles
``control``, ``g1_arrest``, ``g2m_arrest`` and ``s_arrest`` x G0/G1 CV 3, 4, 5 and 6% x 6
replicates, each with 5% debris, 5% doublets and 2% sub-G1 events. Then it times:

* ``djf``        ``fit_cell_cycle(hist, model=ModelSpec(debris="single_cut", aggregates=True))``
                 on a prebuilt histogram (histogram building is not timed);
* ``auto``       ``fit_cell_cycle(hist, model="auto")`` (8 candidate models chosen by AIC);
* ``curve_fit``  a naive peer: the same DJF basis fitted by ``scipy.optimize.curve_fit`` over
                 all parameters (amplitudes included), from our first starting point, one
                 pass with weights from the observed counts, no standard errors of fractions;
* ``batch``      the whole plate end to end, serially: ``read_fcs`` + ``dna_histogram``
                 (singlet gate on PI-W, default bins) + the ``djf`` fit, per file.

Single fits use the histograms of 8 files (each profile at CV 3% and 6%) at each of
``--bins`` (default 256 and 1024); each is fitted once as a warm-up, then ``--repeats``
times (``--auto-repeats`` for ``auto``), interleaved across cases; the median time per fit is
reported. The batch is run ``--batch-repeats`` times after fitting one file as a warm-up.

A benchmark must not be fast by being wrong: every fit's status is counted and the
maximum |fit - truth| of %G0/G1, %S and %G2/M against the simulated truth is printed.
``--profile`` runs cProfile over the ``djf`` single fits and prints where the time goes.

Timings on a small machine shared with other work swing widely: the script prints the load
average and the BLAS threads. OpenBLAS runs the fit's small matrix products on both cores by
default, which costs more than it saves when another process holds one of them;
``--blas-threads 1`` measures the fits with BLAS on one thread.

No assertions: the script prints a table and whether the target is met::

    python benchmarks/bench_cellcycle.py                 # defaults, 1-2 minutes on 2 cores
    python benchmarks/bench_cellcycle.py --quick         # smoke run, about 10 s
    python benchmarks/bench_cellcycle.py --profile --json out.json --workdir /tmp/bench_cc
    python benchmarks/bench_cellcycle.py --blas-threads 1   # BLAS on one thread
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import json
import pstats
import statistics
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy
from scipy.optimize import curve_fit
from threadpoolctl import threadpool_info, threadpool_limits

try:
    import cytoflow_res
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import cytoflow_res

from _machine import machine_info as _machine_info  # benchmarks/ is the script's folder

from cytoflow_res import read_fcs
from cytoflow_res import simulate as sim
from cytoflow_res.cellcycle import DNAHistogram, ModelSpec, dna_histogram, fit_cell_cycle

# private helpers, so that the peer starts where our fit starts and uses the same shapes
from cytoflow_res.cellcycle.fit import _cv_start, _fixed_shapes, _peak_candidates
from cytoflow_res.cellcycle.model import build_basis, nonlinear_params

SEED = 20240611
PROFILES = ("control", "g1_arrest", "g2m_arrest", "s_arrest")
CVS = (0.03, 0.04, 0.05, 0.06)
SINGLE_CVS = (0.03, 0.06)  # the single-fit set: replicate 1 of each profile at these CVs
N_EVENTS = 20_000
DJF = ModelSpec(debris="single_cut", aggregates=True)
PHASES = ("g0g1_pct", "s_pct", "g2m_pct")

TARGET_MS_PER_FIT = 50.0  # median djf fit, at most


# ------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Item:
    path: Path
    profile: str
    cv: float
    replicate: int
    truth: dict[str, Any]


def write_plate(workdir: Path, *, replicates: int) -> list[Item]:
    items = []
    for i, (profile, cv, rep) in enumerate(
        (p, c, r) for p in PROFILES for c in CVS for r in range(1, replicates + 1)
    ):
        spec = sim.CellCycleSpec.profile(
            profile, n_events=N_EVENTS, cv=cv, debris_fraction=0.05, doublet_fraction=0.05,
            subg1_fraction=0.02,
        )
        path = workdir / f"{profile}_cv{round(cv * 100)}_r{rep}.fcs"
        _events, truth = sim.write_cellcycle_sample(path, spec, seed=SEED + i)
        items.append(Item(path, profile, cv, rep, truth))
    return items


def phase_errors(fractions: dict[str, float], truth: dict[str, Any]) -> float:
    """Largest |fit - truth| over %G0/G1, %S, %G2/M (inf if the fit gave no fractions)."""
    errors = [abs(float(fractions.get(k, np.nan)) - float(truth[k])) for k in PHASES]
    return max(errors) if all(np.isfinite(errors)) else float("inf")


# ---------------------------------------------------------------------- fitters


@dataclass(frozen=True)
class Outcome:
    status: str
    fractions: dict[str, float]
    nfev: int = 0  # model evaluations (ours: every basis built while optimising)
    rcs: float = float("nan")


def fit_djf(hist: DNAHistogram) -> Outcome:
    fit = fit_cell_cycle(hist, model=DJF)
    return Outcome(fit.status, fit.fractions, fit.nfev, fit.redchi)


def fit_auto(hist: DNAHistogram) -> Outcome:
    fit = fit_cell_cycle(hist, model="auto")
    return Outcome(fit.status, fit.fractions, fit.nfev, fit.redchi)


def fit_curve_fit(hist: DNAHistogram) -> Outcome:
    """The DJF basis fitted naively: every parameter, amplitudes too, by curve_fit."""
    lo, hi = hist.fit_range
    sl = slice(lo, hi)
    fixed = _fixed_shapes(hist, triplets=DJF.triplets)
    starts = _peak_candidates(hist)
    if not starts:
        return Outcome("failed", dict.fromkeys(PHASES, float("nan")))
    g1, lin = starts[0]
    params = nonlinear_params(DJF, g1_mean=float(g1), cv=_cv_start(hist, float(g1)), linearity=lin,
                              n_bins=hist.n_bins)
    names = [p.name for p in params]
    m = len(names)
    edges, centers = hist.channel_edges, hist.channel_centers
    _basis, comps = build_basis(DJF, {p.name: p.value for p in params}, edges, centers, fixed)
    y = hist.counts[sl]
    # start amplitudes from a typical asynchronous profile, in events
    share = {"g1": 0.5, "g2": 0.15, "s": 0.3, "debris": 0.03, "aggregates": 0.03, "sub_g1": 0.02}
    n_s = sum(c.group == "s" for c in comps)
    amp0 = [y.sum() * share[c.group] / (n_s if c.group == "s" else 1) for c in comps]
    p0 = [p.value for p in params] + amp0
    lower = [p.lower for p in params] + [0.0] * len(comps)
    upper = [p.upper for p in params] + [np.inf] * len(comps)

    def model(_x: np.ndarray, *p: float) -> np.ndarray:
        basis, _ = build_basis(DJF, dict(zip(names, p[:m], strict=True)), edges, centers, fixed)
        return basis[:, sl].T @ np.asarray(p[m:])

    try:
        popt, _pcov = curve_fit(model, centers[sl], y, p0=p0, sigma=np.sqrt(np.maximum(y, 1.0)),
                                bounds=(lower, upper))
    except (RuntimeError, ValueError):
        return Outcome("failed", dict.fromkeys(PHASES, float("nan")))
    amps = popt[m:]
    groups = np.array([c.group for c in comps])
    cycling = float(amps[np.isin(groups, ("g1", "s", "g2"))].sum())
    fractions = {key: 100 * float(amps[groups == group].sum()) / cycling
                 for key, group in zip(PHASES, ("g1", "s", "g2"), strict=True)}
    return Outcome("ok", fractions)


@dataclass(frozen=True)
class Case:
    name: str
    fit: Callable[[DNAHistogram], Outcome]
    peer: bool  # third-party optimiser: its warnings are silenced while it runs

    def run(self, hist: DNAHistogram) -> Outcome:
        if not self.peer:
            return self.fit(hist)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self.fit(hist)


# ---------------------------------------------------------------- measurement


@dataclass
class SingleResult:
    times: dict[str, list[float]]  # seconds per fit, all histograms and repeats
    per_hist: dict[str, list[list[float]]]  # the same, by histogram
    outcomes: dict[str, list[Outcome]]  # of the warm-up fit of each histogram
    statuses: dict[str, Counter[str]]
    max_error: dict[str, float]


def time_single(
    cases: Sequence[Case], hists: Sequence[DNAHistogram], truths: Sequence[dict[str, Any]],
    repeats: dict[str, int],
) -> SingleResult:
    statuses: dict[str, Counter[str]] = {c.name: Counter() for c in cases}
    max_error = {c.name: 0.0 for c in cases}
    outcomes: dict[str, list[Outcome]] = {c.name: [] for c in cases}
    for case in cases:  # warm-up, and the accuracy check on every histogram
        for hist, truth in zip(hists, truths, strict=True):
            out = case.run(hist)
            outcomes[case.name].append(out)
            statuses[case.name][out.status] += 1
            max_error[case.name] = max(max_error[case.name], phase_errors(out.fractions, truth))
    per_hist: dict[str, list[list[float]]] = {c.name: [[] for _ in hists] for c in cases}
    for r in range(max(repeats.values())):
        for case in cases:
            if r >= repeats[case.name]:
                continue
            gc.collect()
            for i, hist in enumerate(hists):
                t0 = time.perf_counter()
                case.run(hist)
                per_hist[case.name][i].append(time.perf_counter() - t0)
    times = {name: [t for ts in lists for t in ts] for name, lists in per_hist.items()}
    return SingleResult(times, per_hist, outcomes, statuses, max_error)


@dataclass
class BatchRun:
    total: float
    read: float
    histogram: float
    fit: float


def run_batch(items: Sequence[Item]) -> tuple[BatchRun, Counter[str], list[float]]:
    statuses: Counter[str] = Counter()
    errors: list[float] = []
    t_read = t_hist = t_fit = 0.0
    gc.collect()
    start = time.perf_counter()
    for item in items:
        t0 = time.perf_counter()
        sample = read_fcs(item.path)
        t1 = time.perf_counter()
        hist = dna_histogram(sample)  # singlet gate on PI-W, default bins, as the CLI does
        t2 = time.perf_counter()
        fit = fit_cell_cycle(hist, model=DJF)
        t3 = time.perf_counter()
        t_read += t1 - t0
        t_hist += t2 - t1
        t_fit += t3 - t2
        statuses[fit.status] += 1
        errors.append(phase_errors(fit.fractions, item.truth))
    total = time.perf_counter() - start
    return BatchRun(total, t_read, t_hist, t_fit), statuses, errors


# (where, function name) of the stages of one fit, for --profile; "where" is a path fragment
STAGES = (
    ("cellcycle/fit.py", "_fixed_shapes", "data-derived shapes (debris, aggregates), once per fit"),
    ("cellcycle/lineshapes.py", "single_cut_debris", "  of which the single-cut debris kernel"),
    ("cellcycle/fit.py", "_peak_candidates", "starting points from the smoothed peaks"),
    ("_lsq/least_squares.py", "least_squares", "least_squares runs (all starts and the second pass)"),
    ("_numdiff.py", "approx_derivative", "  of which finite-difference Jacobians"),
    ("cellcycle/fit.py", "_finish", "_finish: statistics and fractions"),
    ("cellcycle/fit.py", "_covariance", "  of which the covariance (finite differences)"),
    ("cellcycle/model.py", "build_basis", "build_basis, all calls"),
    ("cellcycle/lineshapes.py", "broadened_s_phase", "  of which the S-phase basis"),
    ("cellcycle/lineshapes.py", "_s_nodes", "    of which ndtr over bins x 48 nodes (_s_nodes)"),
    ("cellcycle/lineshapes.py", "gaussian_bins", "  of which the G1/G2 Gaussians"),
    ("optimize/_nnls.py", "nnls", "nnls (amplitudes)"),
)


def profile_fits(hists: Sequence[DNAHistogram], repeats: int, top: int) -> dict[str, Any]:
    """cProfile the djf fits; shares of the profiled fit time, by own time and by stage."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(repeats):
        for hist in hists:
            fit_cell_cycle(hist, model=DJF)
    profiler.disable()
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]]
    raw = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    # the outermost call's cumulative time: everything the fits did
    total = max(v[3] for k, v in raw.items() if k[2] == "fit_cell_cycle")
    n_fits = repeats * len(hists)

    def label(key: tuple[str, int, str]) -> str:
        filename, line, func = key
        parts = Path(filename).parts
        for root in ("cytoflow_res", "scipy", "numpy"):
            if root in parts:
                return "/".join(parts[parts.index(root):]) + f":{line}({func})"
        return f"{Path(filename).name}:{line}({func})" if line else func

    ordered = sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    own = [
        {"function": label(k), "calls_per_fit": v[1] / n_fits, "ms_per_fit": 1e3 * v[2] / n_fits,
         "share": v[2] / total}
        for k, v in ordered
    ]
    stages = []
    for where, func, what in STAGES:
        keys = [k for k in raw if k[2] == func and where in k[0].replace("\\", "/")]
        calls = sum(raw[k][1] for k in keys)
        cum = sum(raw[k][3] for k in keys)
        stages.append({"stage": what, "function": func, "calls_per_fit": calls / n_fits,
                       "ms_per_fit": 1e3 * cum / n_fits, "share": cum / total})
    return {"total_s": total, "n_fits": n_fits, "own": own, "stages": stages}


# ------------------------------------------------------------------- reporting


def machine_info() -> dict[str, Any]:
    return _machine_info(
        scipy=scipy.__version__, cytoflow_res=cytoflow_res.__version__,
        blas_threads={i["internal_api"]: i["num_threads"] for i in threadpool_info()},
    )


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def status_text(counts: Counter[str]) -> str:
    return " ".join(f"{k} {counts.get(k, 0)}" for k in ("ok", "warn", "failed"))


def print_profile(prof: dict[str, Any]) -> None:
    print()
    print(f"profile of {prof['n_fits']} djf fits at {prof['bins']} bins "
          f"({1e3 * prof['total_s'] / prof['n_fits']:.1f} ms per fit under cProfile); share of that time")
    print("  by stage (including callees)")
    for row in prof["stages"]:
        print(f"    {100 * row['share']:5.1f}%  {row['ms_per_fit']:7.2f} ms/fit  "
              f"{row['calls_per_fit']:6.1f} calls/fit  {row['stage']}")
    print("  by function (own time)")
    for row in prof["own"]:
        print(f"    {100 * row['share']:5.1f}%  {row['ms_per_fit']:7.2f} ms/fit  "
              f"{row['calls_per_fit']:6.1f} calls/fit  {row['function']}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bins", type=int, nargs="+", default=None,
                        help="histogram sizes for the single fits (default 256 1024; 1024 with --quick)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed runs per histogram for djf and curve_fit (default 5; 2 with --quick)")
    parser.add_argument("--auto-repeats", type=int, default=None,
                        help="timed runs per histogram for auto (default 2; 1 with --quick)")
    parser.add_argument("--batch-repeats", type=int, default=None,
                        help="timed runs of the whole batch (default 3; 1 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: a 16-file batch, 4 histograms, 1024 bins only")
    parser.add_argument("--no-peer", action="store_true", help="skip the curve_fit peer")
    parser.add_argument("--profile", action="store_true", help="cProfile the djf single fits")
    parser.add_argument("--top", type=int, default=14, help="functions listed by --profile (default 14)")
    parser.add_argument("--blas-threads", type=int, default=None,
                        help="limit BLAS threads while timing (default: the library's own choice)")
    parser.add_argument("--workdir", type=Path, default=None, help="write the files here and keep them")
    parser.add_argument("--json", type=Path, default=None, help="save results to this JSON file")
    args = parser.parse_args(argv)
    quick = args.quick
    bins_list = args.bins or ([1024] if quick else [256, 1024])
    repeats = args.repeats if args.repeats is not None else (2 if quick else 5)
    auto_repeats = args.auto_repeats if args.auto_repeats is not None else (1 if quick else 2)
    batch_repeats = args.batch_repeats if args.batch_repeats is not None else (1 if quick else 3)
    if min(repeats, auto_repeats, batch_repeats) < 1:
        parser.error("--repeats, --auto-repeats and --batch-repeats must be at least 1")
    if min(bins_list) < 16:
        parser.error("--bins must be at least 16")
    replicates = 1 if quick else 6

    with contextlib.ExitStack() as stack:
        if args.blas_threads is not None:
            stack.enter_context(threadpool_limits(limits=args.blas_threads))
        machine = machine_info()
        print("machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()))
        if args.workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench_cellcycle_")))
        else:
            workdir = args.workdir
            workdir.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        items = write_plate(workdir, replicates=replicates)
        print(f"wrote {len(items)} files ({N_EVENTS:,} events; {len(PROFILES)} profiles x CV "
              f"{', '.join(f'{100 * c:g}%' for c in CVS)} x {replicates} replicates) to {workdir} "
              f"in {time.perf_counter() - t0:.1f} s")

        single_items = [it for it in items if it.replicate == 1 and (quick or it.cv in SINGLE_CVS)]
        if quick:
            single_items = [it for it in single_items if it.cv == CVS[1]]
        truths = [it.truth for it in single_items]
        cases = [Case("djf", fit_djf, peer=False), Case("auto", fit_auto, peer=False)]
        if not args.no_peer:
            cases.append(Case("curve_fit", fit_curve_fit, peer=True))
        case_repeats = {"djf": repeats, "auto": auto_repeats, "curve_fit": repeats}

        single: dict[int, SingleResult] = {}
        hists_by_bins: dict[int, list[DNAHistogram]] = {}
        t0 = time.perf_counter()
        for bins in bins_list:
            hists = [dna_histogram(read_fcs(it.path), bins=bins) for it in single_items]
            hists_by_bins[bins] = hists
            single[bins] = time_single(cases, hists, truths, case_repeats)
        print(f"timed single fits on {len(single_items)} histograms x {len(bins_list)} sizes in "
              f"{time.perf_counter() - t0:.1f} s")

        run_batch(items[:1])  # warm-up: imports, caches
        t0 = time.perf_counter()
        batch_runs = []
        batch_status: Counter[str] = Counter()
        batch_errors: list[float] = []
        for _ in range(batch_repeats):
            run, batch_status, batch_errors = run_batch(items)
            batch_runs.append(run)
        print(f"timed {batch_repeats} batch runs in {time.perf_counter() - t0:.1f} s")
        batch_bins = dna_histogram(read_fcs(items[0].path)).n_bins

        prof = None
        if args.profile:
            prof_bins = 1024 if 1024 in hists_by_bins else bins_list[-1]
            prof = profile_fits(hists_by_bins[prof_bins], repeats, args.top)
            prof["bins"] = prof_bins

    medians_ms = {b: {k: 1e3 * statistics.median(v) for k, v in r.times.items()} for b, r in single.items()}
    batch_total = statistics.median(r.total for r in batch_runs)
    mid = sorted(batch_runs, key=lambda r: r.total)[len(batch_runs) // 2]
    n = len(items)
    batch_errors_arr = np.asarray(batch_errors)
    per_sample_fit_ms = 1e3 * mid.fit / n
    targets = {
        f"djf median at {b} bins <= {TARGET_MS_PER_FIT:g} ms": medians_ms[b]["djf"] <= TARGET_MS_PER_FIT
        for b in bins_list
    }
    targets[f"batch fit per sample ({batch_bins} bins) <= {TARGET_MS_PER_FIT:g} ms"] = (
        per_sample_fit_ms <= TARGET_MS_PER_FIT
    )

    print()
    print(f"single fits: median ms per fit over {len(single_items)} histograms x repeats "
          f"(djf/curve_fit {repeats}, auto {auto_repeats})")
    header = f"{'case':<12}" + "".join(f"{f'{b} bins':>12}" for b in bins_list)
    header += "".join(f"{f'max|err| {b}':>14}" for b in bins_list) + "   statuses (ok warn failed)"
    print(header)
    for case in cases:
        line = f"{case.name:<12}" + "".join(f"{medians_ms[b][case.name]:>9.1f} ms" for b in bins_list)
        line += "".join(f"{single[b].max_error[case.name]:>11.2f} pt" for b in bins_list)
        line += "   " + " | ".join(status_text(single[b].statuses[case.name]) for b in bins_list)
        print(line)
    print("(max|err| = largest |fit - truth| of %G0/G1, %S, %G2/M, in percentage points)")
    print()
    print("djf per histogram: median ms per fit, model evaluations (nfev), status, RCS")
    for b in bins_list:
        for it, times, out in zip(single_items, single[b].per_hist["djf"], single[b].outcomes["djf"],
                                  strict=True):
            print(f"  {b:>5} bins  {it.path.stem:<20}{1e3 * statistics.median(times):8.1f} ms"
                  f"{out.nfev:6d} nfev  {out.status:<5} RCS {out.rcs:5.2f}")
    print()
    print(f"batch: {n} files, serial, read + singlet gate + histogram ({batch_bins} bins) + djf fit; "
          f"median of {batch_repeats}")
    print(f"  total          {batch_total:8.2f} s   {1e3 * batch_total / n:7.1f} ms per sample")
    print(f"  of which read  {mid.read:8.2f} s   {1e3 * mid.read / n:7.1f} ms per sample")
    print(f"  histogram      {mid.histogram:8.2f} s   {1e3 * mid.histogram / n:7.1f} ms per sample")
    print(f"  fit            {mid.fit:8.2f} s   {per_sample_fit_ms:7.1f} ms per sample")
    print(f"  statuses       {status_text(batch_status)}")
    print(f"  |fit - truth|  max {batch_errors_arr.max():.2f} pt, "
          f"median {np.median(batch_errors_arr):.2f} pt (largest of the three phases per sample)")
    print()
    print("targets")
    for name, ok in targets.items():
        print(f"  {name:<44} {verdict(ok)}")
    if quick:
        print("(--quick: fewer histograms and a 16-file batch; the target is meant for the defaults)")
    if prof is not None:
        print_profile(prof)

    if args.json is not None:
        result = {
            "machine": machine,
            "config": {
                "seed": SEED,
                "quick": quick,
                "n_events": N_EVENTS,
                "profiles": list(PROFILES),
                "cvs": list(CVS),
                "replicates": replicates,
                "bins": bins_list,
                "batch_bins": batch_bins,
                "repeats": case_repeats,
                "batch_repeats": batch_repeats,
                "blas_threads_limit": args.blas_threads,
                "model": DJF.name,
                "single_files": [it.path.name for it in single_items],
            },
            "single": {
                str(b): {
                    "seconds": r.times,
                    "median_ms": medians_ms[b],
                    "djf_per_histogram": [
                        {"file": it.path.name, "median_ms": 1e3 * statistics.median(ts), "nfev": o.nfev,
                         "status": o.status, "rcs": o.rcs}
                        for it, ts, o in zip(single_items, r.per_hist["djf"], r.outcomes["djf"], strict=True)
                    ],
                    "statuses": {k: dict(v) for k, v in r.statuses.items()},
                    "max_abs_error_pt": r.max_error,
                }
                for b, r in single.items()
            },
            "batch": {
                "runs": [vars(r) for r in batch_runs],
                "median_total_s": batch_total,
                "per_sample_ms": 1e3 * batch_total / n,
                "statuses": dict(batch_status),
                "max_abs_error_pt": float(batch_errors_arr.max()),
                "median_abs_error_pt": float(np.median(batch_errors_arr)),
            },
            "targets_met": targets,
            "profile": prof,
        }
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"saved {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
