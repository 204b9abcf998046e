"""The peer readers' own test assertions, replayed against our reader.

fcsparser (eyurtsev/fcsparser) and FlowIO (whitews/FlowIO) ship test suites that pin
values for files we also keep in the shared corpus. Each test below restates one of
those assertions as a fact about the file and checks it against :func:`read_fcs`.
The numbers were taken from the peers' test files (cited above each case) and
re-checked against the file bytes; no peer code is used.

Which of our arrays a peer value is compared with follows from what the peer returns:

* fcsparser ``parse()`` returns stored values (no ``$PnG`` division), so float files
  compare with ``Sample.raw``. The open upstream PR eyurtsev/fcsparser#78 adds ``$PnE``
  decoding of integer channels (``pne_scaling``); the expectations it rewrote (Cytek xP5,
  the fake bitmask file) are log-decoded on the log channels, which therefore compare with
  ``Sample.events``; its linear channels stay stored values (gain ignored).
* FlowIO ``FlowData.events`` / ``as_array(preprocess=False)`` are stored, masked values:
  ``Sample.raw``.

Constants written as float32 reprs (8-9 significant digits) are compared with a relative
tolerance of 1e-6, a few float32 ulps. The peers' own ``decimal=4`` (absolute 1.5e-4)
checks nothing on values like 1.26e-05 and is below float32 resolution near 1e4.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from cytoflow_res import FCSError, read_fcs, read_header

pytestmark = pytest.mark.shared

SHARED_ENV = "CYTOFLOW_RES_SHARED_DATA"
FLOAT32_RTOL = 1e-6

FCSPARSER = "fcsparser__fcsparser__tests__data__FlowCytometers__"
FLOWIO = "FlowIO__data__fcs_files__"

MQ_20 = (
    FCSPARSER
    + "MiltenyiBiotec__FCS2.0__EY_2013-07-19_PBS_FCS_2.0_Custom_Without_Add_Well_A1.001.fcs"
)
MQ_30 = FCSPARSER + "MiltenyiBiotec__FCS3.0__FCS3.0_Custom_Compatible.fcs"
MQ_31 = FCSPARSER + "MiltenyiBiotec__FCS3.1__EY_2013-07-19_PBS_FCS_3.1_Well_A1.001.fcs"
MQ_DUPLICATE = FCSPARSER + "MiltenyiBiotec__FCS3.1__SG_2014-09-26_Duplicate_Names.fcs"
LSR_II = FCSPARSER + "HTS_BD_LSR-II__HTS_BD_LSR_II_Mixed_Specimen_001_D6_D06.fcs"
FORTESSA = FCSPARSER + "Fortessa__FCS_3.0_Fortessa_PBS_Specimen_001_A1_A01.fcs"
FAKE_LARGE = FCSPARSER + "fake_large_fcs__fake_large_fcs.fcs"
FAKE_BITMASK = FCSPARSER + "fake_bitmask_error__fcs1_cleaned.lmd"
CYTEK_XP5 = FCSPARSER + "Cytek_xP5__Cytek_xP5.fcs"
CYFLOW_CUBE_8 = FCSPARSER + "cyflow_cube_8__cyflow_cube_8.fcs"
GUAVA_MUSE = FCSPARSER + "GuavaMuse__Guava_Muse.fcs"
FACS_DIVA = FCSPARSER + "FACS_Diva__facs_diva_test.fcs"
NL2000_HEADER_ONLY = FCSPARSER + "cytek-nl-2000__sample_header.fcs"

VAR_INT = FLOWIO + "variable_int_example.fcs"
START_DISCREPANCY = FLOWIO + "data_start_offset_discrepancy_example.fcs"
STOP_DISCREPANCY = FLOWIO + "data_stop_offset_discrepancy_example.fcs"
FACSCAN_3FITC = FLOWIO + "3FITC_4PE_004.fcs"
COULTER_LMD = FLOWIO + "coulter.lmd"
ATTUNE_G11 = FLOWIO + "G11.fcs"


def corpus_file(name: str) -> Path:
    """Path of one corpus file; skip without the shared data, fail if it is missing."""
    root = os.environ.get(SHARED_ENV)
    if not root:
        pytest.skip(f"{SHARED_ENV} is not set (needs the shared FCS corpus)")
    path = Path(root) / "fcs_corpus" / name
    if not path.is_file():
        pytest.fail(f"{SHARED_ENV}={root} is set but the corpus file {path} is missing")
    return path


def _header_data_offsets(path: Path) -> tuple[int, int]:
    """DATA (start, end) as written in the 58-byte HEADER of the first data set."""
    head = path.read_bytes()[:58]
    return int(head[26:34]), int(head[34:42])


# ----------------------------------------------------------------------------------------
# fcsparser: first rows of float files, stored values (Sample.raw)
# ----------------------------------------------------------------------------------------

MQ_20_FIRST_4 = [
    [1.60764902830123901367e-03, 1.46554875373840332031e+00, 2.03116130828857421875e+00,
     3.60766235351562500000e+02, 1.57965099811553955078e+00, 1.90790867805480957031e+00,
     4.13974487304687500000e+02, -3.39318931102752685547e-01, 7.84086048603057861328e-01,
     -2.16378631591796875000e+02, 2.23477900028228759766e-01, 5.51754534244537353516e-01,
     2.02515670776367187500e+02, -2.45075762271881103516e-01, 7.51648128032684326172e-01,
     -1.64115936279296875000e+02],
    [1.73421576619148254395e-03, 2.02872133255004882812e+00, 1.45744156837463378906e+00,
     6.95987243652343750000e+02, 2.53075432777404785156e+00, 2.87364006042480468750e+00,
     4.40339477539062500000e+02, -4.55530643463134765625e-01, 5.64715683460235595703e-01,
     -4.03327392578125000000e+02, 4.40459489822387695312e-01, 6.26768946647644042969e-01,
     3.51373107910156250000e+02, 9.75054726004600524902e-02, 8.04706454277038574219e-01,
     5.41634635925292968750e+01],
    [2.33519822359085083008e-03, 1.64427363872528076172e+00, 1.39029204845428466797e+00,
     5.91341064453125000000e+02, 3.27396273612976074219e+00, 3.31171727180480957031e+00,
     4.94299865722656250000e+02, 6.40093326568603515625e-01, 8.14603626728057861328e-01,
     3.92886383056640625000e+02, -5.28994854539632797241e-03, 2.77096331119537353516e-01,
     -9.54532432556152343750e+00, 9.36367154121398925781e-01, 1.11724865436553955078e+00,
     4.18674407958984375000e+02],
    [3.37790674529969692230e-03, 1.01516211032867431641e+00, 1.84805572032928466797e+00,
     2.74656768798828125000e+02, 1.72263097763061523438e+00, 1.75532078742980957031e+00,
     4.90688354492187500000e+02, -2.24935024976730346680e-01, 6.62015736103057861328e-01,
     -1.69886459350585937500e+02, 5.19020110368728637695e-02, 3.99166643619537353516e-01,
     6.50129623413085937500e+01, 3.03109139204025268555e-01, 8.76159846782684326172e-01,
     1.67871810913085937500e+02],
]

MQ_30_FIRST_4 = [
    [4.99655876159667968750e+01, -1.78884857177734375000e+02, 3.53545867919921875000e+02,
     -6.63189687500000000000e+04, 1.53373974609375000000e+03, 1.71934411621093750000e+03,
     1.16922687500000000000e+05, -1.85308218002319335938e+00, 1.55241485595703125000e+02,
     -1.56457653808593750000e+03, 7.68178787231445312500e+01, 1.61987319946289062500e+02,
     6.21571679687500000000e+04, 3.74284629821777343750e+01, 1.23476585388183593750e+02,
     3.87178945312500000000e+04],
    [7.65274276733398437500e+01, 8.52657958984375000000e+02, 8.35975280761718750000e+02,
     1.33687671875000000000e+05, 2.55060937500000000000e+03, 2.26837988281250000000e+03,
     1.47379843750000000000e+05, 4.53825866699218750000e+02, 4.73883544921875000000e+02,
     1.25524226562500000000e+05, -8.64693832397460937500e+00, 9.53993377685546875000e+01,
     -1.18802871093750000000e+04, 8.17031021118164062500e+01, 2.03511352539062500000e+02,
     5.58651601562500000000e+04],
    [8.48738250732421875000e+01, 1.49076705932617187500e+02, 2.49545867919921875000e+02,
     7.83013671875000000000e+04, 6.49180541992187500000e+02, 5.83344177246093750000e+02,
     1.45864812500000000000e+05, 1.76183197021484375000e+02, 2.59241485595703125000e+02,
     8.90778906250000000000e+04, 1.03054801940917968750e+02, 1.69987319946289062500e+02,
     7.94623906250000000000e+04, -6.35836944580078125000e+01, 1.13396583557128906250e+02,
     -6.63863593750000000000e+04],
    [1.02074172973632812500e+02, 1.37832305908203125000e+02, 3.85545867919921875000e+02,
     4.68581250000000000000e+04, 1.88981237792968750000e+03, 1.81534411621093750000e+03,
     1.36448781250000000000e+05, 3.93574859619140625000e+02, 4.83241485595703125000e+02,
     1.06751273437500000000e+05, 6.74475479125976562500e+01, 1.77987319946289062500e+02,
     4.96691835937500000000e+04, -3.04502067565917968750e+01, 2.20916580200195312500e+02,
     -1.28346718750000000000e+04],
]

LSR_II_FIRST_4 = [
    [-2.85312500000000000000e+04, 1.00000000000000000000e+01, 0.00000000000000000000e+00,
     7.00149963378906250000e+02, 1.65600000000000000000e+03, 2.77083515625000000000e+04,
     9.87999954223632812500e+01, 5.41499977111816406250e+01, 1.64220001220703125000e+02,
     1.20360000610351562500e+02, 2.00000002980232238770e-01],
    [-4.94148789062500000000e+04, 8.00000000000000000000e+00, 0.00000000000000000000e+00,
     1.27584997558593750000e+03, 2.27800000000000000000e+03, 3.67050507812500000000e+04,
     1.55800003051757812500e+02, 1.33000001907348632812e+01, 1.61840011596679687500e+02,
     9.48600006103515625000e+01, 4.00000005960464477539e-01],
    [-5.86843203125000000000e+04, 1.40000000000000000000e+01, 0.00000000000000000000e+00,
     -5.12049987792968750000e+02, 4.72000000000000000000e+02, 0.00000000000000000000e+00,
     2.27999992370605468750e+01, 8.55000019073486328125e+00, 1.72550003051757812500e+02,
     8.56800003051757812500e+01, 5.00000000000000000000e-01],
    [-3.85783984375000000000e+03, 4.32000000000000000000e+02, 0.00000000000000000000e+00,
     2.76449981689453125000e+02, 1.33900000000000000000e+03, 1.35305644531250000000e+04,
     -4.93999977111816406250e+01, 3.42000007629394531250e+01, 1.57080001831054687500e+02,
     8.97599945068359375000e+01, 6.99999988079071044922e-01],
]

FORTESSA_FIRST_4 = [
    [1.31284997558593750000e+03, 5.60000000000000000000e+02, 1.53640968750000000000e+05,
     1.47263989257812500000e+03, 1.42400000000000000000e+03, 6.77745312500000000000e+04,
     1.79399986267089843750e+01, 8.57999992370605468750e+00, 1.37059997558593750000e+02,
     -3.67200012207031250000e+01, 0.00000000000000000000e+00],
    [9.15529968261718750000e+02, 2.97000000000000000000e+02, 2.02020781250000000000e+05,
     3.24479980468750000000e+02, 3.49000000000000000000e+02, 6.09315781250000000000e+04,
     2.33999996185302734375e+01, 7.79999971389770507812e+00, 1.65550003051757812500e+02,
     2.01599998474121093750e+01, 0.00000000000000000000e+00],
    [2.27150000000000000000e+03, 5.49000000000000000000e+02, 2.62143000000000000000e+05,
     8.54099975585937500000e+02, 8.65000000000000000000e+02, 6.47101640625000000000e+04,
     2.49599990844726562500e+01, 2.65199985504150390625e+01, 5.77500000000000000000e+01,
     1.36800003051757812500e+01, 1.00000001490116119385e-01],
    [2.33232983398437500000e+03, 5.83000000000000000000e+02, 2.62143000000000000000e+05,
     6.24000000000000000000e+02, 6.27000000000000000000e+02, 6.52224296875000000000e+04,
     2.49599990844726562500e+01, 4.91399993896484375000e+01, 7.23799972534179687500e+01,
     -1.29600009918212890625e+01, 1.00000001490116119385e-01],
]

# The same events as the Fortessa file, written by the peer as float32 constants.
FAKE_LARGE_FIRST_4 = [
    [1.31284998e+03, 5.60000000e+02, 1.53640969e+05, 1.47263989e+03, 1.42400000e+03,
     6.77745312e+04, 1.79399986e+01, 8.57999992e+00, 1.37059998e+02, -3.67200012e+01,
     0.00000000e+00],
    [9.15529968e+02, 2.97000000e+02, 2.02020781e+05, 3.24479980e+02, 3.49000000e+02,
     6.09315781e+04, 2.33999996e+01, 7.79999971e+00, 1.65550003e+02, 2.01599998e+01,
     0.00000000e+00],
    [2.27150000e+03, 5.49000000e+02, 2.62143000e+05, 8.54099976e+02, 8.65000000e+02,
     6.47101641e+04, 2.49599991e+01, 2.65199986e+01, 5.77500000e+01, 1.36800003e+01,
     1.00000001e-01],
    [2.33232983e+03, 5.83000000e+02, 2.62143000e+05, 6.24000000e+02, 6.27000000e+02,
     6.52224297e+04, 2.49599991e+01, 4.91399994e+01, 7.23799973e+01, -1.29600010e+01,
     1.00000001e-01],
]

MQ_31_FIRST_2 = [
    [1.2572854e-05, 3.3333333e-04, 3.3333333e-04, 8.3999999e-02, 6.2567286e-02,
     2.0574589e+00, 1.5204989e+01, 2.6814053e+00, 3.0260124e+00, 4.4305920e+02,
     2.6206520e-01, 1.0939966e+00, 1.1977422e+02, 2.3151575e-01, 5.0724781e-01,
     2.2820773e+02, -4.5996591e-01, 3.7070319e-01, -5.7914429e+02],
    [4.7575682e-03, 6.6666666e-04, 6.6666666e-04, 8.3999999e-02, 1.6067501e+00,
     2.2405643e+00, 3.5855927e+02, 1.9021651e+00, 1.9273795e+00, 4.9345886e+02,
     1.3695779e-01, 8.0407977e-01, 8.5164307e+01, 5.2790873e-02, 5.0724781e-01,
     5.2036572e+01, 5.7199156e-01, 6.8167728e-01, 4.1184045e+02],
]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # eyurtsev/fcsparser fcsparser/tests/test_fcs_reader.py, test_mq_FCS_2_0_data_segment:
        # first 4 rows, |diff| < 1e-8.
        pytest.param(MQ_20, MQ_20_FIRST_4, id="fcsparser-macsquant-fcs2.0-first4"),
        # same file, test_mq_FCS_3_0_data_segment (and test_reading_in_memory_fcs_file).
        pytest.param(MQ_30, MQ_30_FIRST_4, id="fcsparser-macsquant-fcs3.0-first4"),
        # same file, test_BD_LSR_II. Column 11 (Time) has $P11G 0.01: the peer's numbers
        # are the stored values, not value / gain.
        pytest.param(LSR_II, LSR_II_FIRST_4, id="fcsparser-lsr-ii-first4"),
        # same file, test_Fortessa_data_segment (Time has $P11G 0.01 as above).
        pytest.param(FORTESSA, FORTESSA_FIRST_4, id="fcsparser-fortessa-first4"),
    ],
)
def test_fcsparser_first_rows_exact(name: str, expected: list[list[float]]) -> None:
    sample = read_fcs(corpus_file(name))
    want = np.array(expected, dtype=np.float64)
    got = np.asarray(sample.raw[: want.shape[0]], dtype=np.float64)
    assert got.shape == want.shape
    # The peer allows 1e-8; its 20-digit constants are the stored float32 values exactly.
    np.testing.assert_array_equal(got, want)


def test_fcsparser_fake_large_file_first_rows() -> None:
    # eyurtsev/fcsparser fcsparser/tests/test_fcs_reader.py, test_reading_large_fcs_file:
    # first 4 rows as a float32 array, |diff| < 1e-8, i.e. equal as float32.
    sample = read_fcs(corpus_file(FAKE_LARGE))
    want = np.array(FAKE_LARGE_FIRST_4, dtype=np.float32)
    np.testing.assert_array_equal(sample.raw[:4], want)


def test_fcsparser_macsquant_fcs31_first_rows() -> None:
    # fcsparser/tests/test_fcs_reader.py, test_mq_FCS_3_1_data_segment: first 2 rows,
    # decimal=4. Upstream eyurtsev/fcsparser (stored version 396524ed) only parses this
    # file; the numbers are in the version carried by the fork hema-to/fcsparser
    # (42fe253f, 0ec7728d). Float data, all $PnG 1: stored values.
    sample = read_fcs(corpus_file(MQ_31))
    want = np.array(MQ_31_FIRST_2, dtype=np.float64)
    np.testing.assert_allclose(sample.raw[:2], want, rtol=FLOAT32_RTOL, atol=0)


# ----------------------------------------------------------------------------------------
# fcsparser: integer files (24-bit, bit-masked, mixed widths)
# ----------------------------------------------------------------------------------------

# Cytek xP5, 8 x 24-bit big-endian integers; TIME/FSC/SSC linear, FL1-FL5 $PnE 4.0,1.0 and
# $PnR 1024; all $PnG 1.0.
CYTEK_XP5_FIRST_2_SCALED = [
    [0.00000000e+00, 2.86000000e+02, 1.64000000e+02, 3.99542046e+00, 1.62531483e+00,
     6.85389557e+01, 9.91045898e+03, 1.01815173e+03],
    [0.00000000e+00, 1.71000000e+02, 1.28000000e+02, 3.95964503e+00, 5.98885441e+00,
     2.26708984e+00, 6.67142725e+00, 1.11397386e+00],
]


def test_fcsparser_cytek_xp5_24bit_first_rows() -> None:
    # fcsparser/tests/test_fcs_reader.py, test_cytek_x_p5_data_segment ("3-byte-wide DATA
    # segment"), first 2 rows, float32, decimal=4. The test came with eyurtsev/fcsparser
    # PR #32; these log-decoded numbers are the PR #78 ($PnE rescaling) version, as carried
    # by hema-to/fcsparser (42fe253f). Stored values are 0 286 164 154 54 470 1023 770 /
    # 0 171 128 153 199 91 211 12, and 10**(4*x/1024) gives the rest: compare with events.
    sample = read_fcs(corpus_file(CYTEK_XP5))
    assert sample.raw.shape == (23126, 8)
    want = np.array(CYTEK_XP5_FIRST_2_SCALED, dtype=np.float64)
    # decimal=4 would fail at [0, 6]: the peer constant is float32 (9910.45898), the exact
    # value 9910.45856, and a float32 ulp there is 9.8e-4.
    np.testing.assert_allclose(sample.events[:2], want, rtol=FLOAT32_RTOL, atol=0)
    np.testing.assert_array_equal(sample.raw[:2, :3], want[:, :3])


def test_fcsparser_fake_bitmask_raw() -> None:
    # eyurtsev/fcsparser fcsparser/tests/test_fcs_reader.py (stored version 396524ed),
    # test_reading_bitmask_error: first 4 rows all 528. Stored 16-bit words are 0x4210;
    # $PnR 1024 masks them to 0x210 = 528.
    sample = read_fcs(corpus_file(FAKE_BITMASK))
    np.testing.assert_array_equal(sample.raw[:4], np.full((4, 7), 528))


def test_fcsparser_fake_bitmask_log_channels_scaled() -> None:
    # Same test as rewritten by PR #78 (hema-to/fcsparser 42fe253f): rows are
    # [528, 528, 11.824966 x 5]. Channels 3-7 have $PnE " 4.0,0.1024" (leading space):
    # 10**(4*528/1024) * 0.1024. Channels 1-2 are linear with $PnG 2.0 and 10.0, which
    # fcsparser ignores, so its 528 is the stored value.
    sample = read_fcs(corpus_file(FAKE_BITMASK))
    np.testing.assert_array_equal(sample.raw[:4, :2], np.full((4, 2), 528))
    np.testing.assert_allclose(
        sample.events[:4, 2:], np.full((4, 5), 11.824966), rtol=FLOAT32_RTOL, atol=0
    )


def test_fcsparser_cyflow_cube_8_mixed_widths() -> None:
    # fcsparser/tests/test_fcs_reader.py, TestMultiDtypeParsing.test_parsed_into_dataframe_
    # correctly (hema-to/fcsparser 42fe253f): shape (725, 10) and the first 2 rows exactly.
    # Widths are 8 x 16, 32, 8 bits, all $PnE 0,0: stored values.
    sample = read_fcs(corpus_file(CYFLOW_CUBE_8))
    assert sample.raw.shape == (725, 10)
    np.testing.assert_array_equal(
        sample.raw[:2],
        [[8, 7, 15, 15, 5, 8, 7, 6, 23, 0], [6, 7, 13, 14, 6, 9, 10, 4, 23, 0]],
    )


# ----------------------------------------------------------------------------------------
# fcsparser: TEXT keywords and channel names
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "keyword", "value"),
    [
        # eyurtsev/fcsparser fcsparser/tests/test_fcs_reader.py, test_mq_FCS_2_0_text_segment
        pytest.param(
            MQ_20, "$FIL", "EY_2013-07-19_PBS_FCS_2.0_Custom_Without_Add_Well_A1.001.fcs",
            id="fcsparser-macsquant-fcs2.0-FIL",
        ),
        pytest.param(MQ_20, "$CYT", "MACSQuant", id="fcsparser-macsquant-fcs2.0-CYT"),
        # same file, test_mq_FCS_3_0_text_segment
        pytest.param(
            MQ_30, "$FIL", "EY_2013-07-19_PID_101_MG1655_Transformants_D01_Well_A4.001.fcs",
            id="fcsparser-macsquant-fcs3.0-FIL",
        ),
        pytest.param(MQ_30, "$CYT", "MACSQuant", id="fcsparser-macsquant-fcs3.0-CYT"),
        # same file, test_mq_FCS_3_1_text_segment
        pytest.param(MQ_31, "$CYT", "MACSQuant", id="fcsparser-macsquant-fcs3.1-CYT"),
    ],
)
def test_fcsparser_text_keywords(name: str, keyword: str, value: str) -> None:
    sample = read_fcs(corpus_file(name))
    assert sample.keywords[keyword] == value


MQ_31_PNN = [
    "Time", "HDR-CE", "HDR-SE", "HDR-V", "FSC-A", "FSC-H", "FSC-W", "SSC-A", "SSC-H", "SSC-W",
    "FL2-A", "FL2-H", "FL2-W", "FL4-A", "FL4-H", "FL4-W", "FL7-A", "FL7-H", "FL7-W",
]
MQ_31_PNS = [
    "HDR-T", "HDR-CE", "HDR-SE", "HDR-V", "FSC-A", "FSC-H", "FSC-W", "SSC-A", "SSC-H", "SSC-W",
    "V2-A", "V2-H", "V2-W", "Y2-A", "Y2-H", "Y2-W", "B1-A", "B1-H", "B1-W",
]
FACS_DIVA_PNN = [
    "Time", "FSC-A", "FSC-W", "SSC-A", "FITC-A", "PE-A", "PerCP-A", "PE-Cy7-A",
    "PacificBlue-A", "APC-A", "Alexa700-A", "APC-Cy7-A",
]
# fcsparser falls back to $PnN where $PnS is absent (channels 1-4 and 12 here).
FACS_DIVA_PNS_OR_PNN = [
    "Time", "FSC-A", "FSC-W", "SSC-A", "CD20", "CD10", "CD45", "CD34", "Syto 41", "CD19",
    "CD38", "APC-Cy7-A",
]
DUPLICATE_NAMES_PNN = [
    "HDR-CE", "HDR-SE", "HDR-V", "FSC-A", "FSC-H", "SSC-A", "SSC-H", "FL7-A", "FL7-H",
]


@pytest.mark.parametrize(
    ("name", "pnn", "pns_or_pnn"),
    [
        # eyurtsev/fcsparser fcsparser/tests/test_fcs_reader.py, test_channel_naming_manual
        # ($PnN and $PnS lists).
        pytest.param(MQ_31, MQ_31_PNN, MQ_31_PNS, id="fcsparser-macsquant-fcs3.1-names"),
        # hema-to/fcsparser 42fe253f fcsparser/tests/test_fcs_reader.py,
        # test_channel_namming_FACS_Diva ($PnN list; $PnS list with $PnN fallback).
        pytest.param(
            FACS_DIVA, FACS_DIVA_PNN, FACS_DIVA_PNS_OR_PNN, id="fcsparser-facs-diva-names"
        ),
        # eyurtsev/fcsparser (stored version 0641fd93), test_channel_naming_automatic_
        # correction: the names it settles on are the $PnN list. Its premise (duplicate
        # $PnS, one warning) came from not unescaping '//': $P8S/$P9S are 'GFP/FITC-A' and
        # 'GFP/FITC-H', so the decoded labels are unique; only $PnN is asserted here.
        pytest.param(MQ_DUPLICATE, DUPLICATE_NAMES_PNN, None, id="fcsparser-duplicate-names-pnn"),
    ],
)
def test_fcsparser_channel_names(name: str, pnn: list[str], pns_or_pnn: list[str] | None) -> None:
    sample = read_fcs(corpus_file(name))
    assert sample.channel_names == pnn
    if pns_or_pnn is not None:
        pairs = zip(sample.channel_labels, pnn, strict=True)
        labels = [label or pnn_name for label, pnn_name in pairs]
        assert labels == pns_or_pnn


# ----------------------------------------------------------------------------------------
# fcsparser: several data sets in one file (Guava Muse), header-only file (Cytek NL-2000)
# ----------------------------------------------------------------------------------------

GUAVA_FIRST_ROWS = [
    [4.8193130e+02, 7.5000000e+00, 8.4225601e+01, 7.5000000e+00, 3.9587415e+02,
     7.5000000e+00, 3.5964000e+04, 2.6829851e+00, 1.9254441e+00, 2.5975571e+00],
    [59.691692, 2.0, 13.230962, 2.0, 258.7247, 2.0, 0.0, 1.7759138, 1.1215914, 2.412838],
    [3.0277637e+02, 4.3000000e+01, 3.6813263e+02, 4.3000000e+01, 5.3055557e+03,
     4.3000000e+01, 3.5000000e+01, 2.4811220e+00, 2.5660043e+00, 3.7247310e+00],
    [146.52184, 1.75, 13.888326, 1.75, 231.7306, 1.75, 13.0, 2.1659024, 1.1426499, 2.3649833],
]
# Absolute (TEXT start, TEXT end, DATA start, DATA end) of each data set.
GUAVA_OFFSETS = [
    (58, 3445, 3446, 7765),
    (7824, 11102, 11103, 2014342),
    (2014401, 2017683, 2017684, 6477523),
    (6477582, 6480857, 6480858, 8482337),
]


@pytest.mark.parametrize("dataset", [0, 1, 2, 3], ids=lambda d: f"fcsparser-guava-muse-dataset{d}")
def test_fcsparser_guava_muse_datasets(dataset: int) -> None:
    # hema-to/fcsparser 42fe253f fcsparser/tests/test_fcs_reader.py,
    # test_multipleTubesGiven_allTubesReadable: first row of each of the 4 data sets
    # (decimal=4 for data set 0, default decimal=6 otherwise) and each data set's HEADER
    # offsets. Float data with $PnG 2.95/18.22/117.38 that fcsparser ignores: stored values.
    # The peer's analysis offsets (0 + $NEXTDATA base) are its own artefact, not checked.
    path = corpus_file(GUAVA_MUSE)
    sample = read_fcs(path, dataset=dataset)
    np.testing.assert_allclose(
        sample.raw[0], GUAVA_FIRST_ROWS[dataset], rtol=FLOAT32_RTOL, atol=0
    )
    header = read_header(path, dataset=dataset)
    assert header.version == "FCS3.0"
    base = header.offset
    got = (
        base + header.text_offsets[0],
        base + header.text_offsets[1],
        base + header.header_data_offsets[0],
        base + header.header_data_offsets[1],
    )
    assert got == GUAVA_OFFSETS[dataset]


def test_fcsparser_guava_muse_metadata_and_sizes() -> None:
    # Same peer test: len(meta) == 185 for data set 0, which is the 184 TEXT keywords plus
    # fcsparser's own '__header__' entry. test_multipleTubesGiven_differentTubesHaveDifferent
    # Data asserts consecutive data sets differ in length; the counts are $TOT of each.
    path = corpus_file(GUAVA_MUSE)
    first = read_fcs(path)
    assert len(first.keywords) == 184
    counts = [read_fcs(path, dataset=d).n_events for d in range(4)]
    assert counts == [108, 50081, 111496, 50037]


def test_fcsparser_cytek_nl2000_header_only() -> None:
    # eyurtsev/fcsparser fcsparser/tests/test_fcs_reader.py, TestHeaderParsing.test_parsing_
    # headers: with read_data=False the TEXT parses to 200 entries (199 keywords plus
    # '__header__') and $P9B is 32. The file stops inside TEXT, so reading events must fail.
    path = corpus_file(NL2000_HEADER_ONLY)
    header = read_header(path)
    assert len(header.keywords) == 199
    assert int(header.keywords["$P9B"]) == 32
    with pytest.raises(FCSError):
        read_fcs(path)


# ----------------------------------------------------------------------------------------
# FlowIO: mixed widths and HEADER/TEXT offset discrepancies (stored values, Sample.raw)
# ----------------------------------------------------------------------------------------

# 2 events x 26 parameters: 25 x 16-bit, then 32-bit with $PnR 11209599 (mask 2**24 - 1).
# The 16-bit words are mostly EF BF BD (U+FFFD) byte runs: the example's DATA went through a
# UTF-8 text round trip. The numbers still pin the decoding exactly.
VAR_INT_EVENTS = [
    49135, 61373, 48575, 49135, 61373, 48575, 7523, 598, 49135, 61373,
    48575, 49135, 61373, 48575, 28182, 61200, 48575, 49135, 32445, 30797,
    19057, 49135, 61373, 48575, 5969, 8265081,
    61266, 48575, 49135, 20925, 61265, 48575, 27961, 25200, 61287, 48575, 9795,
    49135, 29117, 49135, 61373, 48575, 61228, 48575, 22, 21760, 49135,
    20413, 49135, 23997, 19807, 15691602,
]


def test_flowio_variable_int_widths() -> None:
    # whitews/FlowIO tests/test_flowdata.py, test_parse_var_int_data: FlowData.events equals
    # these 52 masked values (142482809 -> 8265081 and 3220139858 -> 15691602 on $P26).
    sample = read_fcs(corpus_file(VAR_INT))
    assert sample.raw.shape == (2, 26)
    np.testing.assert_array_equal(sample.raw, np.array(VAR_INT_EVENTS).reshape(2, 26))


@pytest.mark.parametrize(
    ("name", "header_offsets"),
    [
        # whitews/FlowIO tests/test_flowdata.py, test_data_start_offset_discrepancy: FlowIO
        # raises DataOffsetDiscrepancyError. HEADER says DATA 5555-6188, which starts inside
        # TEXT (74-6080); TEXT says 6081-6188 = 108 bytes = 2 events x 54 bytes.
        pytest.param(START_DISCREPANCY, (5555, 6188), id="flowio-data-start-offset-discrepancy"),
        # same file, test_data_stop_offset_discrepancy: HEADER says 6081-6944, past the end
        # of the 6263-byte file; TEXT says 6081-6188.
        pytest.param(STOP_DISCREPANCY, (6081, 6944), id="flowio-data-stop-offset-discrepancy"),
    ],
)
def test_flowio_offset_discrepancy(name: str, header_offsets: tuple[int, int]) -> None:
    # FlowIO refuses these files by default; the discrepancy itself is checked from the
    # bytes, and our reader must pick the consistent TEXT offsets and return the same
    # events as variable_int_example.fcs (DATA bytes 6081-6188 are identical in all three).
    path = corpus_file(name)
    assert _header_data_offsets(path) == header_offsets
    sample = read_fcs(path)
    assert (int(sample.keywords["$BEGINDATA"]), int(sample.keywords["$ENDDATA"])) == (6081, 6188)
    assert _header_data_offsets(path) != (6081, 6188)
    np.testing.assert_array_equal(sample.raw, np.array(VAR_INT_EVENTS).reshape(2, 26))


# ----------------------------------------------------------------------------------------
# FlowIO: other reader assertions on corpus files
# ----------------------------------------------------------------------------------------


def test_flowio_facscan_text_and_event_count() -> None:
    # whitews/FlowIO tests/test_flowdata.py, test_get_text ($CYT 'FACScan') and
    # test_event_count (events / channels == $TOT).
    sample = read_fcs(corpus_file(FACSCAN_3FITC))
    assert sample.keywords["$CYT"] == "FACScan"
    assert sample.n_events == int(sample.keywords["$TOT"]) == 94569
    assert sample.raw.shape == (94569, 4)


def test_flowio_coulter_lmd_first_dataset() -> None:
    # whitews/FlowIO tests/test_flowdata_lmd.py, test_get_text and test_event_count, and
    # tests/test_read_multiple_datasets.py: data set 0 is FCS 2.0, 8 channels, 18110
    # events. (FlowIO needs ignore_offset_error here: the HEADER DATA span is 289761 bytes,
    # one more than 18110 x 16 bytes.)
    sample = read_fcs(corpus_file(COULTER_LMD), dataset=0)
    assert sample.version == "FCS2.0"
    assert sample.keywords["$CYT"] == "Cytomics FC 500"
    assert sample.n_events == int(sample.keywords["$TOT"]) == 18110
    assert sample.n_channels == 8


def test_flowio_coulter_lmd_second_dataset() -> None:
    # whitews/FlowIO tests/test_flowdata_lmd.py, test_right_integer_reading (first 24
    # values of the FCS 3.0 data set, 32-bit integers), and
    # tests/test_read_multiple_datasets.py (version 3.0, 8 channels, 18110 events).
    sample = read_fcs(corpus_file(COULTER_LMD), dataset=1)
    assert sample.version == "FCS3.0"
    assert sample.n_channels == 8
    assert sample.n_events == 18110
    np.testing.assert_array_equal(
        sample.raw[:3],
        [
            [61056, 131840, 46, 324, 10309, 104, 11912, 0],
            [257280, 378656, 139, 1728, 58688, 354, 58720, 0],
            [164128, 305376, 159, 924, 29024, 208, 29728, 0],
        ],
    )


def test_flowio_attune_g11_reads() -> None:
    # whitews/FlowIO tests/test_flowdata.py, test_issue_03: the Attune file loads; and
    # tests/test_lazy_data.py: its DATA span is events x channels x 4 bytes (float32).
    sample = read_fcs(corpus_file(ATTUNE_G11))
    assert sample.raw.shape == (int(sample.keywords["$TOT"]), int(sample.keywords["$PAR"]))
    assert sample.raw.shape == (5785, 12)
