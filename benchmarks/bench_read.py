"""Read speed and memory of ``cytoflow_res.read_fcs`` against flowkit, flowio and plain numpy.

One run writes synthetic FCS 3.1 float32 files with our ``write_fcs`` (a fixed seed), then
times four readers on them:

* ``ours``      ``read_fcs(path)`` and ``.events`` (so scale values are really produced);
* ``flowkit``   ``flowkit.Sample(path)``, the default constructor (reads with flowio and
                preprocesses events to float64, then draws a 10,000-event subsample);
* ``flowio``    ``flowio.FlowData(path).as_array(preprocess=False)`` (float64 array);
* ``numpy``     ``numpy.fromfile`` of the DATA segment alone at offsets found beforehand:
                the floor, what reading the bytes costs with no parsing at all.

Workloads: a 96-file "plate" (20,000 events x 12 channels each; total time per plate) and
one 1,000,000 x 12 file. Each case gets one warm-up call (the files are in the OS cache for
every reader alike), then ``--repeats`` timed runs, interleaved across readers so drift in
machine load hits all of them alike; the median is reported. Each file's result is dropped
before the next is read. Peak memory is measured separately with ``tracemalloc`` (numpy
reports its data allocations to it) on the 1M file and given relative to the DATA segment
size; the returned array itself counts as 1.0x.

No assertions: the script prints a table and whether each target is met::

    python benchmarks/bench_read.py                 # defaults, about a minute on 2 cores
    python benchmarks/bench_read.py --quick         # smoke run, a few seconds
    python benchmarks/bench_read.py --json out.json --workdir /tmp/bench_files
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import inspect
import json
import statistics
import sys
import tempfile
import time
import tracemalloc
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flowio
import flowkit
import numpy as np

try:
    import cytoflow_res
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import cytoflow_res

from _machine import machine_info as _machine_info  # benchmarks/ is the script's folder

from cytoflow_res import read_fcs, write_fcs
from cytoflow_res.io.fcs import read_header

SEED = 20240611
CHANNELS = [
    "FSC-A", "FSC-H", "SSC-A", "SSC-H", "FITC-A", "PE-A",
    "PerCP-Cy5.5-A", "PE-Cy7-A", "APC-A", "APC-Cy7-A", "BV421-A", "BV510-A",
]
# lognormal (mu, sigma) per channel: bright, tight scatter; dim, wide fluorescence
LOGNORMAL = [(11.0, 0.35), (10.7, 0.35), (10.0, 0.5), (9.7, 0.5)] + [(6.0, 1.4)] * 8

TARGET_PLATE_SPEEDUP = 3.0  # flowkit / ours on the plate, at least
TARGET_FLOOR_RATIO = 2.5  # ours / numpy.fromfile on the 1M file, at most
TARGET_PEAK_MEMORY = 1.5  # peak traced bytes / DATA segment bytes, at most


# ------------------------------------------------------------------------- data


def synthetic_events(rng: np.random.Generator, n_events: int) -> np.ndarray:
    cols = [rng.lognormal(mu, sigma, n_events).astype(np.float32) for mu, sigma in LOGNORMAL]
    return np.column_stack(cols)


def write_files(
    workdir: Path, *, big_events: int, plate_files: int, plate_events: int
) -> tuple[Path, list[Path]]:
    rng = np.random.default_rng(SEED)
    big = workdir / "big_1M.fcs"
    write_fcs(big, synthetic_events(rng, big_events), CHANNELS)
    plate_dir = workdir / "plate"
    plate_dir.mkdir(exist_ok=True)
    plate = []
    for i in range(plate_files):
        well = f"{'ABCDEFGH'[i // 12 % 8]}{i % 12 + 1:02d}"
        path = plate_dir / f"plate_{i // 96 + 1}_{well}.fcs"
        write_fcs(path, synthetic_events(rng, plate_events), CHANNELS)
        plate.append(path)
    return big, plate


@dataclass(frozen=True)
class DataSpan:
    start: int
    n_events: int
    n_channels: int

    @property
    def nbytes(self) -> int:
        return self.n_events * self.n_channels * 4


def data_span(path: Path) -> DataSpan:
    header = read_header(path)
    start, end = header.header_data_offsets
    span = DataSpan(start, header.n_events, header.n_channels)
    if end - start + 1 != span.nbytes or header.keywords.get("$DATATYPE") != "F":
        msg = f"{path}: expected a float32 DATA segment of {span.nbytes} bytes, HEADER says {start}-{end}"
        raise RuntimeError(msg)
    return span


# ---------------------------------------------------------------------- readers


def read_ours(path: Path) -> Any:
    sample = read_fcs(path)
    return sample.events


def read_flowkit(path: Path) -> Any:
    return flowkit.Sample(str(path))


def read_flowio(path: Path) -> Any:
    return flowio.FlowData(str(path)).as_array(preprocess=False)


def make_floor(spans: dict[Path, DataSpan]) -> Callable[[Path], Any]:
    def read_numpy(path: Path) -> Any:
        span = spans[path]
        count = span.n_events * span.n_channels
        return np.fromfile(path, dtype="<f4", count=count, offset=span.start).reshape(
            span.n_events, span.n_channels
        )

    return read_numpy


@dataclass(frozen=True)
class Case:
    name: str
    read: Callable[[Path], Any]
    peer: bool  # third-party: its warnings are silenced while it runs

    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        if not self.peer:
            yield
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield

    def run(self, paths: Sequence[Path]) -> None:
        with self.quiet():
            for path in paths:
                self.read(path)


# ---------------------------------------------------------------- measurement


def time_cases(cases: Sequence[Case], paths: Sequence[Path], repeats: int) -> dict[str, list[float]]:
    for case in cases:  # warm-up: imports, caches, OS page cache
        case.run(paths)
    times: dict[str, list[float]] = {case.name: [] for case in cases}
    for _ in range(repeats):
        for case in cases:
            gc.collect()
            t0 = time.perf_counter()
            case.run(paths)
            times[case.name].append(time.perf_counter() - t0)
    return times


def peak_traced_bytes(case: Case, path: Path) -> int:
    gc.collect()
    with case.quiet():
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            result = case.read(path)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    del result
    gc.collect()
    return peak


def check_values(cases: Sequence[Case], path: Path, floor: np.ndarray) -> dict[str, bool]:
    """Every reader must return the stored values, or the timings compare different work."""
    agree = {}
    for case in cases:
        with case.quiet():
            result = case.read(path)
        if isinstance(result, flowkit.Sample):
            result = result.get_events(source="raw")
        values = np.asarray(result, dtype=np.float64)
        agree[case.name] = bool(np.array_equal(values, floor.astype(np.float64)))
    return agree


# ------------------------------------------------------------------- reporting


def machine_info() -> dict[str, Any]:
    return _machine_info(flowkit=flowkit.__version__, flowio=flowio.__version__,
                         cytoflow_res=cytoflow_res.__version__)


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed runs per case (default 5; 3 with --quick)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 8 files x 5,000 events and a 100,000-event file"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="write the files here and keep them")
    parser.add_argument("--json", type=Path, default=None, help="save results to this JSON file")
    args = parser.parse_args(argv)
    repeats = args.repeats if args.repeats is not None else (3 if args.quick else 5)
    if repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.quick:
        big_events, plate_files, plate_events = 100_000, 8, 5_000
    else:
        big_events, plate_files, plate_events = 1_000_000, 96, 20_000

    machine = machine_info()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()))
    fk_params = inspect.signature(flowkit.Sample).parameters
    fk_variant = "flowkit.Sample(path) (default constructor: preprocess=True, subsample=10000)"
    if "cache_original_events" in fk_params:  # not in flowkit 1.3; kept for newer versions
        fk_variant += "; cache_original_events=False also timed as flowkit_nocache"
    print(f"flowkit case: {fk_variant}")

    with contextlib.ExitStack() as stack:
        if args.workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench_read_")))
        else:
            workdir = args.workdir
            workdir.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        big, plate = write_files(
            workdir, big_events=big_events, plate_files=plate_files, plate_events=plate_events
        )
        print(
            f"wrote {big.name} ({big_events:,} x {len(CHANNELS)}) and {plate_files} plate files "
            f"({plate_events:,} x {len(CHANNELS)}) to {workdir} in {time.perf_counter() - t0:.1f} s"
        )
        spans = {path: data_span(path) for path in [big, *plate]}
        cases = [
            Case("ours", read_ours, peer=False),
            Case("flowkit", read_flowkit, peer=True),
            Case("flowio", read_flowio, peer=True),
            Case("numpy", make_floor(spans), peer=False),
        ]
        if "cache_original_events" in fk_params:
            cases.insert(2, Case(
                "flowkit_nocache",
                lambda p: flowkit.Sample(str(p), cache_original_events=False),
                peer=True,
            ))

        floor = cases[-1].read(plate[0])
        agree = check_values(cases, plate[0], floor)
        print("values equal to the stored DATA: " + ", ".join(f"{k} {v}" for k, v in agree.items()))

        t0 = time.perf_counter()
        plate_times = time_cases(cases, plate, repeats)
        big_times = time_cases(cases, [big], repeats)
        print(f"timed {repeats} runs per case (+1 warm-up) in {time.perf_counter() - t0:.1f} s")

        data_bytes = spans[big].nbytes
        peaks = {case.name: peak_traced_bytes(case, big) for case in cases}

    plate_med = {k: statistics.median(v) for k, v in plate_times.items()}
    big_med = {k: statistics.median(v) for k, v in big_times.items()}
    mem_ratio = {k: v / data_bytes for k, v in peaks.items()}
    ratios = {
        "plate_flowkit_over_ours": plate_med["flowkit"] / plate_med["ours"],
        "plate_flowio_over_ours": plate_med["flowio"] / plate_med["ours"],
        "plate_ours_over_numpy": plate_med["ours"] / plate_med["numpy"],
        "big_ours_over_numpy": big_med["ours"] / big_med["numpy"],
        "big_flowkit_over_ours": big_med["flowkit"] / big_med["ours"],
        "big_flowio_over_ours": big_med["flowio"] / big_med["ours"],
        "peak_memory_ours": mem_ratio["ours"],
    }
    targets = {
        "plate_flowkit_over_ours >= 3.0": ratios["plate_flowkit_over_ours"] >= TARGET_PLATE_SPEEDUP,
        "big_ours_over_numpy <= 2.5": ratios["big_ours_over_numpy"] <= TARGET_FLOOR_RATIO,
        "peak_memory_ours <= 1.5": ratios["peak_memory_ours"] <= TARGET_PEAK_MEMORY,
    }

    print()
    plate_label = f"plate ({plate_files} x {plate_events:,} ev)"
    big_label = f"one file ({big_events:,} ev)"
    print(f"{'reader':<16}{plate_label:>28}{big_label:>26}{'peak mem / DATA':>18}")
    for case in cases:
        n = case.name
        print(
            f"{n:<16}{plate_med[n]:>20.4f} s{'':6}{big_med[n]:>18.4f} s{'':6}"
            f"{mem_ratio[n]:>12.2f} x"
        )
    print(f"(median of {repeats} runs; DATA segment of the big file: {data_bytes / 1e6:.1f} MB; "
          f"peak = tracemalloc peak during one read)")
    print()
    print("ratios")
    print(f"  plate     flowkit / ours   {ratios['plate_flowkit_over_ours']:8.2f} x   "
          f"target >= {TARGET_PLATE_SPEEDUP:g} x   {verdict(targets['plate_flowkit_over_ours >= 3.0'])}")
    print(f"  one file  ours / numpy     {ratios['big_ours_over_numpy']:8.2f} x   "
          f"target <= {TARGET_FLOOR_RATIO:g} x   {verdict(targets['big_ours_over_numpy <= 2.5'])}")
    print(f"  memory    ours peak / DATA {ratios['peak_memory_ours']:8.2f} x   "
          f"target <= {TARGET_PEAK_MEMORY:g} x   {verdict(targets['peak_memory_ours <= 1.5'])}")
    print(f"  plate     flowio / ours    {ratios['plate_flowio_over_ours']:8.2f} x   (context)")
    print(f"  plate     ours / numpy     {ratios['plate_ours_over_numpy']:8.2f} x   (context)")
    print(f"  one file  flowkit / ours   {ratios['big_flowkit_over_ours']:8.2f} x   (context)")
    print(f"  one file  flowio / ours    {ratios['big_flowio_over_ours']:8.2f} x   (context)")
    if args.quick:
        print("(--quick: small files; the targets are meant for the default sizes)")

    if args.json is not None:
        result = {
            "machine": machine,
            "config": {
                "seed": SEED,
                "repeats": repeats,
                "quick": args.quick,
                "big_events": big_events,
                "plate_files": plate_files,
                "plate_events": plate_events,
                "channels": len(CHANNELS),
                "data_bytes_big": data_bytes,
                "flowkit_case": fk_variant,
            },
            "values_agree": agree,
            "seconds": {"plate": plate_times, "big": big_times},
            "median_seconds": {"plate": plate_med, "big": big_med},
            "peak_traced_bytes_big": peaks,
            "peak_over_data_big": mem_ratio,
            "ratios": ratios,
            "targets_met": targets,
        }
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"saved {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
