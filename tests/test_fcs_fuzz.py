"""Fuzzing the FCS reader from real files: damaged input reads or raises FCSError, in bounds.

Every test starts from a valid file, either one of a few small, diverse files of the real
corpus (FCS 2.0/3.0/3.1, integer and float, both byte orders, mixed widths, HEADER/TEXT
offset disagreements, a header-only file, a two-data-set Beckman .LMD) or one written by
:func:`cytoflow_res.io.fcs_write.write_fcs` from a small simulated sample, and damages it:
byte flips (anywhere, in HEADER, in TEXT), truncation, absurd TEXT keyword values, forged
HEADER offsets, broken delimiters, and bytes that are not FCS at all.

Whatever the damage, the public readers (``read_fcs``, ``read_header``, ``count_datasets``,
and the Sample built from a successful read) must either succeed with consistent shapes or
raise :class:`FCSError` whose message names the file. Each read is bounded in time (a
Hypothesis deadline, and an alarm that turns a hang into a failure) and in memory: the
peak traced allocation may not exceed four times the file size plus the returned array
plus 1 MiB, whatever sizes a forged HEADER or TEXT declares.

Runs are reproducible (``derandomize=True``, no example database). ``FUZZ_EXAMPLES`` scales
the number of examples for a longer local run, e.g. ``FUZZ_EXAMPLES=20``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import signal
import tempfile
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import TypeVar

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cytoflow_res.errors import CytoflowResError, FCSError
from cytoflow_res.io.fcs import count_datasets, parse_text, read_fcs, read_header
from cytoflow_res.io.fcs_write import write_fcs
from cytoflow_res.sample import Sample
from cytoflow_res.simulate import ApoptosisSpec, simulate_apoptosis
from tests.conftest import shared_file

# Small, diverse real files (see shared/data/fcs_corpus/MANIFEST.tsv).
CORPUS_SEEDS = (
    "FlowKit__data__simple_line_example__data_set_simple_line_100.fcs",  # 3.1 float LE, 1 kB
    "FlowIO__data__fcs_files__variable_int_example.fcs",  # 3.0 int 16/32 mixed LE
    "FlowIO__data__fcs_files__data_stop_offset_discrepancy_example.fcs",  # HEADER vs TEXT offsets
    "fcsparser__fcsparser__tests__data__FlowCytometers__cytek-nl-2000__sample_header.fcs",  # no DATA
    "cytoflow__docs__examples-basic__data__Yeast_B1_B01.fcs",  # 3.0 float BE
    "fcsparser__fcsparser__tests__data__FlowCytometers__cyflow_cube_8__cyflow_cube_8.fcs",  # 16/32/8 bits
    "FlowIO__data__fcs_files__B01_KC-A-W---91-US.fcs",  # 3.1 int32 BE (Accuri C6 Plus)
    "cytoflow__cytoflow__tests__data__instruments__System_II_listmode_with_extra_info_in_bits_D10-D15.LMD",
    "flowCore__inst__extdata__compdata__data__060909.001",  # 2.0 int16 BE (FACSCalibur)
    "cytoflow__cytoflow__tests__data__instruments__Beckman_Coulter_-_Gallios.LMD",  # two data sets
)

EXAMPLES_SCALE = max(1, int(os.environ.get("FUZZ_EXAMPLES", "1")))
HANG_SECONDS = 10.0
MiB = 1 << 20
T = TypeVar("T")


def _settings(n: int) -> settings:
    return settings(
        max_examples=n * EXAMPLES_SCALE,
        deadline=timedelta(seconds=2),
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# ------------------------------------------------------------------------- seeds


def _simulated_events(n: int) -> pd.DataFrame:
    events, _truth = simulate_apoptosis(ApoptosisSpec(n_events=n), seed=7)
    return events.drop(columns="population")


def _chain(first: bytes, second: bytes) -> bytes:
    """Two data sets in one file: point the first's $NEXTDATA at the second's HEADER.

    The first file carries a ``PAD`` keyword whose value shrinks by the digits $NEXTDATA
    gains, so TEXT keeps its length and every offset stays valid.
    """
    digits = str(len(first)).encode()
    pad = b"|PAD|" + b"0" * 16 + b"|"
    assert first.count(b"|$NEXTDATA|0|") == 1 and first.count(pad) == 1
    out = first.replace(b"|$NEXTDATA|0|", b"|$NEXTDATA|" + digits + b"|")
    out = out.replace(pad, b"|PAD|" + b"0" * (16 - len(digits) + 1) + b"|")
    assert len(out) == len(first)
    return out + second


def _written_seeds(folder: Path) -> dict[str, bytes]:
    frame = _simulated_events(120)
    ints = frame.clip(0, 1023).round()
    seeds = {
        "written_f31_le": write_fcs(folder / "a.fcs", frame, version="3.1"),
        "written_i16_30_be": write_fcs(
            folder / "b.fcs", ints, datatype="I", bits=16, byteorder=">", version="3.0",
            ranges=[1024] * ints.shape[1], log_decades=[0, 0, 0, 4, 4, 0, 0][: ints.shape[1]],
        ),
        "written_d20_be": write_fcs(folder / "c.fcs", frame.iloc[:40], datatype="D", byteorder=">",
                                    version="2.0"),
        "written_i8_31_le": write_fcs(folder / "d.fcs", ints.clip(0, 255).iloc[:60], datatype="I",
                                      bits=8, ranges=[256] * ints.shape[1], version="3.1"),
    }
    blobs = {name: path.read_bytes() for name, path in seeds.items()}
    first = write_fcs(folder / "e.fcs", frame.iloc[:30], keywords={"PAD": "0" * 16}).read_bytes()
    blobs["written_two_datasets"] = _chain(first, blobs["written_i16_30_be"])
    return blobs


@functools.cache
def _seeds(group: str) -> dict[str, bytes]:
    """Seed files by name: our own written files, or small real corpus files.

    Tests take the group's name and look the bytes up here: Hypothesis misreports failures
    (as FlakyStrategyDefinition) when a test receives megabytes of fixture data.
    """
    if group == "written":
        with tempfile.TemporaryDirectory(prefix="fcs_fuzz_seeds_") as folder:
            return _written_seeds(Path(folder))
    return {name: shared_file("fcs_corpus", name).read_bytes() for name in CORPUS_SEEDS}


GROUPS = pytest.mark.parametrize("group", ["written", "corpus"])


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one file every example is written to (a fixed name keeps messages comparable)."""
    return tmp_path_factory.mktemp("fuzz") / "mutant.fcs"


