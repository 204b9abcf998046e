"""A screening-size run: ~1,000 simulated files through ``cytoflow-res run``, memory watched.

The script writes ``--plates`` simulated experiments (``simulate.write_experiment`` with a
different seed each: 24 Annexin V/PI samples + 6 controls and 24 PI cell-cycle samples per
plate, ``--events`` events per file) and one design sheet over all of them (each plate's cell
lines get their own names and control groups). Then it runs the command a user would run,

    cytoflow-res run design.csv --out OUT --jobs N

in a child process, and every 0.2 s reads the resident memory (VmRSS) of that process and of
its worker processes from ``/proc``, together with how many samples are already in
``OUT/journal``. It reports wall time, files/s, events/s, the peak memory of the main process
and of the whole process tree, and the main process's memory at each tenth of the analysis,
which is what shows whether memory grows with the number of files. With ``--interrupt F``
it first stops a run with SIGINT once a fraction F of the samples is done, then reruns with
``--resume`` and reports how many samples the second run still had to analyse.

::

    python benchmarks/bench_scale.py                       # 21 plates: 1,008 samples + 126 controls
    python benchmarks/bench_scale.py --plates 2 --no-report --events 5000   # a quick look
    python benchmarks/bench_scale.py --interrupt 0.5       # Ctrl-C half-way, then --resume

Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info

from cytoflow_res import __version__
from cytoflow_res import simulate as sim


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (workers and their helpers)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


class Watcher(threading.Thread):
    """Samples (seconds, samples done, main RSS MiB, tree RSS MiB) of a running command."""

    def __init__(self, pid: int, journal: Path, every: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.journal, self.every = pid, journal, every
        self.samples: list[tuple[float, int, float, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        t0 = time.perf_counter()
        while not self.stop.is_set():
            main = _rss_kib(self.pid)
            tree = main + sum(_rss_kib(p) for p in _children(self.pid))
            try:
                done = sum(1 for p in self.journal.iterdir() if p.suffix == ".pickle")
            except OSError:
                done = 0
            self.samples.append((time.perf_counter() - t0, done, main / 1024, tree / 1024))
            self.stop.wait(self.every)


def make_plates(root: Path, plates: int, events: int) -> tuple[Path, int, int]:
    """Write the plates and one design over them; returns (design, files, total events)."""
    frames = []
    for k in range(plates):
        folder = root / f"plate{k + 1:02d}"
        sim.write_experiment(folder, seed=1000 + k, n_apoptosis_events=events, n_cellcycle_events=events)
        design = pd.read_csv(folder / "design.csv")
        design["file"] = f"plate{k + 1:02d}/" + design["file"]
        design["cell_line"] = f"p{k + 1:02d}_" + design["cell_line"]
        design["group"] = f"p{k + 1:02d}_" + design["group"].astype(str)
        frames.append(design)
    design = pd.concat(frames, ignore_index=True)
    path = root / "design.csv"
    design.to_csv(path, index=False)
    return path, len(design), len(design) * events


def run_command(design: Path, out: Path, *, jobs: int, report: bool, resume: bool = False,
                stop_at: int | None = None) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "cytoflow_res.cli", "run", str(design), "--out", str(out),
           "--jobs", str(jobs)]
    if not report:
        cmd.append("--no-report")
    if resume:
        cmd.append("--resume")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    watcher = Watcher(proc.pid, out / "journal")
    watcher.start()
    interrupted = False
    if stop_at is not None:
        while proc.poll() is None:
            if watcher.samples and watcher.samples[-1][1] >= stop_at:
                proc.send_signal(signal.SIGINT)
                interrupted = True
                break
            time.sleep(0.1)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    watcher.stop.set()
    watcher.join()
    return {"wall": wall, "code": proc.returncode, "stdout": stdout, "stderr": stderr,
            "samples": watcher.samples, "interrupted": interrupted}


def memory_profile(samples: list[tuple[float, int, float, float]], n_samples: int) -> list[tuple[int, float]]:
    """Main-process RSS when each tenth of the samples was done (analysis phase only)."""
    out = []
    for tenth in range(1, 11):
        target = n_samples * tenth / 10
        hit = [s for s in samples if s[1] >= target and s[2] > 0]
        if hit:
            out.append((tenth * 10, hit[0][2]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--plates", type=int, default=21, help="simulated plates of 48 samples (default 21)")
    parser.add_argument("--events", type=int, default=20_000, help="events per file (default 20,000)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--no-report", action="store_true", help="tables only (no figures/report.html)")
    parser.add_argument("--interrupt", type=float, default=None, metavar="F",
                        help="SIGINT the run when a fraction F of the samples is done, then --resume")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the files here")
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="cytoflow_scale_") as tmp:
        root = args.workdir or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        design, n_files, n_events = make_plates(root / "data", args.plates, args.events)
        n_samples = int((pd.read_csv(design)["role"] == "sample").sum())
        simulate_s = time.perf_counter() - t0
        data_mb = sum(p.stat().st_size for p in (root / "data").rglob("*.fcs")) / 2**20
        info = machine_info(cytoflow_res=__version__)
        print(f"machine: {info['nproc']} cores, {info['cpu']}, load {info['loadavg_1min']}")
        print(f"data: {args.plates} plates, {n_files} files ({n_samples} samples), {args.events:,} events "
              f"each, {data_mb:.0f} MiB; simulated in {simulate_s:.0f} s")
        out = root / "out"
        result: dict[str, Any] = {"machine": info, "plates": args.plates, "files": n_files,
                                  "samples": n_samples, "events_per_file": args.events, "jobs": args.jobs,
                                  "report": not args.no_report, "data_mib": round(data_mb, 1)}
        if args.interrupt is not None:
            first = run_command(design, out, jobs=args.jobs, report=not args.no_report,
                                stop_at=int(args.interrupt * n_samples))
            done = first["samples"][-1][1] if first["samples"] else 0
            print(f"interrupted run: SIGINT after {first['wall']:.0f} s with {done} samples in the journal "
                  f"(exit {first['code']})")
            result["interrupted"] = {"seconds": round(first["wall"], 1), "journal_entries": done,
                                     "exit": first["code"]}
        run = run_command(design, out, jobs=args.jobs, report=not args.no_report,
                          resume=args.interrupt is not None)
        if run["code"] not in (0,):
            print(run["stderr"][-3000:], file=sys.stderr)
            print(f"run failed with exit status {run['code']}", file=sys.stderr)
            return 1
        samples = run["samples"]
        peak_main = max(s[2] for s in samples)
        peak_tree = max(s[3] for s in samples)
        record = json.loads((out / "run.json").read_text())
        analysed = sum(1 for f in record["files"] if f["role"] == "sample" and not f.get("from_journal"))
        analysis_s = record["seconds"]
        print(f"run: {run['wall']:.0f} s wall ({analysis_s:.0f} s analysis, the rest tables"
              f"{'' if args.no_report else ', figures and report'}); {analysed} samples analysed, "
              f"{n_samples - analysed} from the journal")
        rate = n_files / run["wall"]
        print(f"throughput: {rate:.2f} files/s, {rate * args.events / 1e6:.2f} M events/s "
              f"(whole command, {args.jobs} workers)")
        print(f"peak memory: main process {peak_main:.0f} MiB, with workers {peak_tree:.0f} MiB")
        profile = memory_profile(samples, n_samples)
        print("main-process memory as the analysis progresses:")
        print("  " + "  ".join(f"{pct:>3d}%: {mib:4.0f}" for pct, mib in profile))
        if not args.no_report:
            size = (out / "report.html").stat().st_size / 2**20
            n_figures = sum(1 for _ in (out / "figures").iterdir())
            print(f"report.html {size:.1f} MiB; figures/: {n_figures} files")
            result["report_mib"] = round(size, 1)
        result.update(wall_s=round(run["wall"], 1), analysis_s=analysis_s, analysed=analysed,
                      files_per_s=round(n_files / run["wall"], 3),
                      events_per_s=round(n_events / run["wall"]),
                      peak_main_mib=round(peak_main), peak_tree_mib=round(peak_tree),
                      main_mib_by_progress=profile)
        if args.json:
            args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
