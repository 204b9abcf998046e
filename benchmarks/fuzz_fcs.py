"""Coverage-guided fuzzing of the FCS reader with atheris (libFuzzer). Run by hand, not in CI.

Each input is written to a file (the reader takes paths) and given to ``read_header``,
``count_datasets``, ``read_fcs`` (data sets 0 and 1) and, after a successful read, to
``Sample.events`` and ``Sample.summary()``. :class:`~cytoflow_res.errors.FCSError` is the
expected answer to a bad file; anything else (warnings included, as in the test suite) is
a finding, which libFuzzer saves in the current directory as ``crash-<sha1>`` (an exception;
also a peak traced allocation above 4 x the input size + the returned array + 1 MiB),
``timeout-<sha1>`` (a read slower than ``-timeout``) or ``oom-<sha1>`` (resident memory
above ``-rss_limit_mb``).

The seed corpus holds the real corpus files cut down to their first 20 events (every
instrument dialect, each a few kB: rebuilt with consistent offsets) and files written by
``write_fcs``; a dictionary of FCS keywords and values helps the mutator::

    pip install atheris
    export CYTOFLOW_RES_SHARED_DATA=../shared/data
    python benchmarks/fuzz_fcs.py --make-corpus /tmp/fcs_fuzz      # seeds + fcs.dict
    python benchmarks/fuzz_fcs.py /tmp/fcs_fuzz/seeds -dict=/tmp/fcs_fuzz/fcs.dict \\
        -max_total_time=300 -timeout=5 -rss_limit_mb=2048 -max_len=65536
    python benchmarks/fuzz_fcs.py crash-1234abcd                   # replay one finding

Every argument after the script name goes to libFuzzer (see ``-help=1``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import tracemalloc
import warnings
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["cytoflow_res"]):
    import numpy as np
    import pandas as pd

    from cytoflow_res.errors import FCSError
    from cytoflow_res.io.fcs import _data_span, _layout, count_datasets, read_fcs, read_header
    from cytoflow_res.io.fcs_write import write_fcs

MiB = 1 << 20
# An unlinked file reached through /proc (Linux): nothing is left behind when libFuzzer
# exits without running Python's exit handlers.
_SCRATCH = tempfile.TemporaryFile(dir="/dev/shm" if os.path.isdir("/dev/shm") else None)  # noqa: SIM115
_TARGET = Path(f"/proc/self/fd/{_SCRATCH.fileno()}")

DICTIONARY = [
    "FCS2.0", "FCS3.0", "FCS3.1", "$TOT", "$PAR", "$BEGINDATA", "$ENDDATA", "$BEGINSTEXT",
    "$ENDSTEXT", "$NEXTDATA", "$DATATYPE", "$BYTEORD", "$MODE", "$P1B", "$P1R", "$P1E", "$P1G",
    "$P1N", "$P2B", "$P1DATATYPE", "$TIMESTEP", "$SPILLOVER", "1,2,3,4", "4,3,2,1", "1,2",
    "2,1", "3,4,1,2", "99999999", "00000000", "4294967296", "18446744073709551616", "-1", "nan",
    "inf", "1e308", "10", "24", "64", "65", "0,0", "4,1",
]


def _check(data: bytes) -> None:
    """Run every reader on one input; only FCSError may escape, within the memory bound."""
    os.ftruncate(_SCRATCH.fileno(), 0)
    os.pwrite(_SCRATCH.fileno(), data, 0)
    tracemalloc.start()
    try:
        produced = 0
        with contextlib.suppress(FCSError):
            read_header(_TARGET)
        with contextlib.suppress(FCSError):
            count_datasets(_TARGET)
        for dataset in (0, 1):
            try:
                sample = read_fcs(_TARGET, dataset=dataset)
            except FCSError as exc:
                if not str(exc).startswith(f"{_TARGET}: "):
                    msg = f"FCSError does not name the file: {exc}"
                    raise AssertionError(msg) from exc
                continue
            produced = max(produced, sample.raw.nbytes)
            if sample.raw.ndim != 2 or sample.raw.shape[1] != sample.n_channels:
                msg = f"inconsistent shape {sample.raw.shape} for {sample.n_channels} channels"
                raise AssertionError(msg)
            _current, peak = tracemalloc.get_traced_memory()
            if peak > 4 * len(data) + produced + MiB:
                msg = f"reader peak {peak} bytes for a {len(data)}-byte input"
                raise AssertionError(msg)
            _ = sample.events
            sample.summary()
    finally:
        tracemalloc.stop()


def _shrunk(path: Path, n_events: int = 20) -> bytes | None:
    """The first data set of a valid file, cut to ``n_events`` events with consistent offsets."""
    try:
        header = read_header(path)
        layout = _layout(header, None)
        start, total = _data_span(header, layout, path.stat().st_size)
    except FCSError:
        return None
    if layout.packed or layout.bits_per_event % 8:
        return None
    keep = min(n_events, total)
    with open(path, "rb") as fh:
        fh.seek(start)
        data = fh.read(keep * layout.bits_per_event // 8)
    keywords = {**header.keywords, "$TOT": str(keep), "$NEXTDATA": "0"}
    for key in ("$BEGINSTEXT", "$ENDSTEXT", "$BEGINANALYSIS", "$ENDANALYSIS"):
        keywords.pop(key, None)
    delim = "/" if "/" not in "".join(keywords.values()) else "|"
    d0 = d1 = 0
    for _ in range(4):
        body = delim + "".join(f"{k}{delim}{v}{delim}" for k, v in keywords.items())
        t1 = 58 + len(body.encode("latin-1", "replace")) - 1
        d0, d1 = t1 + 1, t1 + len(data)
        keywords["$BEGINDATA"], keywords["$ENDDATA"] = str(d0), str(d1)
    version = header.version if header.version.startswith("FCS") else "FCS3.0"
    head = f"{version:<10}{58:>8}{t1:>8}{d0:>8}{d1:>8}{0:>8}{0:>8}"
    return head.encode("ascii") + body.encode("latin-1", "replace") + data


def make_corpus(folder: Path) -> None:
    """Write seed inputs to ``folder/seeds`` and a libFuzzer dictionary to ``folder/fcs.dict``."""
    seeds = folder / "seeds"
    seeds.mkdir(parents=True, exist_ok=True)
    shared = os.environ.get("CYTOFLOW_RES_SHARED_DATA", "")
    corpus = Path(shared) / "fcs_corpus" if shared else None
    count = 0
    if corpus is not None and corpus.is_dir():
        for path in sorted(corpus.iterdir()):
            blob = _shrunk(path)
            if blob is not None:
                (seeds / f"real_{count:03d}.fcs").write_bytes(blob)
                count += 1
    else:
        print("CYTOFLOW_RES_SHARED_DATA is not set: seeding with written files only")
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.gamma(2.0, 200.0, size=(20, 4)), columns=["FSC-A", "SSC-A", "FL1-A", "Time"])
    ints = frame.clip(0, 1023).round()
    write_fcs(seeds / "written_f31.fcs", frame)
    write_fcs(seeds / "written_d20.fcs", frame, datatype="D", byteorder=">", version="2.0")
    write_fcs(seeds / "written_i16.fcs", ints, datatype="I", bits=16, ranges=[1024] * 4, version="3.0",
              log_decades=[0, 0, 4, 0])
    write_fcs(seeds / "written_i8.fcs", ints.clip(0, 255), datatype="I", bits=8, ranges=[256] * 4)
    lines = [f'kw{i}="{token}"' for i, token in enumerate(DICTIONARY)]
    (folder / "fcs.dict").write_text("\n".join(lines) + "\n")
    print(f"{count} shrunk real files and 4 written files in {seeds}; dictionary {folder / 'fcs.dict'}")


def main(argv: list[str]) -> None:
    """Make the seed corpus (``--make-corpus DIR``) or hand ``argv`` to libFuzzer."""
    if len(argv) >= 3 and argv[1] == "--make-corpus":
        make_corpus(Path(argv[2]))
        return
    logging.disable(logging.WARNING)  # the reader's warnings about damaged offsets, every input
    warnings.simplefilter("error")  # as the test suite: a RuntimeWarning from numpy is a finding
    atheris.Setup(argv, _check)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