# ---------------------------------------------------------------------- anatomy


@dataclass(frozen=True)
class _Anatomy:
    """Where the parts of a valid seed's first data set lie."""

    text_start: int
    text_end: int
    delim: bytes
    keywords: dict[str, str]
    data: bytes
    version: bytes


def _anatomy(blob: bytes) -> _Anatomy:
    t0, t1 = int(blob[10:18]), int(blob[18:26])
    d0, d1 = int(blob[26:34] or b"0"), int(blob[34:42] or b"0")
    keywords = parse_text(blob[t0 : t1 + 1])
    if d0 == 0:
        d0, d1 = int(keywords.get("$BEGINDATA", "0")), int(keywords.get("$ENDDATA", "-1"))
    return _Anatomy(t0, t1, blob[t0 : t0 + 1], keywords, blob[d0 : d1 + 1] if d0 else b"", blob[:6])


def _build(anatomy: _Anatomy, keywords: dict[str, str], *, keep: frozenset[str], header_data: bool) -> bytes:
    """A consistent file from keywords and the seed's DATA; keys in ``keep`` are not recomputed."""
    delim = anatomy.delim
    kw = dict(keywords)
    data = anatomy.data
    d0 = d1 = 0
    for _ in range(4):
        body = delim + b"".join(
            k.encode("latin-1", "replace") + delim
            + v.encode("latin-1", "replace").replace(delim, delim + delim) + delim
            for k, v in kw.items()
        )
        t1 = 58 + len(body) - 1
        d0, d1 = t1 + 1, t1 + len(data)
        for key, value in (("$BEGINDATA", d0), ("$ENDDATA", d1)):
            if key not in keep and (key in kw or anatomy.version != b"FCS2.0"):
                kw[key] = str(value)
    hd0, hd1 = (d0, d1) if header_data else (0, 0)
    header = anatomy.version + b"    " + b"".join(f"{v:>8}".encode() for v in (58, t1, hd0, hd1, 0, 0))
    return header + body + data


# --------------------------------------------------------------------- checking


