"""Peak memory and time of one 10,000,000-event apoptosis file and one cell-cycle file.

One run simulates, with ``cytoflow_res.simulate`` and a fixed seed, block by block (one
``simulate_apoptosis`` / ``simulate_cell_cycle`` call per ``--block`` events, encoded for
the ``modern`` dialect exactly as ``write_apoptosis_sample`` / ``write_cellcycle_sample``
encode them), and writes with ``write_fcs``:

* ``huge_apoptosis.fcs``: ``--events`` Annexin V-FITC / PI events (FCS 3.1 float32, five
  channels FSC-A, FSC-H, SSC-A, FITC-A, PE-A, ``$SPILLOVER``) and three 20,000-event
  controls (unstained, Annexin V only, PI only) of the same dialect;
* ``huge_cellcycle.fcs``: ``--events`` PI events (float32: FSC-A, SSC-A, PI-A, PI-H, PI-W),
  and a 20,000-event one for the warm-up.

Each analysis then runs in a fresh Python process (BLAS on one thread), so that its peak
resident memory (``VmHWM`` of ``/proc/self/status``) is its own, exactly as the package's
pipeline runs it. Each process first analyses a 20,000-event file the same way (the
unstained control, or the small cell-cycle file), so that modules loaded on first use are
in memory before its baseline RSS is taken:

* ``apoptosis``  ``ApoptosisGating.prepare("generic_modern", unstained=..., annexin_only=...,
                 pi_only=...)`` from the controls (as ``Experiment.run`` does once per group;
                 not timed), then ``gating.analyze(read_fcs(path), file=...)`` and
                 ``result.to_frame()`` (``_apoptosis_task``);
* ``cellcycle``  the analysis of ``analyze_cellcycle_file(path, CellCycleSettings())`` on a
                 whole-file read: doublet gate on PI-W, 1024-bin histogram, ``auto`` model fit.

``--read`` adds the cases ``apoptosis_read`` / ``cellcycle_read``, which are what a run does:
the same analyses on a Sample read with ``read_fcs(path, channels=...)``
(``ApoptosisGating.needed_channels``; for cell cycle ``analyze_cellcycle_file`` itself, which
picks ``dna_channels`` after the template roles are resolved), decoding only the channels the
analysis reads.

For each case the table gives the file size, the bytes of the channels the analysis
needs (events x needed channels x 4 bytes of float32), the analysis time (the read
included, interpreter start and imports excluded), events per second, the process's peak
RSS and that peak minus the RSS before the file was read (imports, controls), the latter
also relative to the needed channels. The result's numbers (quadrant counts, fit
percentages) are printed so that runs before and after a change can be compared.

One run on the development machine (2 cores shared with other work, load average about 5;
seconds are noisy there), the code before this benchmark was written against the code
after (``--repeats 2 --read``); every count and percentage is identical:

============== ===================== ===================== ==========================
case           before                after                 after, ``--read`` case
============== ===================== ===================== ==========================
apoptosis      2284 MB, 14.1 s       1205 MB, 12.2 s       1204 MB, 10.4 s
cellcycle      910 MB, 5.5 s         683 MB, 4.2 s         563 MB, 4.6 s
============== ===================== ===================== ==========================

(peak RSS including about 190 MB of interpreter and imports; above that: apoptosis 2096
-> 1017 MB, cell cycle 720 -> 493 / 373 MB.)

No assertions::

    python benchmarks/bench_huge.py                          # 10M events: a few minutes
    python benchmarks/bench_huge.py --quick                  # 1M events, smoke run
    python benchmarks/bench_huge.py --workdir /tmp/huge --json bench_huge.json
    python benchmarks/bench_huge.py --workdir /tmp/huge --reuse   # analyse existing files
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

try:
    import cytoflow_res
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import cytoflow_res

from _machine import machine_info as _machine_info  # benchmarks/ is the script's folder

from cytoflow_res import simulate as sim
from cytoflow_res.io.fcs_write import write_fcs

SEED = 20240611
CONTROL_EVENTS = 20_000
CONTROL_ROLES = ("unstained", "annexin_only", "pi_only")
MODEL_RANGE = 262_144.0  # the modern dialect's $PnR
# channels each analysis reads: apoptosis every template role + the spillover channels,
# cell cycle the DNA area and its width partner
NEEDED = {"apoptosis": 5, "cellcycle": 2}


# ------------------------------------------------------------------------- data


def _write_blocks(path: Path, assay: str, n_events: int, block: int, seed: int) -> None:
    """Simulate ``n_events`` in blocks of ``block`` and write them as one FCS file."""
    names_labels = sim.dialect_channels(assay, "modern")  # type: ignore[arg-type]
    stored = np.empty((n_events, len(names_labels)), dtype=np.float32)
    spill = None
    for index, first in enumerate(range(0, n_events, block)):
        count = min(block, n_events - first)
        rng = np.random.default_rng([seed, index])
        if assay == "apoptosis":
            spec = sim.ApoptosisSpec(n_events=count)
            events, truth = sim.simulate_apoptosis(spec, seed=rng)
            spill = (["FITC-A", "PE-A"], np.asarray(truth["spillover"]["matrix"]))
        else:
            events, _ = sim.simulate_cell_cycle(sim.CellCycleSpec(n_events=count), seed=rng)
        encoded = sim.encode_events(events, assay, dialect="modern")  # type: ignore[arg-type]
        stored[first : first + count] = encoded.to_numpy(dtype=np.float32)
    write_fcs(
        path, stored, [n for n, _ in names_labels], labels=[lab for _, lab in names_labels],
        ranges=[MODEL_RANGE] * len(names_labels), spillover=spill,
        keywords={"$CYT": "cytoflow_res simulated cytometer (modern FCS 3.1 export)",
                  "SIMULATED": "cytoflow_res.simulate (bench_huge.py)"},
    )


def write_files(workdir: Path, n_events: int, block: int) -> dict[str, Path]:
    paths = {"apoptosis": workdir / "huge_apoptosis.fcs", "cellcycle": workdir / "huge_cellcycle.fcs"}
    _write_blocks(paths["apoptosis"], "apoptosis", n_events, block, SEED)
    _write_blocks(paths["cellcycle"], "cellcycle", n_events, block, SEED + 1)
    write_small_files(workdir)
    return paths


def write_small_files(workdir: Path) -> None:
    """The apoptosis controls, and a small cell-cycle file for the child's warm-up."""
    for i, role in enumerate(CONTROL_ROLES):
        spec = sim.apoptosis_control_spec(role, sim.ApoptosisSpec(n_events=CONTROL_EVENTS))  # type: ignore[arg-type]
        sim.write_apoptosis_sample(workdir / f"control_{role}.fcs", spec, seed=[SEED, 1000 + i])
    sim.write_cellcycle_sample(workdir / "warmup_cellcycle.fcs", sim.CellCycleSpec(n_events=CONTROL_EVENTS),
                               seed=[SEED, 2000])


