"""Huge files: reading only some channels, block by block, and analyses in bounded memory.

Three kinds of test:

* reading: ``read_fcs(path, channels=...)`` and block-by-block decoding return exactly the
  columns of a whole read, on every readable file of the real corpus and on hand-built
  layouts (bit-packed, 24-bit, byte-permuted, mixed float/integer), with blocks of 8 events;
* same results: the block-wise and in-place computations (compensation, polygon gates,
  automatic debris and singlet gates, doublet discrimination, quadrant counts) give what the
  plain whole-array computations give. The references below are the previous
  implementations, kept verbatim; the analyses of a sample read with only the channels
  they need equal those of the whole file;
* memory: the peak traced by ``tracemalloc`` (numpy reports its arrays to it) while a
  1,000,000-event file is read and analysed stays under the bounds stated in
  :meth:`ApoptosisGating.analyze` and :func:`dna_histogram`. The same code before this
  work exceeded them (about 250 MB against a 108 MB bound for apoptosis, 58-70 MB against
  39 MB for cell cycle).
"""

from __future__ import annotations

import dataclasses
import gc
import itertools
import json
import math
import struct
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cytoflow_res import ChannelError, read_fcs
from cytoflow_res import simulate as sim
from cytoflow_res.apoptosis import ApoptosisGating
from cytoflow_res.cellcycle.histogram import dna_channels, dna_histogram, singlet_mask
from cytoflow_res.gating import gates as gates_module
from cytoflow_res.gating.gates import PolygonGate, RangeGate
from cytoflow_res.gating.preprocess import (
    _MAD_TO_SD,
    _MIN_EVENTS,
    _binned_line,
    _cell_mode,
    _debris_valley,
    _log_density,
    auto_debris_gate,
    auto_singlet_gate,
)
from cytoflow_res.io import fcs as fcs_module
from cytoflow_res.io.fcs_write import write_fcs
from cytoflow_res.sample import Sample
from cytoflow_res.transforms import _EVENT_BLOCK, Compensation, _event_blocks
from tests.conftest import REPO_ROOT, SHARED_ENV, shared_file, shared_root

MB = 1 << 20


def _corpus() -> list[str]:
    root = shared_root()
    if root is None or not (root / "fcs_corpus" / "expected.json").exists():
        return []
    files = json.loads((root / "fcs_corpus" / "expected.json").read_text())["files"]
    return sorted(k for k, v in files.items() if v.get("expect") == "read")


CORPUS = _corpus()


