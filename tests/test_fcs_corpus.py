"""Conformance of our reader on the 90-file real corpus (../shared/data/fcs_corpus).

The expected values (stored values of the first data set, integers masked to $PnR/$PnB)
were written by someone else and cross-checked against fcsparser, FlowCal and flowio.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from cytoflow_res import FCSError, read_fcs, read_header
from tests.conftest import SHARED_ENV, shared_root


def _expected() -> dict[str, dict]:
    root = shared_root()
    if root is None:
        return {}
    path = root / "fcs_corpus" / "expected.json"
    if not path.exists():
        # Parametrisation cannot fail here; the test below reports it.
        return {"<expected.json missing>": {"expect": "missing"}}
    return json.loads(path.read_text())["files"]


EXPECTED = _expected()

# Where we knowingly differ from expected.json, and why.
# 0877408774.B08 (FACSCalibur, FCS 2.0) writes "$P3S\\$P4S\\$P6N\FL1-A\$P6R\1024...": FCS 2.0
# empty values for $P3S and $P4S. fcsparser and flowio (the reference for expected.json) read
# the doubled delimiters as escapes, fold "$P3S\$P4S\$P6N" into one key and lose $P6N, so they
# name channel 6 "P6". flowCore reads it as we do (its emptyValue=TRUE default), and $PAR = 8
# with $P6R/$P6B/$P6E present says channel 6 exists and is FL1-A.
NAME_CORRECTIONS: dict[str, dict[int, tuple[str, str]]] = {
    "flowCore__inst__extdata__0877408774.B08": {5: ("P6", "FL1-A")},
}


def _expected_names(name: str) -> list[str]:
    names = list(EXPECTED[name]["pnn"])
    for index, (theirs, ours) in NAME_CORRECTIONS.get(name, {}).items():
        assert names[index] == theirs, "expected.json changed: revisit NAME_CORRECTIONS"
        names[index] = ours
    return names
READABLE = sorted(k for k, v in EXPECTED.items() if v.get("expect") == "read")
ERRORS = sorted(k for k, v in EXPECTED.items() if v.get("expect") == "error")


def _file(name: str) -> Path:
    root = shared_root()
    if root is None:
        pytest.skip(f"{SHARED_ENV} is not set: real-data test skipped")
    path = root / "fcs_corpus" / name
    if not path.exists():
        pytest.fail(f"corpus file missing: {path}")
    return path


def test_corpus_present() -> None:
    root = shared_root()
    if root is None:
        pytest.skip(f"{SHARED_ENV} is not set: real-data test skipped")
    assert "<expected.json missing>" not in EXPECTED, f"{root}/fcs_corpus/expected.json is missing"
    assert len(READABLE) == 88
    assert len(ERRORS) == 2


@pytest.mark.shared
@pytest.mark.parametrize("name", READABLE or ["<no corpus>"])
def test_reads_like_expected(name: str) -> None:
    if name == "<no corpus>":
        pytest.skip(f"{SHARED_ENV} is not set: real-data test skipped")
    exp = EXPECTED[name]
    sample = read_fcs(_file(name))
    assert sample.n_events == exp["n_events"]
    assert sample.n_channels == exp["n_channels"]
    assert sample.channel_names == _expected_names(name)
    raw = sample.raw
    if sample.datatype == "I":
        # integers are kept exact as integers, never passed through float32
        assert raw.dtype.kind == "u"
    sums = raw.astype(np.float64).sum(axis=0)
    np.testing.assert_allclose(sums, exp["column_sums"], rtol=1e-9, atol=0)
    np.testing.assert_array_equal(raw[0].astype(np.float64), np.asarray(exp["first_row"]))
    np.testing.assert_array_equal(raw[-1].astype(np.float64), np.asarray(exp["last_row"]))


@pytest.mark.shared
@pytest.mark.parametrize("name", READABLE or ["<no corpus>"])
def test_header_agrees_with_data(name: str) -> None:
    if name == "<no corpus>":
        pytest.skip(f"{SHARED_ENV} is not set: real-data test skipped")
    header = read_header(_file(name))
    assert header.n_channels == EXPECTED[name]["n_channels"]
    assert header.channel_names == _expected_names(name)


@pytest.mark.shared
@pytest.mark.parametrize("name", ERRORS or ["<no corpus>"])
def test_bad_files_raise_clear_error(name: str) -> None:
    if name == "<no corpus>":
        pytest.skip(f"{SHARED_ENV} is not set: real-data test skipped")
    path = _file(name)
    with pytest.raises(FCSError, match=re.escape(str(path))) as info:
        read_fcs(path)
    message = str(info.value)
    # names the problem in words a user can act on
    assert re.search(r"not an FCS file|truncated|missing|DATA", message), message


@pytest.mark.shared
def test_two_data_sets_in_beckman_lmd() -> None:
    path = _file("cytoflow__cytoflow__tests__data__instruments__Beckman_Coulter_-_Gallios.LMD")
    first = read_fcs(path)
    second = read_fcs(path, dataset=1)
    assert first.version == "FCS2.0"
    assert second.version.startswith("FCS3")
    assert first.n_events == second.n_events == 26383
    assert "FL1 INT LOG" in first.channel_names
    assert "FL1-A" in second.channel_names
    # the second data set holds 32-bit integers, the first 16-bit words
    assert second.raw.max() > 65535
    with pytest.raises(FCSError, match="holds only 2 data set"):
        read_fcs(path, dataset=2)


@pytest.mark.shared
def test_ten_bit_words_and_log_decoding() -> None:
    # 10-bit values stored in 16-bit words; fcsparser/FlowCal split the bytes (max 255)
    s = read_fcs(_file("cytoflow__cytoflow__tests__data__instruments__Beckman_Coulter_-_Cytomics_FC500.LMD"))
    assert s.raw.max() > 255
    assert s.raw.max() <= 1023
    # a 4-decade log FACSCalibur file decodes into 1..10^4
    cal = read_fcs(_file("FlowIO__data__fcs_files__data1.fcs"))
    fl1 = cal.channel("FL1-H")
    assert fl1.is_log and fl1.log_decades == 4
    values = cal.column("FL1-H")
    np.testing.assert_allclose(values, 10 ** (4 * cal.column("FL1-H", raw=True) / 1024.0))
    assert values.min() >= 1.0
    assert values.max() <= 1e4


@pytest.mark.shared
def test_float_channels_never_log_decoded() -> None:
    # itn_02 declares $PnE on float data; flowio decodes it anyway, we must not
    s = read_fcs(_file("cytoflow__cytoflow__tests__data__module_examples__itn_02.fcs"))
    assert s.datatype == "F"
    assert all(not ch.is_log for ch in s.channels)
    np.testing.assert_array_equal(s.events[:, 2], s.raw[:, 2])


@pytest.mark.shared
def test_every_readable_file_has_finite_scaled_events() -> None:
    for name in READABLE:
        s = read_fcs(_file(name))
        ev = s.events
        assert ev.shape == s.raw.shape
        assert not np.isinf(ev).any(), name


@pytest.mark.shared
def test_spillover_keywords_parse() -> None:
    root = shared_root()
    if root is None:
        pytest.skip(f"{SHARED_ENV} is not set: real-data test skipped")
    manifest = (root / "fcs_corpus" / "MANIFEST.tsv").read_text().splitlines()
    cols = manifest[0].split("\t")
    spill_col = cols.index("$SPILLOVER?")
    with_spill = [line.split("\t")[0] for line in manifest[1:] if line.split("\t")[spill_col] == "Y"]
    with_spill = [n for n in with_spill if n in READABLE]
    assert len(with_spill) > 20
    parsed = 0
    malformed = []
    for name in with_spill:
        s = read_fcs(_file(name))
        try:
            spill = s.spillover
        except FCSError as exc:
            # e.g. a MACSQuant $SPILLOVER that lists names but no coefficients
            assert "not a spillover matrix" in str(exc)
            assert name in str(exc)
            malformed.append(name)
            continue
        assert spill is not None
        parsed += 1
        n = len(spill.channels)
        assert spill.matrix.shape == (n, n)
        np.testing.assert_allclose(np.diag(spill.matrix), 1.0, atol=1e-6)
    # the only malformed ones are MACSQuant 3.1 exports whose $SPILLOVER lists names only
    assert all("MiltenyiBiotec__FCS3.1" in n for n in malformed), malformed
    assert parsed == len(with_spill) - len(malformed) >= 35
    assert os.environ.get(SHARED_ENV)