class _Hang(Exception):
    """A read did not finish in time (raised from the alarm handler)."""


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    def on_alarm(signum: int, frame: FrameType | None) -> None:
        msg = f"read did not finish within {seconds} s"
        raise _Hang(msg)

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _bounded(path: Path, call: Callable[[], T]) -> T | FCSError:
    """Run one read under the time limit and check its peak memory; FCSError is returned."""
    size = path.stat().st_size
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        with _time_limit(HANG_SECONDS):
            try:
                result: T | FCSError = call()
            except FCSError as exc:
                result = exc
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    produced = getattr(getattr(result, "raw", None), "nbytes", 0)
    limit = 4 * size + produced + MiB
    assert peak <= limit, f"peak allocation {peak} bytes for a {size}-byte file (limit {limit})"
    return result


def _assert_named(exc: FCSError, path: Path) -> None:
    assert isinstance(exc, CytoflowResError)
    message = str(exc)
    assert message.startswith(f"{path}: "), message
    assert len(exc.problem) > 15, message


def _check(path: Path, blob: bytes) -> None:
    """Every public reader on one mutant: success with consistent shapes, or a named FCSError."""
    # A new file, not a truncated one: ext4 flushes a truncated file to disk on close (~3 ms).
    path.unlink(missing_ok=True)
    path.write_bytes(blob)
    header = _bounded(path, lambda: read_header(path))
    if isinstance(header, FCSError):
        _assert_named(header, path)
    else:
        assert header.keywords
    count = _bounded(path, lambda: count_datasets(path))
    if isinstance(count, FCSError):
        _assert_named(count, path)
    else:
        assert isinstance(count, int) and count >= 1
    for dataset in (0, 1):
        sample = _bounded(path, functools.partial(read_fcs, path, dataset=dataset))
        if isinstance(sample, FCSError):
            _assert_named(sample, path)
            continue
        _assert_consistent(path, sample, dataset)


def _assert_consistent(path: Path, sample: Sample, dataset: int) -> None:
    header = read_header(path, dataset=dataset)
    raw = sample.raw
    assert raw.ndim == 2
    assert raw.shape[1] == sample.n_channels == header.n_channels == len(header.channel_names)
    if header.n_events >= 0:
        assert raw.shape[0] == header.n_events
    with _time_limit(HANG_SECONDS):
        assert sample.events.shape == raw.shape
        doc = sample.summary()
    assert doc["n_events"] == raw.shape[0]
    with contextlib.suppress(FCSError):
        _ = sample.spillover


# -------------------------------------------------------------------- mutations

NASTY_VALUES = (
    "0", "-1", "-99999999", "1", "7", "65", str(10**12), str(10**15), str(2**63), "9" * 40,
    "1e300", "1e-300", "nan", "inf", "-inf", "abc", "", " ", "1.5", "0x10", "4,3,2", "1,1,1,1",
    "1,2,3,4,5,6,7,8,9", "2,1,4,3", "\x00", "A", "F", "D", "I", "L", "C", "é", "3,a,b,1",
    "2,A,B,1,0,0", "10,5", "0,0", "4,-1", "99999,1", "1e308,1e308",
)

PARAM_KEYS = ("$P{n}B", "$P{n}R", "$P{n}E", "$P{n}G", "$P{n}N", "$P{n}DATATYPE")
DATASET_KEYS = (
    "$TOT", "$PAR", "$BEGINDATA", "$ENDDATA", "$DATATYPE", "$BYTEORD", "$NEXTDATA", "$MODE",
    "$BEGINSTEXT", "$ENDSTEXT", "$TIMESTEP", "$SPILLOVER", "SPILL",
)


@st.composite
def _keyword_edits(draw: st.DrawFn, n_par: int) -> dict[str, str]:
    edits: dict[str, str] = {}
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            key = draw(st.sampled_from(DATASET_KEYS))
        else:
            n = draw(st.sampled_from(sorted({1, max(1, n_par), n_par + 1, 2})))
            key = draw(st.sampled_from(PARAM_KEYS)).format(n=n)
        edits[key] = draw(st.one_of(st.sampled_from(NASTY_VALUES), st.integers(-(10**18), 10**18).map(str)))
    return edits


def _flip(blob: bytes, lo: int, hi: int, data: st.DataObject) -> bytes:
    out = bytearray(blob)
    hi = min(hi, len(blob))
    if hi <= lo:
        return blob
    for _ in range(data.draw(st.integers(1, 8), label="n_flips")):
        pos = data.draw(st.integers(lo, hi - 1), label="pos")
        out[pos] ^= data.draw(st.integers(1, 255), label="xor")
    return bytes(out)


