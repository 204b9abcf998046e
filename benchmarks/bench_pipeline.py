"""The whole pipeline on a simulated experiment: serial, worker processes and dask; a cost model.

One run does four things, in this order:

1. **Data.** ``cytoflow_res.simulate.write_experiment`` writes the two-cell-line drug-combination
   experiment (48 samples, half apoptosis and half cell cycle, plus 6 apoptosis controls;
   ``--events`` events per file). For ``--files`` above 48 it is written again with other
   seeds and the extra samples join the sheet as further replicates (rewritten as
   ``..._r4.fcs``, ``..._r5.fcs``, ... with ``$FIL`` to match; the first experiment's controls
   serve every group); the sheet then keeps ``--files`` samples, half per assay, two replicates
   of each arm in turn.
2. **Executors.** ``Experiment.run`` + the statistics (``summary``, ``comparisons``,
   ``synergy``) + ``ExperimentResult.write`` with ``executor="serial"``, ``"process"``
   (``--jobs`` workers) and ``"dask"`` (a ``LocalCluster`` of ``--jobs`` workers, or
   ``--scheduler``). Wall seconds, files/s, events/s and the speed-up over serial; the six
   tables must be identical (frames and CSV bytes) across the three, or the script stops
   with exit status 1.
3. **Cost model.** On the first ``--model-samples`` samples of each assay, the stages a worker
   runs are timed one by one, the way the run's tasks do them: read (``read_fcs``), gate
   (apoptosis: ``ApoptosisGating.analyze``, i.e. compensation, debris and singlet gates and
   quadrants; cell cycle: ``dna_histogram`` with doublet discrimination), fit
   (``fit_cell_cycle``, the run's ``"auto"`` model), checksum (the SHA-256 that ``run.json``
   records) and, in the main process after the run, plot (the per-sample thumbnail that
   ``write_report`` draws; for apoptosis it reads and gates the file again). Per-run costs:
   the control set-up of each apoptosis group, the rest of ``run`` (task list, linearity
   sharing, tables: the serial run's wall minus its tasks and set-up), statistics, writing the
   tables, starting the workers (a spawn process pool, a ``LocalCluster``), the figures and the
   report. From these it predicts each executor's wall,
   ``wall = fixed + N_apo * c_apo / W + N_cc * c_cc / W``, and prints it beside the measurement.
4. **Apoptosis part vs flowkit.** On the same apoptosis files, ``bench_apoptosis``'s fixed-gate
   analysis (read + compensate + logicle + debris polygon + quadrants) against the same
   analysis as a flowkit ``Session``; the debris and quadrant counts must be identical in every
   file (else exit status 1). Our full automatic analysis (what the run's tasks do) is shown
   for context.

Timings on a shared machine move with the load: the 1-minute load average is printed with
each measurement, and the cost model gives each stage's CPU time too, which the load moves
much less. Worker processes always use one BLAS thread (the process pool's initializer, dask's
nanny); this process does too unless ``--blas-threads`` says otherwise, so that the serial run
and the cost model do the workers' work the workers' way, and a stage's CPU time is its cost
on one core.

::

    python benchmarks/bench_pipeline.py                   # 96 samples: 4-7 minutes on 2 cores
    python benchmarks/bench_pipeline.py --quick           # smoke run, under a minute
    python benchmarks/bench_pipeline.py --files 192 --repeats 3 --json bench_pipeline.json
    python benchmarks/bench_pipeline.py --workdir /shared/bench --scheduler tcp://host:8786
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import importlib.metadata
import json
import math
import multiprocessing
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

try:
    import cytoflow_res
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import cytoflow_res

# benchmarks/ is the script's folder. flowkit, bench_apoptosis and dask are imported where they
# are used: worker processes are spawned and import this module again, and a start-up measured
# with flowkit in it would not be the start-up a user's script or the CLI pays.
from _machine import machine_info as _machine_info
from threadpoolctl import threadpool_info, threadpool_limits

from cytoflow_res import Experiment, ExperimentResult, read_fcs, read_header, write_fcs
from cytoflow_res import simulate as sim
from cytoflow_res.cellcycle import dna_histogram, fit_cell_cycle
from cytoflow_res.experiment import CellCycleSettings
from cytoflow_res.io.export import sha256_file
from cytoflow_res.report import write_figures, write_report

SEED = 20240614
SAMPLES_PER_EXPERIMENT = 48
EXECUTORS = ("serial", "process", "dask")
TABLES = ("apoptosis", "cellcycle", "summary", "comparisons", "synergy", "errors")
STAGES = ("read", "gate", "fit", "checksum")  # what a worker does per sample (plot is after the run)
PCT = {"apoptosis": ("viable_pct", "early_apoptotic_pct", "late_apoptotic_pct", "necrotic_pct"),
       "cellcycle": ("g0g1_pct", "s_pct", "g2m_pct")}
THUMBNAIL = {"dpi": 110.0, "size": 5.5}  # as write_report draws its quality-control gallery


def load() -> float:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else float("nan")


# ------------------------------------------------------------------------- data


def write_data(workdir: Path, *, n_samples: int, n_events: int) -> Path:
    """Write the experiment(s) and a design sheet of ``n_samples`` samples; return the sheet."""
    n_experiments = max(1, math.ceil(n_samples / SAMPLES_PER_EXPERIMENT))
    parts = []
    stride = 0
    for k in range(n_experiments):
        staging = workdir / f"_experiment{k + 1}"
        sim.write_experiment(staging, seed=SEED + k, n_apoptosis_events=n_events,
                             n_cellcycle_events=n_events)
        design = pd.read_csv(staging / "design.csv")
        is_sample = design["role"] == "sample"
        if k == 0:
            stride = int(design.loc[is_sample, "replicate"].max())
        else:  # further replicates; the first experiment's controls serve every group
            design = design[is_sample].copy()
            design["replicate"] += k * stride
        files = []
        for file, role, rep in zip(design["file"], design["role"], design["replicate"], strict=True):
            rel = Path(file)
            (workdir / rel).parent.mkdir(parents=True, exist_ok=True)
            if role == "sample" and k:
                stem = re.sub(r"_r\d+$", "", rel.stem)
                rel = rel.with_name(f"{stem}_r{rep}{rel.suffix}")
                # rewritten rather than renamed: $FIL must name the file (flowkit's sample id)
                write_fcs(workdir / rel, read_fcs(staging / file), keywords={"$FIL": rel.name})
            else:
                (staging / file).replace(workdir / rel)
            files.append(rel.as_posix())
        design["file"] = files
        parts.append(design)
        shutil.rmtree(staging)
    design = pd.concat(parts, ignore_index=True)
    if n_samples < n_experiments * SAMPLES_PER_EXPERIMENT:
        kept = _subset(design, n_samples)
        for file in set(design["file"]) - set(kept["file"]):
            (workdir / file).unlink()
        design = kept
    sheet = workdir / "design.csv"
    design.to_csv(sheet, index=False)
    return sheet


def _subset(design: pd.DataFrame, n_samples: int) -> pd.DataFrame:
    """``n_samples`` samples, split between the assays: two replicates of each arm in turn.

    Pairs, because the statistics need two replicates of an arm (one leaves no degrees of
    freedom).
    """
    is_sample = design["role"] == "sample"
    keep = pd.Series(False, index=design.index)
    wanted = {"apoptosis": (n_samples + 1) // 2, "cellcycle": n_samples // 2}
    for assay, n in wanted.items():
        rows = design[is_sample & (design["assay"] == assay)]
        order = rows.assign(_pair=(rows["replicate"] - 1) // 2, _pos=range(len(rows)))
        order = order.sort_values(["_pair", "_pos"], kind="stable")
        keep[order.index[:n]] = True
    used_groups = set(design.loc[keep & (design["assay"] == "apoptosis"), "group"])
    keep |= ~is_sample & design["group"].isin(used_groups)  # controls of groups with samples
    return design[keep]


# ------------------------------------------------------------------ executors


@dataclasses.dataclass
class Run:
    executor: str
    workers: int
    run_s: float
    stats_s: float
    write_s: float
    cpu_s: float  # this process's CPU seconds over the three
    load: float
    task_s: dict[str, float]  # assay -> sum of the tasks' own seconds (in the workers)

    @property
    def wall_s(self) -> float:
        return self.run_s + self.stats_s + self.write_s


def run_pipeline(experiment: Experiment, executor: str, out: Path, *, jobs: int,
                 scheduler: str | None) -> tuple[Run, ExperimentResult]:
    kwargs: dict[str, Any] = {"executor": executor, "progress": False}
    if executor != "serial":
        kwargs["n_jobs"] = jobs
    if executor == "dask" and scheduler is not None:
        kwargs["scheduler"] = scheduler
    gc.collect()
    before = load()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    result = experiment.run(**kwargs)
    t1 = time.perf_counter()
    result.summary()
    result.comparisons()
    result.synergy()
    t2 = time.perf_counter()
    result.write(out)
    t3 = time.perf_counter()
    cpu = time.process_time() - cpu0
    files = result.files[result.files["role"] == "sample"]
    task_s = {str(a): float(s) for a, s in files.groupby("assay")["seconds"].sum().items()}
    # 0: the workers of the cluster at --scheduler, counted later
    workers = 1 if executor == "serial" else (0 if executor == "dask" and scheduler else jobs)
    return Run(executor, workers, t1 - t0, t2 - t1, t3 - t2, cpu, before, task_s), result


def table_differences(reference: ExperimentResult, ref_dir: Path, other: ExperimentResult,
                      other_dir: Path) -> list[str]:
    """Tables that differ between two runs, one line each (empty when all are identical)."""
    problems = []
    ours, theirs = reference.tables(), other.tables()
    for name in TABLES:
        try:
            pd.testing.assert_frame_equal(theirs[name].reset_index(drop=True),
                                          ours[name].reset_index(drop=True), check_exact=True)
        except AssertionError as exc:
            problems.append(f"{name}: {str(exc).splitlines()[0]}")
        if (ref_dir / f"{name}.csv").read_bytes() != (other_dir / f"{name}.csv").read_bytes():
            problems.append(f"{name}.csv: the files differ")
    return problems


def events_of(result: ExperimentResult) -> int:
    return int(sum(frame["events_total"].fillna(0).sum()
                   for frame in (result.apoptosis, result.cellcycle) if not frame.empty))


# ---------------------------------------------------------------- start-up


def process_startup(jobs: int, probe: Path) -> float:
    """A spawn process pool like the run's: start ``jobs`` workers, one task each, shut down."""
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(read_header, [probe] * jobs))  # unpickling a task imports cytoflow_res
    return time.perf_counter() - t0