# ------------------------------------------------------------------ the child


def _status_kib(key: str) -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


def _child(case: str, path: Path, workdir: Path) -> dict[str, Any]:
    """Run one analysis in this (fresh) process and describe it."""
    from cytoflow_res.apoptosis import ApoptosisGating
    from cytoflow_res.experiment import CellCycleSettings, analyze_cellcycle_file
    from cytoflow_res.io.fcs import read_fcs

    out: dict[str, Any] = {}
    # A warm-up analysis of a small file first: modules imported on first use and caches
    # are in place before the baseline RSS is taken.
    if case.startswith("apoptosis"):
        controls = {role: read_fcs(workdir / f"control_{role}.fcs") for role in CONTROL_ROLES}
        gating = ApoptosisGating.prepare("generic_modern", **controls)
        gating.analyze(controls["unstained"]).to_frame()
        del controls
        rss_before = _status_kib("VmRSS")
        t0 = time.perf_counter()
        if case == "apoptosis_read":
            sample = read_fcs(path, channels=gating.needed_channels)
        else:
            sample = read_fcs(path)
        result = gating.analyze(sample, file=str(path))
        row = result.to_frame().iloc[0].to_dict()
        seconds = time.perf_counter() - t0
        out["result"] = {k: row[k] for k in (
            "events_total", "events_cells", "events_singlets", "viable_n", "early_apoptotic_n",
            "late_apoptotic_n", "necrotic_n", "annexin_threshold", "pi_threshold", "status")}
    else:
        settings = CellCycleSettings()
        warmup = workdir / "warmup_cellcycle.fcs"
        if case == "cellcycle_read":
            analyze_cellcycle_file(warmup, settings)
        else:
            _cellcycle_whole_file(warmup, settings)
        rss_before = _status_kib("VmRSS")
        t0 = time.perf_counter()
        if case == "cellcycle_read":
            row, fit = analyze_cellcycle_file(path, settings)
        else:
            row, fit = _cellcycle_whole_file(path, settings)
        seconds = time.perf_counter() - t0
        if fit is None:
            out["result"] = {"status": "error", "message": row.get("message")}
        else:
            frame = fit.to_frame().iloc[0].to_dict()
            out["result"] = {k: frame.get(k) for k in (
                "events_total", "events_singlets", "g0g1_pct", "s_pct", "g2m_pct", "sub_g1_pct",
                "model", "status")}
    out.update(seconds=seconds, rss_before_kib=rss_before, peak_kib=_status_kib("VmHWM"))
    return out


