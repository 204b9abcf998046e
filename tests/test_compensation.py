"""Compensation: matrices from files, keywords and single-stain controls, checked against truth.

Truth written by others: the spillover a simulated file was made with, the matrix a BD LSR II
stored in real single-stain control files ($SPILL), and flowkit's compensated events.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cytoflow_res import ChannelError, FCSError, FitError, TemplateError
from cytoflow_res.io.fcs import read_fcs
from cytoflow_res.sample import Channel, Sample
from cytoflow_res.simulate import ApoptosisSpec, apoptosis_control_spec, write_apoptosis_sample
from cytoflow_res.transforms import Compensation, compensate

from .conftest import shared_file

ControlRole = Literal["unstained", "annexin_only", "pi_only"]
SPILL_2 = np.array([[1.0, 0.13], [0.01, 1.0]])


def _sample(columns: dict[str, np.ndarray], *, spill: str | None = None, path: str | None = None) -> Sample:
    names = list(columns)
    raw = np.column_stack([np.asarray(columns[n], dtype=np.float32) for n in names])
    channels = [Channel(i, n, range=262144.0, datatype="F") for i, n in enumerate(names)]
    keywords = {"$SPILLOVER": spill} if spill is not None else {}
    return Sample(raw, channels, keywords, path=path)


def _two_colour(n: int = 500, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    true = rng.lognormal(6.0, 1.5, size=(n, 2))
    observed = true @ SPILL_2
    return true, {"FSC-A": rng.uniform(1e4, 1e5, n), "FITC-A": observed[:, 0], "PE-A": observed[:, 1]}


# ------------------------------------------------------------------ the matrix object


def test_apply_undoes_spillover_on_array_frame_and_sample() -> None:
    comp = Compensation(("FITC-A", "PE-A"), SPILL_2)
    true, cols = _two_colour()
    obs = np.column_stack([cols["FITC-A"], cols["PE-A"]])
    np.testing.assert_allclose(comp.apply(obs), true, rtol=1e-12)
    np.testing.assert_allclose(
        comp.apply(obs[:, ::-1], channels=["PE-A", "FITC-A"]), true[:, ::-1], rtol=1e-12
    )

    frame = pd.DataFrame(cols)
    out = comp.apply(frame)
    np.testing.assert_allclose(out[["FITC-A", "PE-A"]].to_numpy(), true, rtol=1e-6)
    np.testing.assert_array_equal(out["FSC-A"], frame["FSC-A"])
    assert frame["PE-A"].iloc[0] == cols["PE-A"][0]  # input untouched

    sample = _sample(cols)
    comped = comp.apply(sample)
    assert isinstance(comped, Sample) and comped is not sample
    assert comped.events.dtype == np.float64
    np.testing.assert_allclose(comped.column("FITC-A"), true[:, 0], rtol=1e-6)
    np.testing.assert_array_equal(comped.column("FSC-A"), sample.column("FSC-A"))
    np.testing.assert_array_equal(comped.raw, sample.raw)  # stored values are never changed
    assert "compensated (matrix: FITC-A, PE-A)" in comped.keywords["CYTOFLOW_RES_HISTORY"]
    assert "CYTOFLOW_RES_HISTORY" not in sample.keywords


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(-0.3, 0.6), min_size=6, max_size=6),
    st.lists(st.floats(-1e3, 2.6e5), min_size=3, max_size=3),
)
def test_compensation_inverts_spillover(offdiag: list[float], true: list[float]) -> None:
    spill = np.eye(3)
    spill[~np.eye(3, dtype=bool)] = offdiag
    if np.linalg.cond(spill) > 1e6:
        return
    comp = Compensation(("A", "B", "C"), spill)
    observed = np.array([true]) @ spill
    np.testing.assert_allclose(comp.apply(observed), [true], rtol=1e-8, atol=1e-6)
    np.testing.assert_allclose(comp.compensation_matrix @ spill, np.eye(3), atol=1e-9)


def test_identity_and_frame() -> None:
    ident = Compensation.identity(["FITC-A", "PE-A"])
    assert ident.source == "identity"
    x = np.array([[1.0, -2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(ident.apply(x), x)
    comp = Compensation(("FITC-A", "PE-A"), SPILL_2)
    frame = comp.to_frame()
    assert list(frame.index) == list(frame.columns) == ["FITC-A", "PE-A"]
    assert frame.loc["FITC-A", "PE-A"] == 0.13  # rows: sources, columns: detectors
    again = Compensation.from_frame(frame.loc[["PE-A", "FITC-A"]])  # rows in another order
    np.testing.assert_array_equal(again.spillover, SPILL_2)
    assert not comp.spillover.flags.writeable


@pytest.mark.parametrize(
    ("channels", "matrix", "match"),
    [
        (("A", "B"), np.eye(3), r"square .* \(2 x 2 for A, B\); got shape \(3, 3\)"),
        (("A", "B"), np.array([[1.0, np.nan], [0.0, 1.0]]), "finite numbers; not finite: A -> B"),
        (("A", "B"), np.array([[100.0, 13.0], [1.0, 100.0]]), "diagonal .* A=100.*percentages"),
        (("A", "B"), np.array([[0.9, 0.1], [0.0, 1.0]]), "diagonal coefficients must be 1; got A=0.9"),
        (("A", "B"), np.array([[1.0, 1.0], [1.0, 1.0]]), "singular"),
        (("A", "A"), np.eye(2), "unique; 'A' appear"),
        ((), np.eye(0), "at least one channel"),
    ],
)
def test_invalid_matrices_are_refused(channels: tuple[str, ...], matrix: np.ndarray, match: str) -> None:
    with pytest.raises(TemplateError, match=match):
        Compensation(channels, matrix)


def test_missing_channel_names_the_channel_and_the_sample_channels() -> None:
    comp = Compensation(("FITC-A", "PI-A"), SPILL_2)
    sample = _sample({"FSC-A": np.ones(3), "FITC-A": np.ones(3), "PE-A": np.ones(3)}, path="tube.fcs")
    with pytest.raises(
        ChannelError, match=r"'PI-A' \(matrix\) is not in tube.fcs; channels are FSC-A, FITC-A, PE-A"
    ):
        comp.apply(sample)
    with pytest.raises(ChannelError, match="'PI-A'"):
        comp.apply(pd.DataFrame({"FITC-A": [1.0]}))
    with pytest.raises(ValueError, match="2 channel names"):
        comp.apply(np.ones((2, 3)))


def test_folded_names_match() -> None:
    comp = Compensation(("FITC-A", "PE-A"), SPILL_2)
    out = comp.apply(np.array([[1000.0, 130.0]]), channels=["fitc a", "PE_A"])
    np.testing.assert_allclose(out, [[1000.0, 0.0]], atol=1e-9)


# ------------------------------------------------------------------ from the FCS keyword


def test_from_sample_reads_the_keyword() -> None:
    _, cols = _two_colour(50)
    sample = _sample(cols, spill="2,FITC-A,PE-A,1,0.13,0.01,1")
    comp = Compensation.from_sample(sample)
    assert comp.source == "file" and comp.channels == ("FITC-A", "PE-A")
    assert comp.info == {"keyword": "$SPILLOVER"}
    np.testing.assert_array_equal(comp.spillover, SPILL_2)


def test_from_sample_without_keyword_says_what_to_do() -> None:
    sample = _sample({"FITC-A": np.ones(3)}, path="/data/tube_3.fcs")
    with pytest.raises(
        FCSError,
        match=r"^/data/tube_3\.fcs: has no spillover keyword.*matrix file.*single-stain controls"
        r".*compensation: none",
    ):
        Compensation.from_sample(sample)
    with pytest.raises(FCSError, match=r"tube_3\.fcs"):
        compensate(sample)


def test_from_sample_with_a_bad_keyword() -> None:
    ones = {"FITC-A": np.ones(3), "PE-A": np.ones(3)}
    with pytest.raises(
        FCSError, match=r"x.fcs: keyword \$SPILLOVER is not a usable spillover matrix: diagonal"
    ):
        Compensation.from_sample(_sample(ones, spill="2,FITC-A,PE-A,0,0.13,0.01,1", path="x.fcs"))
    with pytest.raises(ChannelError, match=r"'APC-A' \(file\) is not in x.fcs"):
        Compensation.from_sample(_sample(ones, spill="2,FITC-A,APC-A,1,0.13,0.01,1", path="x.fcs"))


# ------------------------------------------------------------------ from a matrix file


def test_from_file_round_trip_with_and_without_row_names(tmp_path: Path) -> None:
    comp = Compensation(
        ("FITC-A", "PE-A", "PerCP-A"), np.array([[1, 0.13, 0.02], [0.01, 1, 0.3], [0, 0.004, 1.0]])
    )
    with_rows = tmp_path / "flowjo.csv"
    comp.to_frame().to_csv(with_rows)  # ",FITC-A,PE-A,PerCP-A" then "FITC-A,1.0,..."
    bare = tmp_path / "matrix.tsv"
    comp.to_frame().to_csv(bare, sep="\t", index=False)
    semi = tmp_path / "matrix_semicolon.txt"
    comp.to_frame().to_csv(semi, sep=";", index=False)
    for path in (with_rows, bare, semi):
        back = Compensation.from_file(path)
        assert back.channels == comp.channels
        np.testing.assert_array_equal(back.spillover, comp.spillover)
        assert back.source == f"matrix:{path}"
    # row names in another order than the columns are matched by name
    shuffled = tmp_path / "shuffled.csv"
    comp.to_frame().iloc[[2, 0, 1]].to_csv(shuffled)
    np.testing.assert_array_equal(Compensation.from_file(shuffled).spillover, comp.spillover)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "file is empty"),
        ("FITC-A,PE-A\n", "header row but no coefficients"),
        ("FITC-A,PE-A\n1,0.1\n", r"not square: 1 rows of coefficients for 2 channels \(FITC-A, PE-A\)"),
        ("FITC-A,PE-A\n1,0.1,3\n0,1\n", "line 2 has 3 coefficients; expected 2"),
        ("FITC-A,PE-A\n1,abc\n0,1\n", r"line 2, column 'PE-A': 'abc' is not a number"),
        ("FITC-A,PE-A\n100,13\n1,100\n", "divide the matrix by 100"),
        ("FITC-A,PE-A\n1,nan\n0,1\n", "finite"),
        (",PE-A\n1,0.1\n0,1\n", "must name every column"),
        (",FITC-A,PE-A\nFITC-A,1,0.1\nAPC-A,0,1\n", r"row names \(FITC-A, APC-A\) are not the channels"),
    ],
)
def test_from_file_errors_name_the_file_and_the_problem(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "comp.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TemplateError, match=f"^{path}: .*{match}"):
        Compensation.from_file(path)


def test_from_file_missing(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"nope\.csv: cannot read the compensation matrix file"):
        Compensation.from_file(tmp_path / "nope.csv")


# ------------------------------------------------------------------ compensate()


def test_compensate_dispatch(tmp_path: Path) -> None:
    true, cols = _two_colour(200)
    sample = _sample(cols, spill="2,FITC-A,PE-A,1,0.13,0.01,1", path="s.fcs")
    matrix_file = tmp_path / "m.csv"
    Compensation(("FITC-A", "PE-A"), SPILL_2).to_frame().to_csv(matrix_file)
    results = [
        compensate(sample),
        compensate(sample, "file"),
        compensate(sample, f"matrix:{matrix_file}"),
        compensate(sample, str(matrix_file)),
        compensate(sample, matrix_file),
        compensate(sample, Compensation(("FITC-A", "PE-A"), SPILL_2)),
        compensate(sample, pd.DataFrame(SPILL_2, index=["FITC-A", "PE-A"], columns=["FITC-A", "PE-A"])),
        compensate(sample, SPILL_2),
    ]
    for out in results:
        np.testing.assert_allclose(out.column("PE-A"), true[:, 1], rtol=1e-5)
    assert compensate(sample, None) is sample
    assert compensate(sample, "none") is sample


@pytest.mark.parametrize(
    ("comp", "match"),
    [
        ("spill", r"'spill' is not understood; use 'file', 'none', 'matrix:<path>'"),
        ("controls", "build Compensation.from_controls"),
        (np.eye(3), r"bare \(3, 3\) array .* s.fcs has a 2-channel spillover keyword"),
    ],
)
def test_compensate_rejects_what_it_cannot_use(comp: Any, match: str) -> None:
    _, cols = _two_colour(10)
    sample = _sample(cols, spill="2,FITC-A,PE-A,1,0.13,0.01,1", path="s.fcs")
    with pytest.raises(TemplateError, match=match):
        compensate(sample, comp)


# ------------------------------------------------------------------ simulated controls: ground truth


@pytest.fixture(scope="module")
def simulated_controls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("controls")
    base = ApoptosisSpec(n_events=20000)
    samples: dict[str, Any] = {"spec": base}
    roles: tuple[ControlRole, ...] = ("unstained", "annexin_only", "pi_only")
    for seed, role in enumerate(roles):
        path = folder / f"{role}.fcs"
        write_apoptosis_sample(path, apoptosis_control_spec(role, base), seed=100 + seed, dialect="modern")
        samples[role] = read_fcs(path)
    return samples


@pytest.mark.parametrize("with_unstained", [True, False])
def test_controls_recover_the_simulated_spillover(
    simulated_controls: dict[str, Any], with_unstained: bool
) -> None:
    spec: ApoptosisSpec = simulated_controls["spec"]
    comp = Compensation.from_controls(
        {"FITC-A": simulated_controls["annexin_only"], "PE-A": simulated_controls["pi_only"]},
        unstained=simulated_controls["unstained"] if with_unstained else None,
    )
    assert comp.source == "controls" and comp.channels == ("FITC-A", "PE-A")
    assert comp.spillover[0, 1] == pytest.approx(spec.fitc_to_pe, abs=0.01)
    assert comp.spillover[1, 0] == pytest.approx(spec.pe_to_fitc, abs=0.01)
    reference = "unstained" if with_unstained else "own negatives"
    assert comp.info["FITC-A"]["negative_reference"] == reference
    assert comp.info["FITC-A"]["n_positive"] > 5000  # ~47.5% of a 50/50 live/killed mix


def test_simulated_keyword_is_the_spec(simulated_controls: dict[str, Any]) -> None:
    spec: ApoptosisSpec = simulated_controls["spec"]
    comp = Compensation.from_sample(simulated_controls["annexin_only"])
    np.testing.assert_allclose(comp.spillover, spec.spillover_matrix, rtol=1e-6)
    # compensated, the annexin-only control's positives sit at the unstained PE level
    comped = compensate(simulated_controls["annexin_only"])
    pos = comped.column("FITC-A") > np.percentile(simulated_controls["unstained"].column("FITC-A"), 99.5)
    unstained_pe = np.median(simulated_controls["unstained"].column("PE-A"))
    raw_pe = np.median(simulated_controls["annexin_only"].column("PE-A")[pos])
    assert abs(np.median(comped.column("PE-A")[pos]) - unstained_pe) < 0.1 * (raw_pe - unstained_pe)


def test_controls_can_use_labels_and_extra_channels(simulated_controls: dict[str, Any]) -> None:
    comp = Compensation.from_controls(
        {"Annexin V": simulated_controls["annexin_only"]},
        unstained=simulated_controls["unstained"],
        channels=["FITC-A", "PE-A"],
    )
    assert comp.channels == ("FITC-A", "PE-A")
    assert comp.spillover[0, 1] == pytest.approx(0.13, abs=0.01)
    np.testing.assert_array_equal(comp.spillover[1], [0.0, 1.0])  # no PE control: unit row


def test_controls_errors(simulated_controls: dict[str, Any]) -> None:
    unstained = simulated_controls["unstained"]
    # an unstained tube given as a stain: only the 0.5% tail of the negatives is "positive"
    with pytest.raises(
        FitError,
        match=r"single-stain control 'PE-A' \(.*unstained\.fcs\) has \d+ positive events of \d+ usable "
        r"ones above .* at least 2\d\d ",
    ):
        Compensation.from_controls({"PE-A": unstained}, unstained=unstained)
    with pytest.raises(FitError, match=r"at least 30000 are needed.*heat-killed"):
        Compensation.from_controls({"PE-A": simulated_controls["pi_only"]}, min_positive=30000)
    with pytest.raises(ChannelError, match="no channel matches 'APC-A'"):
        Compensation.from_controls({"APC-A": simulated_controls["pi_only"]})
    with pytest.raises(ChannelError, match="must include the primary channel of every control; add 'PE-A'"):
        Compensation.from_controls({"PE-A": simulated_controls["pi_only"]}, channels=["FITC-A"])
    with pytest.raises(
        ChannelError, match="two or more single-stain controls have the primary channel FITC-A"
    ):
        Compensation.from_controls(
            {"FITC-A": simulated_controls["annexin_only"], "Annexin V": simulated_controls["annexin_only"]}
        )
    with pytest.raises(FitError, match="at least one single-stain control"):
        Compensation.from_controls({})


# ------------------------------------------------------------------ real LSR II controls vs the instrument

STAINS = "stains"
LSR = "CytoExploreRData_Compensation-{}.fcs"
AF488, PE, AAD = "Alexa Fluor 488-A", "PE-A", "7-AAD-A"


@pytest.fixture(scope="module")
def lsr_controls() -> dict[str, Sample]:
    return {
        name: read_fcs(shared_file(STAINS, LSR.format(name))) for name in ("Unstained", "FITC", "PE", "7AAD")
    }


@pytest.mark.shared
def test_lsr2_controls_reproduce_the_instrument_matrix(lsr_controls: dict[str, Sample]) -> None:
    """Spillover from the FITC, PE and 7-AAD single stains vs the $SPILL the LSR II stored.

    Measured (robust slope over events above the unstained 99.5th percentile):

    ==================  ======  =========  ==========================================
    coefficient         $SPILL  ours       median method (pos - unstained medians)
    ==================  ======  =========  ==========================================
    488 -> PE           0.188   0.1835     0.2031
    488 -> 7-AAD        0.018   0.0262     0.0359  (fails 0.02)
    PE -> 488           0.006   0.0083     0.0123
    PE -> 7-AAD         0.168   0.1738     0.1856
    7-AAD -> 488        0.000   0.0009     0.0377  (fails 0.02)
    7-AAD -> PE         0.000   0.0004     0.0243  (fails 0.02)
    ==================  ======  =========  ==========================================

    The 7-AAD control has only ~2.5% positive events (1,241 of 50,000), but they span two
    decades, which is enough for a slope; the median method fails on it (and on 488 -> 7-AAD)
    because the positive cells are more autofluorescent than the unstained ones.
    """
    comp = Compensation.from_controls(
        {AF488: lsr_controls["FITC"], PE: lsr_controls["PE"], AAD: lsr_controls["7AAD"]},
        unstained=lsr_controls["Unstained"],
    )
    instrument = (
        Compensation.from_sample(lsr_controls["FITC"]).to_frame().loc[[AF488, PE, AAD], [AF488, PE, AAD]]
    )
    ours = comp.to_frame()
    np.testing.assert_allclose(ours.to_numpy(), instrument.to_numpy(), rtol=0, atol=0.02)
    assert comp.info[AAD]["n_positive"] > 1000
    # the same within 0.02 without the unstained control (positives from the stain's own negatives)
    own = Compensation.from_controls(
        {AF488: lsr_controls["FITC"], PE: lsr_controls["PE"], AAD: lsr_controls["7AAD"]}
    )
    np.testing.assert_allclose(own.spillover, instrument.to_numpy(), rtol=0, atol=0.02)


@pytest.mark.shared
def test_all_lsr2_files_carry_the_same_matrix(lsr_controls: dict[str, Sample]) -> None:
    mats = [Compensation.from_sample(s) for s in lsr_controls.values()]
    assert all(m.channels == mats[0].channels and len(m.channels) == 11 for m in mats)
    for m in mats[1:]:
        np.testing.assert_array_equal(m.spillover, mats[0].spillover)


@pytest.mark.shared
def test_compensated_events_equal_flowkits(lsr_controls: dict[str, Sample]) -> None:
    path = shared_file(STAINS, LSR.format("FITC"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # flowkit's own deprecation chatter is not ours to fix
        flowkit = pytest.importorskip("flowkit")
        fk = flowkit.Sample(str(path))
        fk.apply_compensation(fk.metadata["spill"])
        theirs = fk.get_events(source="comp")
    ours = compensate(lsr_controls["FITC"]).events
    assert list(fk.pnn_labels) == lsr_controls["FITC"].channel_names
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-9)
    # and compensation changed the fluorescence channels a lot
    assert np.abs(ours[:, 7] - lsr_controls["FITC"].events[:, 7]).max() > 1e3