def _pick(seeds: dict[str, bytes], data: st.DataObject) -> tuple[str, bytes]:
    name = data.draw(st.sampled_from(sorted(seeds)), label="seed")
    return name, seeds[name]


# ------------------------------------------------------------------------ tests


@GROUPS
@_settings(300)
@given(data=st.data())
def test_byte_flips(group: str, work: Path, data: st.DataObject) -> None:
    """Random bytes XOR-ed anywhere, in HEADER, or in TEXT."""
    _name, blob = _pick(_seeds(group), data)
    anatomy = _anatomy(blob)
    region = data.draw(st.sampled_from(["anywhere", "header", "text", "text"]), label="region")
    lo, hi = {"anywhere": (0, len(blob)), "header": (0, 58),
              "text": (anatomy.text_start, anatomy.text_end + 1)}[region]
    _check(work, _flip(blob, lo, hi, data))


@GROUPS
@_settings(150)
@given(data=st.data())
def test_truncation(group: str, work: Path, data: st.DataObject) -> None:
    """The file cut anywhere, with extra weight on the HEADER/TEXT/DATA boundaries."""
    _name, blob = _pick(_seeds(group), data)
    anatomy = _anatomy(blob)
    edges = [0, 6, 10, 57, 58, anatomy.text_start + 1, anatomy.text_end, anatomy.text_end + 1,
             len(blob) - len(anatomy.data) // 2, len(blob) - 1]
    cut = data.draw(
        st.one_of(st.integers(0, len(blob)),
                  st.tuples(st.sampled_from(edges), st.integers(-3, 3)).map(lambda e: e[0] + e[1])),
        label="cut",
    )
    _check(work, blob[: max(0, cut)])


@GROUPS
@_settings(300)
@given(data=st.data())
def test_absurd_keywords(group: str, work: Path, data: st.DataObject) -> None:
    """TEXT keywords set to 0, negative, huge, non-numeric or empty values.

    ``rebuild`` writes a consistent file around the edited keywords (offsets recomputed
    unless edited), ``in_place`` swaps the value bytes and lets every offset go stale.
    """
    _name, blob = _pick(_seeds(group), data)
    anatomy = _anatomy(blob)
    n_par = int(anatomy.keywords.get("$PAR", "1"))
    edits = data.draw(_keyword_edits(n_par), label="edits")
    if data.draw(st.booleans(), label="rebuild"):
        keywords = {**anatomy.keywords, "$NEXTDATA": "0", **edits}
        header_data = data.draw(st.booleans(), label="header_data_offsets")
        mutant = _build(anatomy, keywords, keep=frozenset(edits), header_data=header_data)
    else:
        mutant = blob
        d = anatomy.delim
        for key, value in edits.items():
            start = mutant.find(d + key.encode() + d, anatomy.text_start, anatomy.text_end + 1)
            if start < 0:
                continue
            v0 = start + len(key) + 2
            v1 = mutant.find(d, v0)
            mutant = mutant[:v0] + value.encode("utf-8") + mutant[v1:]
    _check(work, mutant)


HEADER_FIELDS = {"text_start": 10, "text_end": 18, "data_start": 26, "data_end": 34,
                 "analysis_start": 42, "analysis_end": 50}


@GROUPS
@_settings(200)
@given(data=st.data())
def test_forged_header_offsets(group: str, work: Path, data: st.DataObject) -> None:
    """HEADER offsets (and the version) replaced by numbers, garbage or near misses."""
    _name, blob = _pick(_seeds(group), data)
    mutant = bytearray(blob)
    for _ in range(data.draw(st.integers(1, 3), label="n_fields")):
        at = data.draw(st.sampled_from(sorted(HEADER_FIELDS.values())), label="field")
        current = int(blob[at : at + 8].strip() or b"0")
        value = data.draw(
            st.one_of(
                st.integers(-9_999_999, 99_999_999).map(lambda v: f"{v:>8}".encode()),
                st.integers(current - 64, current + 64).map(lambda v: f"{max(-9_999_999, v):>8}".encode()),
                st.sampled_from([b"        ", b"abcdefgh", b"-0000001", b"1e3     ", b"\xff" * 8,
                                 b" 0x10   ", b"99999999", b"1_000   ", b"\x00" * 8, b"  \xd9\xa3    "]),
            ),
            label="value",
        )
        mutant[at : at + 8] = value[:8].ljust(8)
    if data.draw(st.booleans(), label="version"):
        mutant[:6] = data.draw(st.sampled_from([b"FCS9.9", b"FCS   ", b"FCS\xff\xfe\x00", b"fcs3.1",
                                                b"FCS1.0"]), label="version_bytes")
    _check(work, bytes(mutant))


@GROUPS
@_settings(200)
@given(data=st.data())
def test_bad_delimiters(group: str, work: Path, data: st.DataObject) -> None:
    """The TEXT delimiter replaced, doubled, dropped or made inconsistent."""
    _name, blob = _pick(_seeds(group), data)
    anatomy = _anatomy(blob)
    t0, t1 = anatomy.text_start, anatomy.text_end + 1
    text = blob[t0:t1]
    d = anatomy.delim
    how = data.draw(st.sampled_from(["replace_all", "double_all", "first_only", "drop_last",
                                     "double_one", "replace_one", "strip_all"]), label="how")
    other = bytes([data.draw(st.integers(0, 255).filter(lambda b: b != d[0]), label="byte")])
    positions = [i for i in range(len(text)) if text[i : i + 1] == d]
    pick = data.draw(st.sampled_from(positions), label="which")
    if how == "replace_all":
        new = text.replace(d, other)
    elif how == "double_all":
        new = text.replace(d, d + d)
    elif how == "first_only":
        new = other + text[1:]
    elif how == "drop_last":
        new = text[:-1] if text.endswith(d) else text
    elif how == "double_one":
        new = text[:pick] + d + text[pick:]
    elif how == "replace_one":
        new = text[:pick] + other + text[pick + 1 :]
    else:
        new = text.replace(d, b"")
    # Keep the HEADER's TEXT end where it was: stale offsets are part of the damage.
    _check(work, blob[:t0] + new + blob[t1:])


@_settings(200)
@given(
    junk=st.one_of(
        st.binary(max_size=3000),
        st.binary(max_size=600).map(lambda b: b"FCS3.1    " + b),
        st.tuples(st.integers(0, 9999), st.integers(0, 9999), st.binary(max_size=400)).map(
            lambda t: f"FCS3.0    {58:>8}{58 + t[0]:>8}{t[1]:>8}{t[1] + 400:>8}{0:>8}{0:>8}".encode() + t[2]),
        st.text(max_size=500).map(lambda s: f"FCS2.0    {58:>8}{58 + len(s):>8}{0:>16}{0:>16}|{s}".encode()),
    )
)
def test_not_fcs_at_all(work: Path, junk: bytes) -> None:
    """Empty files, random bytes, and HEADERs followed by garbage."""
    _check(work, junk)


# ------------------------------------------------- every absurd value, every key


@pytest.fixture(scope="module")
def written() -> dict[str, bytes]:
    """Our own written seed files (no shared data needed)."""
    return _seeds("written")


@pytest.mark.parametrize("seed", ["written_i16_30_be", "written_f31_le", "written_d20_be"])
def test_every_absurd_value_of_every_keyword(written: dict[str, bytes], work: Path, seed: str) -> None:
    """The grid the random edits sample from, walked in full on small files of each type."""
    anatomy = _anatomy(written[seed])
    n_par = int(anatomy.keywords["$PAR"])
    keys = [*DATASET_KEYS, *(k.format(n=n) for k in PARAM_KEYS for n in (1, n_par))]
    for key in keys:
        # Correct HEADER DATA offsets win over $BEGINDATA/$ENDDATA: zero them to test those.
        header_data_choices = (True, False) if key in ("$BEGINDATA", "$ENDDATA") else (True,)
        for value in NASTY_VALUES:
            for header_data in header_data_choices:
                keywords = {**anatomy.keywords, key: value}
                _check(work, _build(anatomy, keywords, keep=frozenset({key}), header_data=header_data))


# ------------------------------------------------------ the documented answers

Mutation = Callable[[bytes], bytes]


def _edited(edits: dict[str, str]) -> Mutation:
    """A consistent file with TEXT keywords replaced (HEADER DATA offsets zeroed if edited)."""

    def mutate(blob: bytes) -> bytes:
        anatomy = _anatomy(blob)
        header_data = not ({"$BEGINDATA", "$ENDDATA"} & set(edits))
        return _build(anatomy, {**anatomy.keywords, **edits}, keep=frozenset(edits), header_data=header_data)

    return mutate


def _header_field(at: int, value: bytes) -> Mutation:
    return lambda blob: blob[:at] + value.ljust(8) + blob[at + 8 :]


def _first_byte_of_text(blob: bytes) -> bytes:
    t0 = int(blob[10:18])
    return blob[:t0] + b"\x01" + blob[t0 + 1 :]


def _text_end(blob: bytes) -> int:
    return int(blob[18:26])


# (what is wrong, how to make it from a valid FCS 3.0 int16 file, what the reader says)
BAD_INPUTS: list[tuple[str, Mutation, str]] = [
    ("empty file", lambda b: b"",
     r"not an FCS file: it must start with 'FCS2\.0'.* but starts with ''"),
    ("not FCS (a PNG)", lambda b: b"\x89PNG\r\n\x1a\n" + b"\0" * 100,
     r"not an FCS file.*starts with '\\x89PNG"),
    ("cut inside the HEADER", lambda b: b[:40], r"not an FCS file"),
    ("cut inside TEXT", lambda b: b[: _text_end(b) - 5],
     r"HEADER gives TEXT at bytes 58-\d+, outside the file"),
    ("cut inside DATA", lambda b: b[:-100],
     r"no consistent DATA offset .*the DATA segment is missing or truncated"),
    ("HEADER offset not a number", _header_field(10, b"abcdefgh"),
     r"HEADER TEXT start offset 'abcdefgh' is not a number"),
    ("HEADER TEXT offsets beyond the file", _header_field(18, b"99999999"),
     r"HEADER gives TEXT at bytes 58-99999999, outside the file"),
    ("HEADER and TEXT DATA offsets both 0", _edited({"$BEGINDATA": "0", "$ENDDATA": "0"}),
     r"no DATA offsets: HEADER gives 0-0"),
    ("$BEGINDATA/$ENDDATA absurd (10**15)",
     _edited({"$BEGINDATA": str(10**15), "$ENDDATA": str(10**15 + 9)}),
     r"no consistent DATA offset \(TEXT says 1000000000000000-"),
    ("TEXT delimiter replaced", _first_byte_of_text, r"the TEXT segment holds no keywords"),
    ("$TOT = 10**12", _edited({"$TOT": str(10**12)}),
     r"\$TOT = 1000000000000 events of 14 bytes need 14000000000000 bytes, but the file has \d+"),
    ("$TOT = 10**15 (float data)", _edited({"$TOT": str(10**15), "$DATATYPE": "F", "$P1B": "32"}),
     r"\$TOT = 1000000000000000 events"),
    ("$PAR = 0", _edited({"$PAR": "0"}), r"\$PAR is '0'; the file declares no parameters"),
    ("$PAR = abc", _edited({"$PAR": "abc"}), r"\$PAR is 'abc'; the file declares no parameters"),
    ("$PAR = 10**15", _edited({"$PAR": str(10**15)}),
     r"\$PAR = 1000000000000000 is not plausible: the TEXT segment holds \d+ keywords"),
    ("$PnB = 0, -1, inf, abc or 65", _edited({"$P1B": "inf"}),
     r"\$P1B is 'inf'; integer data needs a bit width from 1 to 64"),
    ("$DATATYPE = A (ASCII) or empty", _edited({"$DATATYPE": "A"}),
     r"\$DATATYPE is 'A'; only I \(integer\), F \(float\) and D"),
    ("$MODE = H (histogram)", _edited({"$MODE": "H"}),
     r"\$MODE is 'H'; only list-mode \(L\) data can be read"),
    ("$BYTEORD garbage", _edited({"$BYTEORD": "3,a,b,1"}),
     r"\$BYTEORD is '3,a,b,1'; expected e\.g\. '1,2,3,4'"),
    ("$BYTEORD 2,1,4,3 on 16-bit data", _edited({"$BYTEORD": "2,1,4,3"}),
     r"\$BYTEORD '2,1,4,3' reorders bytes in a way that only fits 4-byte values"),
    ("$NEXTDATA past the end", _edited({"$NEXTDATA": str(10**12)}),
     r"\$NEXTDATA = 1000000000000 of data set 0 points past the end"),
    ("$NEXTDATA into its own TEXT (cycle)", _edited({"$NEXTDATA": "1"}),
     r"\$NEXTDATA = 1 of data set 0 points inside that data set's HEADER or TEXT"),
]


@pytest.mark.parametrize(("what", "mutate", "message"), BAD_INPUTS, ids=[row[0] for row in BAD_INPUTS])
def test_bad_input_is_answered(
    written: dict[str, bytes], tmp_path: Path, what: str, mutate: Mutation, message: str
) -> None:
    """Each kind of damage gets one FCSError naming the file, the problem and the numbers."""
    path = tmp_path / "bad.fcs"
    path.write_bytes(mutate(written["written_i16_30_be"]))
    dataset = 1 if "NEXTDATA" in what else 0
    tracemalloc.start()
    try:
        with pytest.raises(FCSError, match=rf"^{re.escape(str(path))}: {message}") as info:
            read_fcs(path, dataset=dataset)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.path == str(path)
    assert peak < 4 * path.stat().st_size + MiB


def test_damaged_scaling_keywords_still_read(written: dict[str, bytes], tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    """$PnE beyond any float and a negative $PnG are ignored with a logged warning."""
    path = tmp_path / "scale.fcs"
    path.write_bytes(_edited({"$P4E": "1e6,1", "$P1G": "-2"})(written["written_i16_30_be"]))
    sample = read_fcs(path)
    assert sample.channels[3].log_decades == 0 and sample.channels[0].gain == 1.0
    assert np.isfinite(sample.events).all()
    assert "$P4E = '1e6,1' puts the top of the scale beyond any float" in caplog.text
    assert "$P1G = '-2' is negative" in caplog.text


def test_damaged_spillover_is_reported_not_raised_by_summary(
    written: dict[str, bytes], tmp_path: Path
) -> None:
    """A spillover count of 'inf' is an FCSError from ``spillover``, a note in ``summary``."""
    path = tmp_path / "spill.fcs"
    path.write_bytes(_edited({"$SPILLOVER": "inf,A,1"})(written["written_i16_30_be"]))
    sample = read_fcs(path)
    with pytest.raises(FCSError, match=r"keyword \$SPILLOVER is not a spillover matrix"):
        _ = sample.spillover
    assert "error" in sample.summary()["spillover"]


def test_paths_that_are_not_files(tmp_path: Path) -> None:
    with pytest.raises(FCSError, match=rf"^{re.escape(str(tmp_path))}: is not a regular file"):
        read_fcs(tmp_path)
    with pytest.raises(FCSError, match=r"nope\.fcs: file not found"):
        read_header(tmp_path / "nope.fcs")
    with pytest.raises(FCSError, match="cannot open the file"):
        read_fcs(tmp_path / "a\0b.fcs")


def test_huge_dataset_index_walks_only_the_file(written: dict[str, bytes], tmp_path: Path) -> None:
    path = tmp_path / "two.fcs"
    path.write_bytes(written["written_two_datasets"])
    assert count_datasets(path) == 2
    assert read_fcs(path, dataset=1).n_events == 120
    with pytest.raises(FCSError, match=r"data set 1000000000 requested but the file holds only 2"):
        read_fcs(path, dataset=10**9)


def test_bit_packed_data_is_decoded_in_bounded_memory(tmp_path: Path) -> None:
    """10-bit values packed without padding: decoded in chunks, not 8 bytes per bit."""
    n = 200_000
    values = np.arange(n, dtype=np.uint32) % 1024
    bits = ((values[:, None] >> np.arange(9, -1, -1)) & 1).astype(np.uint8)
    text = (f"/$BYTEORD/4,3,2,1/$DATATYPE/I/$MODE/L/$PAR/1/$TOT/{n}/$P1N/A/$P1B/10/$P1R/1024/"
            "$BEGINDATA/{b:>10}/$ENDDATA/{e:>10}/")
    data = np.packbits(bits.ravel()).tobytes()
    begin = 58 + len(text.format(b=0, e=0))
    text = text.format(b=begin, e=begin + len(data) - 1)
    header = f"FCS3.0    {58:>8}{begin - 1:>8}{0:>8}{0:>8}{0:>8}{0:>8}"
    path = tmp_path / "packed.fcs"
    path.write_bytes(header.encode() + text.encode() + data)
    tracemalloc.start()
    try:
        sample = read_fcs(path)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(sample.raw[:, 0], values)
    assert peak < 4 * len(data) + sample.raw.nbytes + MiB