def _cellcycle_whole_file(path: Path, settings: Any) -> tuple[dict[str, Any], Any]:
    """``analyze_cellcycle_file``'s analysis on a whole-file read (how runs read before).

    Settings without a template, as the benchmark uses them: the DNA channel is found by name.
    """
    from cytoflow_res.cellcycle import dna_histogram, fit_cell_cycle
    from cytoflow_res.io.fcs import read_fcs

    sample = read_fcs(path, dataset=settings.dataset)
    hist = dna_histogram(sample, channel=settings.channel, bins=settings.resolved_bins,
                         doublets=settings.resolved_doublets)
    fixed = None if isinstance(settings.linearity, str) else float(settings.linearity)
    row = {"sample_id": sample.sample_id, "file": str(path)}
    return row, fit_cell_cycle(hist, model=settings.resolved_model, linearity=fixed)


def run_child(case: str, path: Path, workdir: Path) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", case, str(path), str(workdir)]
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        msg = f"{case} failed (exit {done.returncode}):\n{done.stderr}"
        raise RuntimeError(msg)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# ------------------------------------------------------------------ reporting


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        case, path, workdir = argv[1], Path(argv[2]), Path(argv[3])
        print(json.dumps(_child(case, path, workdir), default=str))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=None, help="events per file (default 10,000,000)")
    parser.add_argument("--block", type=int, default=1_000_000, help="events simulated per block")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1,000,000 events")
    parser.add_argument("--repeats", type=int, default=1, help="runs per case (each in a new process)")
    parser.add_argument("--read", action="store_true",
                        help="also run the cases that read only the needed channels")
    parser.add_argument("--workdir", type=Path, default=None, help="write the files here and keep them")
    parser.add_argument("--reuse", action="store_true", help="use the files already in --workdir")
    parser.add_argument("--json", type=Path, default=None, help="save results to this JSON file")
    args = parser.parse_args(argv)
    n_events = args.events or (1_000_000 if args.quick else 10_000_000)
    if n_events < 1 or args.block < 1 or args.repeats < 1:
        parser.error("--events, --block and --repeats must be at least 1")
    if args.reuse and args.workdir is None:
        parser.error("--reuse needs --workdir")

    machine = _machine_info(cytoflow_res=cytoflow_res.__version__)
    print("machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()))
    cases = ["apoptosis", "cellcycle"] + (["apoptosis_read", "cellcycle_read"] if args.read else [])
    results: dict[str, list[dict[str, Any]]] = {case: [] for case in cases}
    with contextlib.ExitStack() as stack:
        if args.workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench_huge_")))
        else:
            workdir = args.workdir
            workdir.mkdir(parents=True, exist_ok=True)
        if args.reuse:
            paths = {"apoptosis": workdir / "huge_apoptosis.fcs", "cellcycle": workdir / "huge_cellcycle.fcs"}
            write_small_files(workdir)
        else:
            t0 = time.perf_counter()
            paths = write_files(workdir, n_events, args.block)
            print(f"wrote 2 x {n_events:,} events (+ 3 controls) to {workdir} in "
                  f"{time.perf_counter() - t0:.1f} s")
        sizes = {assay: paths[assay].stat().st_size for assay in ("apoptosis", "cellcycle")}
        for _ in range(args.repeats):
            for case in cases:
                assay = case.split("_")[0]
                results[case].append(run_child(case, paths[assay], workdir))

    print()
    head = (f"{'case':<16}{'events':>12}{'file MB':>9}{'needed MB':>11}{'seconds':>9}{'Mev/s':>8}"
            f"{'peak RSS MB':>13}{'above start MB':>16}{'/ needed':>10}")
    print(head)
    summary: dict[str, Any] = {}
    for case in cases:
        assay = case.split("_")[0]
        runs = results[case]
        best = min(runs, key=lambda r: r["seconds"])
        peak = max(r["peak_kib"] for r in runs) * 1024
        above = max((r["peak_kib"] - r["rss_before_kib"]) for r in runs) * 1024
        n = int(best["result"].get("events_total") or n_events)
        needed = n * NEEDED[assay] * 4
        summary[case] = {
            "events": n, "file_bytes": sizes[assay], "needed_bytes": needed,
            "seconds": best["seconds"], "events_per_second": n / best["seconds"],
            "peak_rss_bytes": peak, "peak_above_start_bytes": above,
            "above_over_needed": above / needed, "result": best["result"],
        }
        print(f"{case:<16}{n:>12,}{sizes[assay] / 1e6:>9.0f}{needed / 1e6:>11.0f}"
              f"{best['seconds']:>9.1f}{n / best['seconds'] / 1e6:>8.2f}{peak / 1e6:>13.0f}"
              f"{above / 1e6:>16.0f}{above / needed:>9.2f}x")
    print("(peak RSS: VmHWM of the analysing process; above start: minus its RSS after imports "
          f"and controls; seconds: best of {args.repeats}; needed: events x needed channels x 4 bytes)")
    print()
    for case in cases:
        print(f"{case}: " + ", ".join(f"{k} {v}" for k, v in summary[case]["result"].items()))
    if args.json is not None:
        record = {"machine": machine, "config": {"seed": SEED, "events": n_events, "block": args.block,
                                                  "repeats": args.repeats},
                  "runs": results, "summary": summary}
        args.json.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
        print(f"saved {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