def dask_startup(jobs: int, probe: Path, scheduler: str | None) -> tuple[float, int]:
    """A LocalCluster like the run's (or a connection to ``scheduler``); seconds and workers."""
    from dask.distributed import Client, LocalCluster

    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if scheduler is None:
            cluster = stack.enter_context(LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                                                       dashboard_address=None))
            client = stack.enter_context(Client(cluster))
        else:
            client = stack.enter_context(Client(scheduler, timeout=30))
        workers = sum(int(w.get("nthreads", 1)) for w in client.scheduler_info()["workers"].values())
        client.gather(client.map(read_header, [probe] * max(workers, 1), pure=False))
    return time.perf_counter() - t0, workers


# -------------------------------------------------------------- cost model


@dataclasses.dataclass
class Costs:
    """Per-sample stage times (seconds), one list per stage, and how many rows reproduced the run."""

    assay: str
    stages: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    cpu: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    reproduced: int = 0

    def add(self, stage: str, seconds: float, cpu_seconds: float) -> None:
        self.stages.setdefault(stage, []).append(seconds)
        self.cpu.setdefault(stage, []).append(cpu_seconds)

    @property
    def n(self) -> int:
        return len(self.stages.get("read", []))

    def worker_times(self, *, cpu: bool = False) -> list[float]:
        """Per-sample time of everything a worker does (read + gate + fit + checksum)."""
        times = self.cpu if cpu else self.stages
        return [sum(v) for v in zip(*(times[s] for s in STAGES if s in times), strict=True)]

    def median(self, stage: str) -> float | None:
        values = self.stages.get(stage)
        return statistics.median(values) if values else None