@pytest.fixture
def tiny_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read 8 events per block: every block boundary case appears in small files."""
    monkeypatch.setattr(fcs_module, "_BLOCK_BYTES", 1)


def _same_columns(part: Sample, whole: Sample, columns: list[int]) -> None:
    assert part.raw.dtype == whole.raw.dtype
    np.testing.assert_array_equal(part.raw, whole.raw[:, columns])
    np.testing.assert_array_equal(part.events, whole.events[:, columns])
    assert part.channel_names == [whole.channel_names[i] for i in columns]
    assert [ch.index for ch in part.channels] == list(range(len(columns)))
    for mine, theirs in zip(part.channels, (whole.channels[i] for i in columns), strict=True):
        assert mine == dataclasses.replace(theirs, index=mine.index)
    assert part.keywords == whole.keywords
    assert part.n_events == whole.n_events


# ================================================================== reading: real corpus
@pytest.mark.shared
@pytest.mark.parametrize("name", CORPUS or ["<no corpus>"])
def test_selected_channels_equal_whole_read_on_corpus(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if name == "<no corpus>":
        pytest.skip(f"{SHARED_ENV} is not set: real-data test skipped")
    path = shared_file("fcs_corpus", name)
    whole = read_fcs(path)
    n = whole.n_channels
    selections = [list(range(n))[::-2], [n - 1]]
    for block_bytes in (1, 1 << 21):
        monkeypatch.setattr(fcs_module, "_BLOCK_BYTES", block_bytes)
        for sel in selections:
            # keys in any order, by name or index, repeated: the file's order, each once
            keys: list[str | int] = [whole.channel_names[i] for i in sel] + sel[:1]
            _same_columns(read_fcs(path, channels=keys), whole, sorted(sel))
    # a whole read decoded block by block (layouts not decoded in place) is the same too
    again = read_fcs(path)
    np.testing.assert_array_equal(again.raw, whole.raw)
    assert again.raw.dtype == whole.raw.dtype


@pytest.mark.shared
def test_selected_channels_of_second_data_set(tiny_blocks: None) -> None:
    name = "cytoflow__cytoflow__tests__data__instruments__Beckman_Coulter_-_Gallios.LMD"
    path = shared_file("fcs_corpus", name)
    whole = read_fcs(path, dataset=1)
    part = read_fcs(path, dataset=1, channels=["FL1-A", 0])
    _same_columns(part, whole, sorted([0, whole.channel("FL1-A").index]))
    assert part.dataset == 1


def test_corpus_is_parametrised() -> None:
    if shared_root() is None:
        pytest.skip(f"{SHARED_ENV} is not set: real-data test skipped")
    assert len(CORPUS) == 88


# ============================================================== reading: built layouts
def _fcs_bytes(text: dict[str, str], data: bytes) -> bytes:
    keywords = dict(text)
    for _ in range(3):
        body = "/" + "".join(f"{k}/{v}/" for k, v in keywords.items())
        t1 = 58 + len(body.encode("latin-1")) - 1
        d0, d1 = t1 + 1, t1 + len(data)
        keywords["$BEGINDATA"], keywords["$ENDDATA"] = str(d0), str(d1)
    header = f"FCS3.1    {58:>8}{t1:>8}{d0:>8}{d1:>8}{0:>8}{0:>8}"
    return header.encode("ascii") + body.encode("latin-1") + data


def _keywords(widths: list[int], ranges: list[int], byteord: str, tot: int,
              types: list[str] | None = None) -> dict[str, str]:
    kw = {"$BYTEORD": byteord, "$DATATYPE": "I", "$MODE": "L", "$NEXTDATA": "0",
          "$PAR": str(len(widths)), "$TOT": str(tot)}
    for i, (w, r) in enumerate(zip(widths, ranges, strict=True), start=1):
        kw.update({f"$P{i}N": f"CH{i}", f"$P{i}B": str(w), f"$P{i}R": str(r), f"$P{i}E": "0,0"})
        if types is not None and types[i - 1] != "I":
            kw[f"$P{i}DATATYPE"] = types[i - 1]
    return kw


def _bit_packed(values: np.ndarray, widths: list[int]) -> bytes:
    """Values packed most significant bit first, no padding between values or events."""
    number, nbits = 0, 0
    for row in values:
        for v, w in zip(row, widths, strict=True):
            number = (number << w) | int(v)
            nbits += w
    pad = -nbits % 8
    return (number << pad).to_bytes((nbits + pad) // 8, "big")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    widths=st.lists(st.sampled_from([3, 7, 10, 12, 16, 20]), min_size=1, max_size=5),
    tot=st.integers(1, 120),
    block_bytes=st.integers(1, 64),
    data=st.data(),
)
def test_bit_packed_columns_block_by_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, widths: list[int], tot: int, block_bytes: int,
    data: st.DataObject,
) -> None:
    # the DATA size tells packed values from values in whole words only when they differ
    word_bytes = tot * sum(8 if w <= 8 else 16 if w <= 16 else 32 for w in widths) // 8
    assume((tot * sum(widths) + 7) // 8 not in (word_bytes, word_bytes + 1))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    stored = np.column_stack([rng.integers(0, 2**w, size=tot, dtype=np.uint64) for w in widths])
    ranges = [2**w for w in widths]
    path = tmp_path / "packed.fcs"
    path.write_bytes(_fcs_bytes(_keywords(widths, ranges, "4,3,2,1", tot), _bit_packed(stored, widths)))
    sel = sorted(data.draw(st.sets(st.integers(0, len(widths) - 1), min_size=1)))
    monkeypatch.setattr(fcs_module, "_BLOCK_BYTES", block_bytes)
    part = read_fcs(path, channels=sel)
    np.testing.assert_array_equal(part.raw.astype(np.uint64), stored[:, sel])
    np.testing.assert_array_equal(read_fcs(path).raw.astype(np.uint64), stored)


def test_mixed_types_24_bit_and_permuted_byte_order(tmp_path: Path, tiny_blocks: None) -> None:
    rng = np.random.default_rng(7)
    tot = 53
    # FCS 3.2 per-parameter types inside integer data, 24-bit big-endian integers
    ints = rng.integers(0, 2**24, size=(tot, 2))
    floats = rng.normal(0, 1e4, tot).astype(np.float32)
    data = b"".join(
        int(a).to_bytes(3, "big") + struct.pack(">f", float(floats[i])) + int(b).to_bytes(3, "big")
        for i, (a, b) in enumerate(ints)
    )
    kw = _keywords([24, 32, 24], [2**24, 262144, 2**24], "4,3,2,1", tot, types=["I", "F", "I"])
    path = tmp_path / "mixed.fcs"
    path.write_bytes(_fcs_bytes(kw, data))
    whole = read_fcs(path)
    np.testing.assert_array_equal(whole.raw, np.column_stack([ints[:, 0], floats, ints[:, 1]]))
    for sel in ([0], [1], [2, 0], [1, 2]):
        _same_columns(read_fcs(path, channels=sel), whole, sorted(sel))
    # $BYTEORD 3,4,1,2: stored byte i holds significance rank order[i]
    order = [3, 4, 1, 2]
    values = rng.integers(0, 2**32, size=(tot, 3), dtype=np.uint64)
    data = b"".join(bytes((int(v) >> (8 * (o - 1))) & 0xFF for o in order) for v in values.ravel())
    path = tmp_path / "perm.fcs"
    path.write_bytes(_fcs_bytes(_keywords([32] * 3, [2**32] * 3, "3,4,1,2", tot), data))
    whole = read_fcs(path)
    np.testing.assert_array_equal(whole.raw, values)
    _same_columns(read_fcs(path, channels=["CH3", "CH1"]), whole, [0, 2])


@pytest.mark.parametrize(("code", "order"), [("f4", "<"), ("f4", ">"), ("f8", ">"), ("u2", ">"), ("u4", "<")])
def test_uniform_layouts_block_by_block(tmp_path: Path, tiny_blocks: None, code: str, order: str) -> None:
    rng = np.random.default_rng(3)
    values = rng.uniform(0, 60000, size=(101, 4)).astype(code)
    datatype = {"f": "F" if code == "f4" else "D", "u": "I"}[code[0]]
    bits = 8 * int(code[1])
    kw = _keywords([bits] * 4, [65536] * 4, "1,2,3,4" if order == "<" else "4,3,2,1", 101)
    kw["$DATATYPE"] = datatype
    path = tmp_path / "uniform.fcs"
    path.write_bytes(_fcs_bytes(kw, values.astype(order + code).tobytes()))
    whole = read_fcs(path)
    np.testing.assert_array_equal(whole.raw, values)
    for sel in ([1], [3, 0], [0, 1, 2, 3]):
        _same_columns(read_fcs(path, channels=sel), whole, sorted(sel))


def _write_float_file(path: Path, n_events: int, names: list[str], seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    return write_fcs(path, rng.lognormal(8, 1, size=(n_events, len(names))).astype(np.float32), names)


def test_channel_selection_arguments(tmp_path: Path) -> None:
    path = _write_float_file(tmp_path / "sel.fcs", 30, ["FSC-A", "SSC-A", "FITC-A", "PE-A"])
    whole = read_fcs(path)
    # one name on its own, a label-insensitive spelling, an index
    assert read_fcs(path, channels="pe-a").channel_names == ["PE-A"]
    assert read_fcs(path, channels=[3, "fsc a"]).channel_names == ["FSC-A", "PE-A"]
    # a function receives every channel and the keywords, but no events
    seen: list[Sample] = []

    def choose(probe: Sample) -> list[str]:
        seen.append(probe)
        return ["SSC-A"]

    part = read_fcs(path, channels=choose)
    assert part.channel_names == ["SSC-A"]
    assert seen[0].n_events == 0
    assert seen[0].channel_names == whole.channel_names
    assert seen[0].keywords == whole.keywords
    # no channel: the events are still counted
    empty = read_fcs(path, channels=[])
    assert empty.raw.shape == (30, 0)
    with pytest.raises(ChannelError, match=r"no channel matches 'APC-A' in .*sel\.fcs; channels are FSC-A"):
        read_fcs(path, channels=["FITC-A", "APC-A"])


# ================================================= same results: block-wise vs whole-array
def test_event_blocks_never_leave_a_small_last_block() -> None:
    for n in (0, 1, 7, _EVENT_BLOCK - 1, _EVENT_BLOCK, _EVENT_BLOCK + 1, 3 * _EVENT_BLOCK + 5):
        blocks = _event_blocks(n)
        assert blocks[0][0] == 0
        assert blocks[-1][1] == n
        assert all(a[1] == b[0] for a, b in itertools.pairwise(blocks))
        sizes = [stop - start for start, stop in blocks]
        assert len(sizes) == 1 or min(sizes) >= _EVENT_BLOCK


def test_blockwise_compensation_equals_one_solve(tmp_path: Path) -> None:
    path = tmp_path / "comp.fcs"
    sim.write_apoptosis_sample(path, sim.ApoptosisSpec(n_events=3 * _EVENT_BLOCK + 12_345), seed=11)
    sample = read_fcs(path)
    comp = Compensation.from_sample(sample)
    ours = comp.apply(sample).events
    reference = np.array(sample.events, dtype=np.float64, copy=True)
    idx = [sample.channel_names.index(c) for c in comp.channels]
    reference[:, idx] = np.linalg.solve(comp.spillover.T, reference[:, idx].T).T
    # The same LAPACK solve on blocks of >= 65,536 events: equal, or at most round-off apart
    # with another BLAS (on the development machine every value is bit-for-bit equal).
    np.testing.assert_allclose(ours, reference, rtol=1e-13, atol=1e-9)
    arrays = comp.apply(np.asarray(sample.events, dtype=float)[:, idx], channels=list(comp.channels))
    np.testing.assert_array_equal(arrays, ours[:, idx])
    # events scaled block by block (integer data) are those scaled all at once
    int_path = tmp_path / "int.fcs"
    sim.write_apoptosis_sample(int_path, sim.ApoptosisSpec(n_events=2 * _EVENT_BLOCK + 3), seed=2,
                               dialect="facscalibur")
    int_sample = read_fcs(int_path)
    rows = np.concatenate([int_sample._event_rows(a, b) for a, b in _event_blocks(int_sample.n_events)])
    np.testing.assert_array_equal(rows, read_fcs(int_path).events)


def test_blockwise_polygon_equals_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    n = 200_003
    x = rng.uniform(-1, 11, n)
    y = rng.uniform(-1, 11, n)
    verts = ((0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (5.0, 4.0), (0.0, 10.0), (2.0, 5.0))
    # events exactly on vertices and edges, and non-finite values
    x[:6], y[:6] = [v[0] for v in verts], [v[1] for v in verts]
    x[6:9], y[6:9] = [np.nan, np.inf, 5.0], [5.0, 5.0, -np.inf]
    band = rng.uniform(0, 10, (96, 2))  # a many-vertex polygon (both code paths of an edge)
    for polygon in (PolygonGate(("x", "y"), verts), PolygonGate(("x", "y"), tuple(map(tuple, band)))):
        blocked = polygon.apply({"x": x, "y": y})
        monkeypatch.setattr(gates_module, "_POLYGON_BLOCK", 1 << 40)
        whole = polygon.apply({"x": x, "y": y})
        monkeypatch.setattr(gates_module, "_POLYGON_BLOCK", 1 << 16)
        np.testing.assert_array_equal(blocked, whole)
        assert 0 < blocked.sum() < n


# --- the previous whole-array implementations, verbatim: the reference for the new ones
def _reference_singlet_mask(area: np.ndarray, other: np.ndarray, *, kind: str = "width",
                            k: float = 3.0) -> np.ndarray:
    a = np.asarray(area, dtype=float)
    o = np.asarray(other, dtype=float)
    if kind == "height":
        with np.errstate(divide="ignore", invalid="ignore"):
            v = np.where(o > 0, a / o, np.inf)
    else:
        v = o
    finite = np.isfinite(a) & np.isfinite(v)
    if finite.sum() < 100:
        return finite
    lo, hi = np.percentile(a[finite], [5, 97])
    core = finite & (a >= lo) & (a <= hi)
    qs = np.quantile(a[core], np.linspace(0, 1, 17))
    mids, meds, weights = [], [], []
    for q0, q1 in itertools.pairwise(qs):
        sel = core & (a >= q0) & (a <= q1)
        if sel.sum() >= 20:
            mids.append(float(np.median(a[sel])))
            meds.append(float(np.median(v[sel])))
            weights.append(math.sqrt(float(sel.sum())))
    if len(mids) >= 2:
        slope, intercept = np.polyfit(mids, meds, 1, w=weights)
    else:
        slope, intercept = 0.0, float(np.median(v[core]))
    resid = v - (intercept + slope * a)
    mad = float(np.median(np.abs(resid[core] - np.median(resid[core]))))
    sigma = 1.4826 * mad if mad > 0 else float(np.std(resid[core])) or 1.0
    return finite & (resid <= k * sigma)


def _reference_debris(fsc: np.ndarray, k: float = 4.0, smooth: float = 0.04) -> tuple[np.ndarray, float]:
    v = np.asarray(fsc, dtype=float)
    finite = np.isfinite(v)
    positive = finite & (v > 0)
    top = float(np.percentile(v[positive], 99.9))
    floor = max(float(np.min(v[positive])), top * 1e-5)
    x = np.log10(np.clip(v[finite], floor, None))
    centres, dens = _log_density(x, bin_width=0.005, smooth=smooth)
    cell = _cell_mode(centres, dens)
    valley = _debris_valley(centres, dens, cell)
    above = x[x > valley] if math.isfinite(valley) else x
    med = float(np.median(above))
    sd = _MAD_TO_SD * float(np.median(np.abs(above - med)))
    guard = med - k * sd
    cut = valley if math.isfinite(valley) and valley <= guard else (
        guard if math.isfinite(valley) else min(guard, med - 1.0))
    threshold = float(10.0**cut)
    return finite & (v >= threshold), threshold


def _reference_singlets(area: np.ndarray, height: np.ndarray, k: float = 4.0,
                        n_vertices: int = 48) -> tuple[np.ndarray, tuple[Any, ...], float]:
    a = np.asarray(area, dtype=float)
    h = np.asarray(height, dtype=float)
    ok = np.isfinite(a) & np.isfinite(h) & (a > 0) & (h > 0)
    la = np.log10(a[ok])
    r = la - np.log10(h[ok])
    order = np.argsort(la)
    la, r = la[order], r[order]
    c0, c1 = float(np.median(r)), 0.0
    sd = _MAD_TO_SD * float(np.median(np.abs(r - c0)))
    for _ in range(3):
        inside = np.abs(r - (c0 + c1 * la)) <= k * max(sd, 1e-6)
        if inside.sum() < _MIN_EVENTS:
            break
        c0, c1 = _binned_line(la[inside], r[inside])
        resid = r[inside] - (c0 + c1 * la[inside])
        sd = _MAD_TO_SD * float(np.median(np.abs(resid - np.median(resid))))
    sd = max(sd, 1e-4)
    a_lo, a_hi = float(a[ok].min()) * 0.999, float(a[ok].max()) * 1.001
    grid = np.geomspace(a_lo, a_hi, max(int(n_vertices), 2))
    ridge = c0 + c1 * np.log10(grid)
    h_low = grid / 10.0 ** (ridge + k * sd)
    h_high = grid / 10.0 ** (ridge - k * sd)
    vertices = [*zip(grid, h_low, strict=True), *zip(grid[::-1], h_high[::-1], strict=True)]
    gate = PolygonGate(("A", "H"), tuple((float(x), float(y)) for x, y in vertices))
    ratio = float(10.0 ** (c0 + c1 * float(np.median(la))))
    return gate.apply({"A": a, "H": h}), gate.vertices, ratio


def _scatter_pairs() -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    events, _ = sim.simulate_apoptosis(sim.ApoptosisSpec(n_events=60_000, debris_fraction=0.2), seed=4)
    yield "simulated", events["FSC-A"].to_numpy(), events["FSC-H"].to_numpy()
    root = shared_root()
    if root is None:
        return
    for name in CORPUS:
        sample = read_fcs(root / "fcs_corpus" / name)
        try:
            area, height = sample.column("FSC-A"), sample.column("FSC-H")
        except ChannelError:
            continue
        if np.count_nonzero((area > 0) & (height > 0)) >= 1000:
            yield name, area, height


def test_pregates_equal_whole_array_reference() -> None:
    checked = 0
    for name, area, height in _scatter_pairs():
        debris = auto_debris_gate(area)
        mask, threshold = _reference_debris(area)
        assert isinstance(debris.gate, RangeGate)
        assert debris.gate.min == threshold, name
        np.testing.assert_array_equal(debris.mask, mask, err_msg=name)
        singlets = auto_singlet_gate(area, height)
        mask, vertices, ratio = _reference_singlets(area, height)
        assert isinstance(singlets.gate, PolygonGate)
        assert singlets.gate.vertices == vertices, name
        assert singlets.details["ratio"] == ratio, name
        np.testing.assert_array_equal(singlets.mask, mask, err_msg=name)
        checked += 1
    assert checked >= (1 if shared_root() is None else 10)


def _dna_pairs() -> Iterator[tuple[str, np.ndarray, np.ndarray, str]]:
    events, _ = sim.simulate_cell_cycle(sim.CellCycleSpec(n_events=50_000), seed=8)
    yield "simulated", events["PI-A"].to_numpy(), events["PI-W"].to_numpy(), "width"
    yield "simulated", events["PI-A"].to_numpy(), events["PI-H"].to_numpy(), "height"
    if shared_root() is None:
        return
    for path in sorted((shared_root() / "dna" / "zenodo_14928071").glob("*.fcs"))[:4]:  # type: ignore[operator]
        sample = read_fcs(path)
        area = np.asarray(sample.column("PI-A"), dtype=float)
        yield path.name, area, sample.column("PI-W"), "width"
        yield path.name, area, sample.column("PI-H"), "height"


def test_doublet_mask_equals_whole_array_reference() -> None:
    for name, area, other, kind in _dna_pairs():
        ours = singlet_mask(area, other, kind=kind)  # type: ignore[arg-type]
        np.testing.assert_array_equal(ours, _reference_singlet_mask(area, other, kind=kind), err_msg=name)


# ============================================ same results: needed channels vs whole file
def _gating(folder: Path, line: str, template: str = "generic_modern") -> ApoptosisGating:
    return ApoptosisGating.prepare(template, **{
        role: read_fcs(folder / f"{line}_{role}.fcs") for role in ("unstained", "annexin_only", "pi_only")
    })


def _same_result(a: Any, b: Any) -> None:
    assert a.to_frame().equals(b.to_frame())
    np.testing.assert_array_equal(a.pregate.cells, b.pregate.cells)
    np.testing.assert_array_equal(a.pregate.singlets, b.pregate.singlets)
    assert dict(a.channels) == dict(b.channels)
    for name in a.channels.values():
        np.testing.assert_array_equal(a.sample.column(name), b.sample.column(name))


def test_apoptosis_on_needed_channels_equals_whole_file(tmp_path: Path) -> None:
    folder = REPO_ROOT / "example_fcs" / "apoptosis"
    gating = _gating(folder, "parental")
    for path in sorted(folder.glob("parental_drug*_r1.fcs")):
        part = read_fcs(path, channels=gating.needed_channels)
        _same_result(gating.analyze(part), gating.analyze(read_fcs(path)))
    # instrument dialects whose files hold channels the analysis does not read
    for dialect, template in (("accuri", "accuri_c6"), ("facscalibur", "facscalibur")):
        for i, role in enumerate(("unstained", "annexin_only", "pi_only")):
            spec = sim.apoptosis_control_spec(role, sim.ApoptosisSpec(n_events=6000))  # type: ignore[arg-type]
            sim.write_apoptosis_sample(tmp_path / f"{dialect}_{role}.fcs", spec, seed=[3, i], dialect=dialect)
        gating = _gating(tmp_path, dialect, template)
        path = tmp_path / f"{dialect}_sample.fcs"
        sim.write_apoptosis_sample(path, sim.ApoptosisSpec(n_events=20_000), seed=6, dialect=dialect)
        whole = read_fcs(path)
        part = read_fcs(path, channels=gating.needed_channels)
        assert part.n_channels < whole.n_channels
        _same_result(gating.analyze(part), gating.analyze(whole))


def test_needed_channels_raise_like_analyze_and_name_every_channel(tmp_path: Path) -> None:
    folder = REPO_ROOT / "example_fcs" / "apoptosis"
    gating = _gating(folder, "parental")
    path = _write_float_file(tmp_path / "nopi.fcs", 200, ["FSC-A", "FSC-H", "SSC-A", "FITC-A", "APC-A"])
    with pytest.raises(ChannelError) as whole:
        gating.analyze(read_fcs(path))
    with pytest.raises(ChannelError) as part:
        read_fcs(path, channels=gating.needed_channels)
    assert str(part.value) == str(whole.value)
    assert "APC-A" in str(part.value)


def test_dna_histogram_on_needed_channels_equals_whole_file(tmp_path: Path) -> None:
    paths = sorted((REPO_ROOT / "example_fcs" / "cellcycle").glob("*_r1.fcs"))[:3]
    for dialect in ("facscalibur", "accuri"):
        path = tmp_path / f"{dialect}.fcs"
        sim.write_cellcycle_sample(path, sim.CellCycleSpec(n_events=20_000), seed=1, dialect=dialect)
        paths.append(path)
    root = shared_root()
    if root is not None:
        paths += sorted((root / "dna" / "zenodo_14928071").glob("*.fcs"))[:2]
    for path in paths:
        whole = read_fcs(path)
        for options in ({}, {"doublets": "height"}, {"doublets": "none"}):
            part = read_fcs(path, channels=lambda s, o=options: dna_channels(s, **o))  # type: ignore[misc]
            assert part.n_channels <= 2 < whole.n_channels
            a, b = dna_histogram(part, **options), dna_histogram(whole, **options)  # type: ignore[arg-type]
            np.testing.assert_array_equal(a.counts, b.counts)
            assert (a.channel, a.doublet_channel, a.events_singlets, a.fit_range) == (
                b.channel, b.doublet_channel, b.events_singlets, b.fit_range)
    with pytest.raises(ChannelError, match=r"channels are FSC-A, SSC-A, PI-A \(PI\), PI-H, PI-W;"):
        read_fcs(paths[0], channels=lambda s: dna_channels(s, doublets="width", doublet_channel="FL9-W"))


# ================================================================== memory bounds
N_EVENTS = 1_000_000


@pytest.fixture(scope="module")
def big_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("huge")
    files = {"apoptosis": folder / "apoptosis.fcs", "cellcycle": folder / "cellcycle.fcs"}
    sim.write_apoptosis_sample(files["apoptosis"], sim.ApoptosisSpec(n_events=N_EVENTS), seed=21)
    sim.write_cellcycle_sample(files["cellcycle"], sim.CellCycleSpec(n_events=N_EVENTS), seed=22)
    for i, role in enumerate(("unstained", "annexin_only", "pi_only")):
        spec = sim.apoptosis_control_spec(role, sim.ApoptosisSpec(n_events=20_000))  # type: ignore[arg-type]
        files[role] = folder / f"{role}.fcs"
        sim.write_apoptosis_sample(files[role], spec, seed=[23, i])
    files["small_cellcycle"] = folder / "small_cellcycle.fcs"
    sim.write_cellcycle_sample(files["small_cellcycle"], sim.CellCycleSpec(n_events=20_000), seed=24)
    return files


def _peak_bytes(run: Callable[[], Any]) -> int:
    """Peak of traced memory above what was allocated before, while ``run`` runs."""
    gc.collect()
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        result = run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del result
    return peak - start


def test_apoptosis_memory_bound(big_files: dict[str, Path]) -> None:
    gating = ApoptosisGating.prepare("generic_modern", **{
        role: read_fcs(big_files[role]) for role in ("unstained", "annexin_only", "pi_only")})
    gating.analyze(read_fcs(big_files["unstained"]))  # warm-up: lazy imports, caches
    path = big_files["apoptosis"]
    n_channels = read_fcs(path, channels=[]).keywords["$PAR"]
    assert n_channels == "5"
    peak = _peak_bytes(lambda: gating.analyze(read_fcs(path, channels=gating.needed_channels)))
    stored = N_EVENTS * 5 * 4  # the sample as read (float32)
    compensated = N_EVENTS * 5 * 8  # the compensated sample the result keeps (float64)
    bound = stored + compensated + 40 * N_EVENTS + 8 * MB  # ApoptosisGating.analyze, Notes
    assert peak <= bound, f"peak {peak / MB:.1f} MB > bound {bound / MB:.1f} MB"


def test_cellcycle_memory_bound(big_files: dict[str, Path]) -> None:
    path = big_files["cellcycle"]
    dna_histogram(read_fcs(big_files["small_cellcycle"], channels=dna_channels))  # warm-up

    def run() -> Any:
        return dna_histogram(read_fcs(path, channels=dna_channels))

    hist = run()
    assert hist.doublet_channel == "PI-W"
    peak = _peak_bytes(run)
    stored = N_EVENTS * 2 * 4  # PI-A and PI-W, float32: all that is read
    bound = stored + 27 * N_EVENTS + 4 * MB  # dna_histogram, Notes
    assert peak <= bound, f"peak {peak / MB:.1f} MB > bound {bound / MB:.1f} MB"


def test_selected_read_never_holds_the_data_segment(big_files: dict[str, Path]) -> None:
    path = big_files["cellcycle"]
    part = read_fcs(path, channels=["PI-A"])
    peak = _peak_bytes(lambda: read_fcs(path, channels=["PI-A"]))
    data_bytes = N_EVENTS * 5 * 4
    assert peak <= part.raw.nbytes + 3 * fcs_module._BLOCK_BYTES + MB
    assert peak < data_bytes / 2