@contextlib.contextmanager
def timed(costs: Costs, stage: str) -> Iterator[None]:
    cpu0, t0 = time.process_time(), time.perf_counter()
    yield
    costs.add(stage, time.perf_counter() - t0, time.process_time() - cpu0)


def _same(row: Mapping[str, Any], expected: pd.Series, columns: Sequence[str]) -> bool:
    return all(row.get(c) == expected.get(c) for c in columns)


def thumbnail_drawer(result: ExperimentResult) -> Any:
    """What ``write_report`` draws each sample's thumbnail with, or None if it has changed."""
    from cytoflow_res import report

    drawer = getattr(report, "_Thumbnails", None)  # private: the report's own per-sample drawer
    return None if drawer is None else drawer(result, THUMBNAIL["dpi"])


def time_controls(experiment: Experiment, result: ExperimentResult) -> dict[str, float]:
    """Seconds to read each apoptosis group's controls and prepare its gating, as ``run`` does."""
    from cytoflow_res import ApoptosisGating, load_template

    table = experiment.design.table
    controls = table[(table["assay"] == "apoptosis") & (table["role"] != "sample")]
    template = result.templates.get("apoptosis") or load_template("generic_modern")
    seconds = {}
    for group, rows in controls.groupby("group", sort=False):
        t0 = time.perf_counter()
        samples = {str(r["role"]): read_fcs(Path(str(r["path"]))) for _, r in rows.iterrows()}
        ApoptosisGating.prepare(template, unstained=samples.get("unstained"),
                                annexin_only=samples.get("annexin_only"), pi_only=samples.get("pi_only"))
        seconds[str(group)] = time.perf_counter() - t0
    return seconds


def time_stages(experiment: Experiment, result: ExperimentResult, n_per_assay: int) -> dict[str, Costs]:
    """Time each stage of the first ``n_per_assay`` samples of each assay, as the run's tasks do them."""
    from matplotlib import pyplot as plt

    from cytoflow_res.plotting.style import publication_style

    table = experiment.design.table
    samples = table[table["role"] == "sample"]
    costs = {"apoptosis": Costs("apoptosis"), "cellcycle": Costs("cellcycle")}
    with publication_style(size=THUMBNAIL["size"]):
        drawer = thumbnail_drawer(result)
        try:
            for assay, frame in (("apoptosis", result.apoptosis), ("cellcycle", result.cellcycle)):
                rows = samples[samples["assay"] == assay]
                for position in range(min(n_per_assay, len(rows))):
                    time_sample(costs[assay], result, rows.iloc[position], frame.iloc[position], position,
                                drawer)
        finally:
            if drawer is not None:
                drawer.close()
            plt.close("all")
    return costs


def time_sample(c: Costs, result: ExperimentResult, design_row: pd.Series, expected: pd.Series,
                position: int, drawer: Any) -> None:
    """One sample's stages, as its task does them; then its report thumbnail."""
    path, file = Path(str(design_row["path"])), str(design_row["file"])
    gating = result.gatings.get(str(design_row["group"])) if c.assay == "apoptosis" else None
    if isinstance(gating, str):  # the group's controls failed: its samples are error rows, no work
        return
    settings = CellCycleSettings()  # the run's defaults: no template, "auto" doublets and model
    with timed(c, "read"):
        sample = read_fcs(path)
    if gating is not None:
        with timed(c, "gate"):
            out = gating.analyze(sample, file=file).to_frame().iloc[0].to_dict()
    else:
        with timed(c, "gate"):
            hist = dna_histogram(sample, channel=settings.channel, bins=settings.resolved_bins,
                                 doublets=settings.resolved_doublets)
        with timed(c, "fit"):
            fit = fit_cell_cycle(hist, model=settings.resolved_model)
        out = fit.to_frame().iloc[0].to_dict() if hasattr(fit, "to_frame") else {}
    with timed(c, "checksum"):
        sha256_file(path)
    c.reproduced += _same(out, expected, PCT[c.assay])
    if drawer is not None:
        with timed(c, "plot"):
            if c.assay == "apoptosis":
                drawer.apoptosis_sample(file)
            else:
                drawer.cellcycle_sample(result.cellcycle_fits[position])


@dataclasses.dataclass
class Model:
    """The measured cost model of one run."""

    n: dict[str, int]  # samples per assay
    costs: dict[str, Costs]
    control_s: dict[str, float]  # group -> control set-up
    rest_s: float
    stats_s: float
    write_s: float
    startup_s: dict[str, float]  # executor -> start-up
    workers: dict[str, int]
    figures_s: float
    n_figures: int
    report_fixed_s: float
    report_s: float

    @property
    def c_mean(self) -> dict[str, float]:
        """Mean seconds per sample in a worker, per assay: what a batch of them costs, over N."""
        return {a: statistics.fmean(c.worker_times()) if c.n else 0.0 for a, c in self.costs.items()}

    @property
    def c_cpu(self) -> dict[str, float]:
        """Mean CPU seconds per sample in a worker: the cost on an otherwise idle core."""
        return {a: statistics.fmean(c.worker_times(cpu=True)) if c.n else 0.0 for a, c in self.costs.items()}

    @property
    def plot_mean(self) -> dict[str, float]:
        return {a: statistics.fmean(c.stages["plot"]) if c.stages.get("plot") else 0.0
                for a, c in self.costs.items()}

    @property
    def fixed_s(self) -> float:
        return sum(self.control_s.values()) + self.rest_s + self.stats_s + self.write_s

    def predict(self, executor: str, *, cpu: bool = False) -> float:
        """wall = F + start-up + (N_apo c_apo + N_cc c_cc) / W."""
        per_sample = self.c_cpu if cpu else self.c_mean
        work = sum(self.n[a] * c for a, c in per_sample.items())
        return self.fixed_s + self.startup_s[executor] + work / self.workers[executor]

    def predict_report(self) -> float:
        return self.report_fixed_s + sum(self.n[a] * c for a, c in self.plot_mean.items())

    def to_dict(self) -> dict[str, Any]:
        return {
            "stages_s": {a: c.stages for a, c in self.costs.items()},
            "stages_cpu_s": {a: c.cpu for a, c in self.costs.items()},
            "c_mean_s": self.c_mean, "c_cpu_s": self.c_cpu, "plot_mean_s": self.plot_mean,
            "control_setup_s": self.control_s,
            "rest_of_run_s": self.rest_s, "statistics_s": self.stats_s, "write_tables_s": self.write_s,
            "fixed_s": self.fixed_s, "startup_s": self.startup_s, "workers": self.workers,
            "figures_s": self.figures_s, "report_fixed_s": self.report_fixed_s, "report_s": self.report_s,
            "predicted_wall_s": {e: self.predict(e) for e in EXECUTORS},
            "predicted_wall_cpu_s": {e: self.predict(e, cpu=True) for e in EXECUTORS},
            "predicted_report_s": self.predict_report(),
        }


def measure_model(experiment: Experiment, serial: ExperimentResult, serial_run: Run, n: dict[str, int],
                  report_dir: Path, args: argparse.Namespace) -> Model:
    """Everything the cost model needs that the executor runs did not measure."""
    control_s = time_controls(experiment, serial)
    costs = time_stages(experiment, serial, args.model_samples)
    probe = Path(str(experiment.design.table["path"].iloc[0]))
    start_process = process_startup(args.jobs, probe)
    start_dask, dask_workers = dask_startup(args.jobs, probe, args.scheduler)
    t0 = time.perf_counter()
    figures = write_figures(serial, report_dir, formats=args.formats, dpi=args.figure_dpi)
    t1 = time.perf_counter()
    write_report(serial, report_dir, figures=figures, thumbnails=False)
    t2 = time.perf_counter()
    write_report(serial, report_dir, figures=figures, thumbnails=True)
    t3 = time.perf_counter()
    rest = serial_run.run_s - sum(serial_run.task_s.values()) - sum(control_s.values())
    dask_w = max(dask_workers, 1) if args.scheduler else args.jobs
    return Model(
        n=n, costs=costs, control_s=control_s, rest_s=max(rest, 0.0), stats_s=serial_run.stats_s,
        write_s=serial_run.write_s, startup_s={"serial": 0.0, "process": start_process, "dask": start_dask},
        workers={"serial": 1, "process": args.jobs, "dask": dask_w},
        figures_s=t1 - t0, n_figures=len(figures), report_fixed_s=t2 - t1, report_s=t3 - t2,
    )


# ------------------------------------------------------------- flowkit


def apoptosis_vs_flowkit(experiment: Experiment, repeats: int) -> dict[str, Any] | list[str]:
    """bench_apoptosis's cases on the experiment's apoptosis samples; problems if counts differ."""
    import bench_apoptosis as ba

    table = experiment.design.table
    apo = table[table["assay"] == "apoptosis"]
    paths = [Path(str(p)) for p in apo.loc[apo["role"] == "sample", "path"]]
    unstained = Path(str(apo.loc[apo["role"] == "unstained", "path"].iloc[0]))
    setup = ba.make_setup(unstained, paths[0])
    spills = {ba.Compensation.from_sample(read_fcs(p)).spillover.tobytes() for p in paths}
    if len(spills) != 1:
        return ["the files carry different spillover matrices; one flowkit Matrix cannot serve them all"]
    strategy = ba.flowkit_strategy(setup)
    ours = ba.run_ours(paths, setup)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = ba.run_flowkit(paths, strategy)
    problems = ba.compare(ours, theirs)
    if problems:
        return problems
    cases = [
        ba.Case("ours", lambda: ba.run_ours(paths, setup), peer=False),
        ba.Case("flowkit", lambda: ba.run_flowkit(paths, strategy), peer=True),
        ba.Case("ours_auto", lambda: ba.run_ours_auto(paths, setup), peer=False),
    ]
    before = load()
    times = ba.time_cases(cases, repeats)
    events = sum(read_header(p).n_events for p in paths)
    return {"files": len(paths), "events": events, "load": before, "thresholds": setup.thresholds,
            "counts_total": {g: sum(c[g] for c in ours.values()) for g in ba.GATES},
            "seconds": times, "median_seconds": {k: statistics.median(v) for k, v in times.items()}}


# ------------------------------------------------------------------- reporting


def versions() -> dict[str, str]:
    out = {"cytoflow_res": cytoflow_res.__version__}
    for dist in ("flowkit", "dask", "distributed", "matplotlib"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[dist] = importlib.metadata.version(dist)
    out["blas_threads"] = ", ".join(f"{i['internal_api']} {i['num_threads']}" for i in threadpool_info())
    return out


def ms(value: float | None, width: int = 11) -> str:
    return f"{'-':>{width}}" if value is None else f"{1e3 * value:>{width}.1f}"


def median_run(runs: Sequence[Run]) -> Run:
    return sorted(runs, key=lambda r: r.wall_s)[len(runs) // 2]


def print_executors(runs: Mapping[str, Sequence[Run]], n_samples: int, n_events: int,
                    scheduler: str | None) -> None:
    print()
    print(f"1. Full pipeline: Experiment.run + statistics + write tables; {n_samples} samples, "
          f"{n_events:,} events")
    print(f"{'executor':<10}{'workers':>8}{'wall s':>9}{'run':>8}{'stats':>7}{'write':>7}{'main CPU':>10}"
          f"{'files/s':>9}{'events/s':>11}{'speed-up':>10}{'load':>7}")
    base = median_run(runs["serial"]).wall_s
    for executor in EXECUTORS:
        m = median_run(runs[executor])
        print(f"{executor:<10}{m.workers or '-':>8}{m.wall_s:>9.2f}{m.run_s:>8.2f}{m.stats_s:>7.2f}"
              f"{m.write_s:>7.2f}{m.cpu_s:>10.2f}{n_samples / m.wall_s:>9.2f}{n_events / m.wall_s:>11,.0f}"
              f"{base / m.wall_s:>9.2f}x{m.load:>7.2f}")
    repeats = len(runs["serial"])
    where = f"scheduler {scheduler}" if scheduler else "a LocalCluster started by the run"
    print(f"(median of {repeats} run(s); dask: {where}; main CPU: CPU seconds of this process, the whole "
          "work when serial;")
    print(" load: 1-minute load average before the run)")


def print_model(model: Model, runs: Mapping[str, Sequence[Run]], args: argparse.Namespace) -> None:
    costs = model.costs
    apo, cc = costs["apoptosis"], costs["cellcycle"]
    print()
    print(f"2. Per-sample cost model: median ms per sample ({apo.n} apoptosis, {cc.n} cell-cycle samples)")
    print(f"{'stage':<42}{'apoptosis':>11}{'cell cycle':>11}")
    what = {"read": "read      read_fcs",
            "gate": "gate      analyze | dna_histogram",
            "fit": "fit       fit_cell_cycle (auto)",
            "checksum": "checksum  SHA-256 for run.json"}
    for stage in STAGES:
        print(f"{what[stage]:<42}{ms(apo.median(stage))}{ms(cc.median(stage))}")
    worker_median = {a: statistics.median(c.worker_times()) if c.n else None for a, c in costs.items()}
    print(f"{'= in a worker, median':<42}{ms(worker_median['apoptosis'])}{ms(worker_median['cellcycle'])}")
    c_mean, c_cpu = model.c_mean, model.c_cpu
    print(f"{'= in a worker, mean: c_apo, c_cc':<42}{ms(c_mean['apoptosis'])}{ms(c_mean['cellcycle'])}")
    print(f"{'= in a worker, mean CPU time':<42}{ms(c_cpu['apoptosis'])}{ms(c_cpu['cellcycle'])}")
    s_run = median_run(runs["serial"])
    in_run = {a: s_run.task_s.get(a, 0.0) / model.n[a] if model.n[a] else None for a in costs}
    print(f"{'  (the serial run tasks, mean)':<42}{ms(in_run['apoptosis'])}{ms(in_run['cellcycle'])}")
    print(f"{'plot      report thumbnail (main process)':<42}{ms(apo.median('plot'))}{ms(cc.median('plot'))}")
    print(f"stage results equal the run's rows for {apo.reproduced} of {apo.n} apoptosis and "
          f"{cc.reproduced} of {cc.n} cell-cycle samples")
    if not apo.stages.get("plot") and not cc.stages.get("plot"):
        print("(plot not timed: report._Thumbnails, the report's per-sample drawer, has gone)")

    groups = len(model.control_s)
    setup_s = sum(model.control_s.values())
    scheduler = args.scheduler
    dask_what = (f"LocalCluster of {args.jobs}, one task each, close" if scheduler is None
                 else f"connect to {scheduler} ({model.workers['dask']} worker threads)")
    rows = [
        ("control set-up", setup_s, f"{groups} group(s), {1e3 * setup_s / max(groups, 1):.0f} ms each: "
                                    "read the controls, thresholds, compensation"),
        ("rest of run", model.rest_s, "serial run minus tasks and set-up: task list, linearity, tables"),
        ("statistics", model.stats_s, "summary, comparisons, synergy"),
        ("write tables", model.write_s, "6 CSV, results.xlsx, run.json"),
        ("process start-up", model.startup_s["process"],
         f"spawn pool of {args.jobs}, one task each, shut down"),
        ("dask start-up", model.startup_s["dask"], dask_what),
        ("figures", model.figures_s, f"write_figures: {model.n_figures} files ({', '.join(args.formats)})"),
        ("report", model.report_fixed_s, "write_report without thumbnails"),
    ]
    print()
    print("fixed costs per run (seconds)")
    for name, seconds, note in rows:
        print(f"  {name:<18}{seconds:7.2f}   {note}")

    print()
    print("wall(run + statistics + tables) ~ F + start-up + (N_apo x c_apo + N_cc x c_cc) / W")
    print(f"  F = {model.fixed_s:.2f} s (set-up {setup_s:.2f} + rest {model.rest_s:.2f} + statistics "
          f"{model.stats_s:.2f} + tables {model.write_s:.2f}); start-up: process "
          f"{model.startup_s['process']:.2f} s, dask {model.startup_s['dask']:.2f} s")
    print(f"  c_apo = {1e3 * c_mean['apoptosis']:.1f} ms, c_cc = {1e3 * c_mean['cellcycle']:.1f} ms "
          f"(means: a batch costs the sum); N_apo = {model.n['apoptosis']}, N_cc = {model.n['cellcycle']}")
    print(f"{'executor':<10}{'W':>4}{'predicted s':>13}{'measured s':>12}{'measured/predicted':>20}"
          f"{'busy':>7}{'idle-core prediction':>22}")
    for executor in EXECUTORS:
        m = median_run(runs[executor])
        w = model.workers[executor]
        predicted = model.predict(executor)
        window = max(m.run_s - setup_s - model.rest_s, 1e-9) * w
        busy = sum(m.task_s.values()) / window
        print(f"{executor:<10}{w:>4}{predicted:>13.2f}{m.wall_s:>12.2f}{m.wall_s / predicted:>19.2f}x"
              f"{100 * busy:>6.0f}%{model.predict(executor, cpu=True):>22.2f}")
    print("  busy: the tasks' own seconds / (W x (run - set-up - rest)): below 100% is start-up and idle")
    print("  workers, above 100% is tasks slowed down by sharing the cores")
    print("  idle-core prediction: the formula with CPU seconds as c_apo, c_cc (the wall on W free cores)")
    plot = model.plot_mean
    print(f"report (main process, serial; plot means) ~ {model.report_fixed_s:.2f} + N_apo x "
          f"{1e3 * plot['apoptosis']:.0f} ms + N_cc x {1e3 * plot['cellcycle']:.0f} ms = "
          f"{model.predict_report():.2f} s predicted, "
          f"{model.report_s:.2f} s measured; figures {model.figures_s:.2f} s on top")


def print_flowkit(apo: Mapping[str, Any], repeats: int) -> None:
    med = apo["median_seconds"]
    n_files, n_ev = apo["files"], apo["events"]
    print()
    print(f"3. Apoptosis part vs flowkit: {n_files} files, {n_ev:,} events; counts identical in all "
          f"{n_files} files (debris gate and 4 quadrants)")
    print(f"{'case':<11}{'files/s':>9}{'events/s':>13}{'ms/file':>9}   what")
    what = {"ours": "read + compensate + logicle + debris polygon + quadrants",
            "flowkit": "flowkit Session: the same GatingStrategy, analyze_samples, report",
            "ours_auto": "the run's analysis: automatic debris and singlet gates, quadrants"}
    for case in ("ours", "flowkit", "ours_auto"):
        print(f"{case:<11}{n_files / med[case]:>9.1f}{n_ev / med[case]:>13,.0f}"
              f"{1e3 * med[case] / n_files:>9.2f}   {what[case]}")
    print(f"flowkit / ours {med['flowkit'] / med['ours']:.2f}x; flowkit / ours_auto "
          f"{med['flowkit'] / med['ours_auto']:.2f}x (median of {repeats} run(s) after a warm-up; "
          f"load {apo['load']:.2f})")


def time_executors(experiment: Experiment, out: Path, args: argparse.Namespace,
                   ) -> tuple[dict[str, list[Run]], dict[str, ExperimentResult], list[str]]:
    """Every executor ``--repeats`` times, interleaved; tables of the first runs compared."""
    runs: dict[str, list[Run]] = {e: [] for e in EXECUTORS}
    results: dict[str, ExperimentResult] = {}
    for r in range(args.repeats):
        for executor in EXECUTORS:
            folder = out / f"{executor}_{r + 1}"
            run, result = run_pipeline(experiment, executor, folder, jobs=args.jobs, scheduler=args.scheduler)
            runs[executor].append(run)
            if r:
                continue
            results[executor] = result
            if executor != "serial":
                problems = table_differences(results["serial"], out / "serial_1", result, folder)
                if problems:
                    return runs, results, [f"serial vs {executor}: {p}" for p in problems]
    return runs, results, []


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=None,
                        help="samples in the design, half per assay (default 96; 8 with --quick)")
    parser.add_argument("--events", type=int, default=None,
                        help="events per file (default 20,000; 5,000 with --quick)")
    parser.add_argument("--jobs", type=int, default=2,
                        help="workers of the process and dask runs (default 2)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="run the dask case on this scheduler (e.g. tcp://host:8786) instead of a "
                             "LocalCluster; its workers must see the files at --workdir's path")
    parser.add_argument("--repeats", type=int, default=1,
                        help="timed runs of each executor, interleaved; the median is reported (default 1)")
    parser.add_argument("--model-samples", type=int, default=24,
                        help="samples per assay whose stages are timed for the cost model (default 24)")
    parser.add_argument("--blas-threads", type=int, default=1,
                        help="BLAS threads of this process (serial run, cost model): default 1, as the "
                             "workers have; 0 leaves the library's default")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 8 samples x 5,000 events, figures as 100-dpi PNG only")
    parser.add_argument("--workdir", type=Path, default=None, help="write the files here and keep them")
    parser.add_argument("--json", type=Path, default=None, help="save results to this JSON file")
    args = parser.parse_args(argv)
    n_samples = args.files if args.files is not None else (8 if args.quick else 96)
    n_events = args.events if args.events is not None else (5_000 if args.quick else 20_000)
    if n_samples < 2:
        parser.error("--files must be at least 2 (one sample per assay)")
    if min(args.jobs, args.repeats, args.model_samples, n_events) < 1:
        parser.error("--jobs, --repeats, --model-samples and --events must be at least 1")
    if args.blas_threads < 0:
        parser.error("--blas-threads must be 0 (the library's default) or more")
    args.formats = ("png",) if args.quick else ("png", "svg", "pdf")
    args.figure_dpi = 100 if args.quick else 300
    apo_repeats = 1 if args.quick else 3

    with contextlib.ExitStack() as stack:
        if args.blas_threads:
            stack.enter_context(threadpool_limits(limits=args.blas_threads))
        machine = _machine_info(**versions())
        print("machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()))
        if args.workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench_pipeline_")))
        else:
            workdir = args.workdir
            workdir.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        sheet = write_data(workdir / "data", n_samples=n_samples, n_events=n_events)
        experiment = Experiment.from_design(sheet)
        table = experiment.design.table
        is_sample = table["role"] == "sample"
        n = {a: int((is_sample & (table["assay"] == a)).sum()) for a in ("apoptosis", "cellcycle")}
        print(f"wrote {n['apoptosis']} apoptosis + {n['cellcycle']} cell-cycle samples x {n_events:,} events "
              f"and {int((~is_sample).sum())} controls to {workdir} in {time.perf_counter() - t0:.1f} s")

        runs, results, problems = time_executors(experiment, workdir / "out", args)
        if problems:
            print("TABLES DIFFER between executors; their speeds cannot be compared:")
            print("\n".join(f"  {p}" for p in problems[:20]))
            return 1
        serial = results["serial"]
        print(f"tables identical across serial, process and dask ({len(TABLES)} tables: frames, CSV bytes)")
        if not serial.errors.empty:
            print(f"note: {len(serial.errors)} sample(s) or control(s) failed, the same in every run")
        n_events_total = events_of(serial)
        print_executors(runs, sum(n.values()), n_events_total, args.scheduler)

        t0 = time.perf_counter()
        model = measure_model(experiment, serial, median_run(runs["serial"]), n, workdir / "out" / "report",
                              args)
        print(f"\n(timed the stages, start-ups, figures and report in {time.perf_counter() - t0:.1f} s; "
              f"load {load():.2f})")
        print_model(model, runs, args)

        apo: dict[str, Any] | list[str] = {}
        if n["apoptosis"]:
            apo = apoptosis_vs_flowkit(experiment, apo_repeats)
        if isinstance(apo, list):
            print(f"\nCOUNTS DIFFER between ours and flowkit in {len(apo)} file(s); the speeds cannot be "
                  "compared:")
            print("\n".join(f"  {p}" for p in apo[:20]))
            return 1
        if apo:
            print_flowkit(apo, apo_repeats)
    if args.quick:
        print("(--quick: a small design; the figures are meant for the default size)")

    if args.json is not None:
        record = {
            "machine": machine,
            "config": {"seed": SEED, "samples": n, "events_per_file": n_events, "jobs": args.jobs,
                       "scheduler": args.scheduler, "repeats": args.repeats, "quick": args.quick,
                       "model_samples": args.model_samples, "blas_threads_limit": args.blas_threads},
            "tables_identical": True,
            "events": n_events_total,
            "runs": {e: [{**dataclasses.asdict(r), "wall_s": r.wall_s} for r in v] for e, v in runs.items()},
            "cost_model": model.to_dict(),
            "apoptosis_vs_flowkit": apo,
        }
        args.json.write_text(json.dumps(record, indent=2, default=_jsonable) + "\n", encoding="utf-8")
        print(f"saved {args.json}")
    return 0


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


if __name__ == "__main__":
    sys.exit(main())
