"""Figure files and the HTML report of a run.

One small run (one cell line of the example, plus a corrupt file and a cell-cycle sample whose
file name, $FIL, cell line and treatment are HTML meant to attack the page) is analysed once;
its figures and report are written once and read by the tests. The report is parsed with the
standard library's HTML parser: what a browser would build from it, tags and text, is what is
checked. Two figures are compared with baseline images (``tests/_imagecompare.py``).
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
import pytest
from PIL import Image

from cytoflow_res import report as report_module
from cytoflow_res import stats
from cytoflow_res.errors import DesignError
from cytoflow_res.experiment import Experiment, ExperimentResult
from cytoflow_res.plotting.experiment import (
    cellcycle_fit,
    display_arms,
    dna_fit_panels,
    dna_overlay,
    figure_specs,
    plot_dose_response,
    plot_fa_ci,
    quadrant_grid,
    representative_rows,
)
from cytoflow_res.plotting.style import save_figure
from cytoflow_res.report import QC_LIMITS, qc_flags, write_figures, write_report
from cytoflow_res.simulate import CellCycleSpec, write_cellcycle_sample
from tests._imagecompare import check_figure
from tests.test_experiment import ARMS, small_design

matplotlib.use("Agg")

HOSTILE = "<script>alert(1)</script>"
HOSTILE_FILE = "evil<img src=x onerror=alert(1)>.fcs"
CORRUPT = "apoptosis/parental_drugA_r2.fcs"


def messy_design(folder: Path, *, apoptosis_arms: tuple[str, ...] = ARMS, cellcycle: bool = True,
                 corrupt: bool = True) -> Path:
    """Part of the example with a truncated apoptosis file and a hostile cell-cycle sample.

    The hostile sample is simulated (3,000 events, G1 CV 9%, so it is also flagged) with
    ``$FIL`` = ``HOSTILE``, saved as ``HOSTILE_FILE`` and put in the sheet with ``HOSTILE`` as
    its cell line, treatment and group.
    """
    sheet = small_design(folder, apoptosis_arms=apoptosis_arms, cellcycle=cellcycle)
    design = pd.read_csv(sheet)
    if corrupt:
        target = folder / CORRUPT
        target.write_bytes(target.read_bytes()[:300])
    hostile = folder / "cellcycle" / HOSTILE_FILE
    hostile.parent.mkdir(parents=True, exist_ok=True)
    write_cellcycle_sample(hostile, CellCycleSpec(n_events=3000, cv=0.09), seed=7,
                           keywords={"$FIL": HOSTILE})
    row = {"file": f"cellcycle/{HOSTILE_FILE}", "assay": "cellcycle", "cell_line": HOSTILE,
           "treatment": HOSTILE, "drug_a": "drugA", "dose_a": 0.0, "drug_b": "drugB", "dose_b": 0.0,
           "replicate": 1, "role": "sample", "group": HOSTILE}
    pd.concat([design, pd.DataFrame([row])], ignore_index=True).to_csv(sheet, index=False)
    return sheet


class Page(HTMLParser):
    """What a browser builds from the page: tags with attributes, and the text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.chunks: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.chunks).split())

    def names(self) -> set[str]:
        return {tag for tag, _ in self.tags}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> ExperimentResult:
    folder = tmp_path_factory.mktemp("messy")
    return Experiment.from_design(messy_design(folder)).run(progress=False)


@pytest.fixture(scope="module")
def written(run: ExperimentResult, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("out")
    figures = write_figures(run, out)
    report = write_report(run, out, figures=figures)
    text = report.read_text(encoding="utf-8")
    return {"out": out, "figures": figures, "report": report, "html": text, "page": Page(text)}


# ---------------------------------------------------------------------------- the run itself
def test_the_messy_run_is_what_the_tests_assume(run: ExperimentResult) -> None:
    assert list(run.errors["file"]) == [CORRUPT]
    assert HOSTILE in set(run.cellcycle["cell_line"])
    hostile = run.cellcycle[run.cellcycle["cell_line"] == HOSTILE].iloc[0]
    assert hostile["file"] == f"cellcycle/{HOSTILE_FILE}"
    assert hostile["status"] == "warn"


# ---------------------------------------------------------------------------- figures
def test_every_figure_is_written_as_png_svg_and_pdf(run: ExperimentResult, written: dict[str, Any]) -> None:
    names = [spec.name for spec in figure_specs(run)]
    for expected in ("apoptosis_total_apoptotic", "apoptosis_viable", "apoptosis_quadrants",
                     "cellcycle_phases", "cellcycle_sub_g1", "quadrants_parental", "dna_overlay_parental",
                     "dna_fits_parental"):
        assert expected in names
    folder = written["out"] / "figures"
    assert sorted(written["figures"]) == sorted(folder.iterdir())
    for name in names:
        png, svg, pdf = (folder / f"{name}.{fmt}" for fmt in ("png", "svg", "pdf"))
        with Image.open(png) as image:
            assert image.format == "PNG"
            assert min(image.size) > 200
        text = svg.read_text(encoding="utf-8")
        assert "<svg" in text
        assert "<text" in text  # editable text, not paths
        assert pdf.read_bytes().startswith(b"%PDF")
    # the hostile cell line gets a file name that is safe everywhere
    overlay = [n for n in names if n.startswith("dna_overlay_") and n != "dna_overlay_parental"]
    assert len(overlay) == 1
    assert all(c.isalnum() or c in "_-." for c in overlay[0])
    assert plt.get_fignums() == []  # every figure was closed


def test_figures_are_deterministic(run: ExperimentResult, tmp_path: Path) -> None:
    specs = {spec.name: spec for spec in figure_specs(run)}
    for name in ("apoptosis_total_apoptotic", "dna_overlay_parental"):
        files = []
        for attempt in ("a", "b"):
            fig = specs[name].build()
            try:
                files.append(save_figure(fig, tmp_path / attempt / name, formats=("svg", "pdf")))
            finally:
                plt.close(fig)
        for first, second in zip(*files, strict=True):
            assert first.read_bytes() == second.read_bytes(), first.name


def test_drawing_in_worker_processes_gives_the_same_files_and_page(
    run: ExperimentResult, written: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each worker draws its share with fresh figures; the page must not depend on which
    # samples a drawer drew before (the residual axes once kept every earlier sample's range).
    monkeypatch.setattr(report_module, "_MIN_PARALLEL_THUMBNAILS", 2)
    monkeypatch.setattr(report_module, "_MIN_PARALLEL_FIGURES", 2)
    figures = write_figures(run, tmp_path, formats=("png",), n_jobs=2)
    assert [p.name for p in figures] == [p.name for p in written["figures"] if p.suffix == ".png"]
    for path in figures:
        assert path.read_bytes() == (written["out"] / "figures" / path.name).read_bytes(), path.name
    page = write_report(run, tmp_path, figures=figures, n_jobs=2).read_text(encoding="utf-8")
    assert page == written["html"]


def test_quadrant_grid_has_a_panel_per_sample_and_says_why_one_is_missing(run: ExperimentResult) -> None:
    fig = quadrant_grid(run, "parental")
    try:
        axes = fig.axes
        assert len(axes) == 4 * 3
        texts = [t.get_text() for ax in axes for t in ax.texts]
        assert sum(t.startswith("not analysed") for t in texts) == 1  # the corrupt file
        # the corners are the run's percentages
        row = run.apoptosis[run.apoptosis["file"] == "apoptosis/parental_vehicle_r1.fcs"].iloc[0]
        first = {t.get_gid(): t.get_text() for t in axes[0].texts}
        assert first["pct:viable"] == f"{row['viable_pct']:.1f}"
        assert first["pct:late_apoptotic"] == f"{row['late_apoptotic_pct']:.1f}"
        assert [axes[3 * i].get_ylabel() for i in range(4)] == list(ARMS)
    finally:
        plt.close(fig)


def test_dna_overlay_and_fits_use_the_representative_replicate(run: ExperimentResult) -> None:
    chosen = representative_rows(run, "parental")
    assert list(chosen) == ["vehicle", "drugA+drugB"]
    ax = dna_overlay(run, "parental")
    try:
        gids = [a.get_gid() for a in ax.patches if a.get_gid()]
        assert gids == [f"dna:{arm}:{row['file']}" for arm, row in chosen.items()]
    finally:
        plt.close(ax.figure)
    fig = dna_fit_panels(run, "parental")
    try:
        titles = [ax.get_title() for ax in fig.axes]
        fit = cellcycle_fit(run, str(chosen["vehicle"]["file"]))
        assert titles[0].startswith("vehicle (rep ")
        assert f"G0/G1 {fit.g0g1_pct:.1f}%" in titles[0]
    finally:
        plt.close(fig)


def test_figure_functions_name_what_is_wrong(run: ExperimentResult) -> None:
    with pytest.raises(DesignError, match="no apoptosis samples of cell line 'nope'; the cell lines are"):
        quadrant_grid(run, "nope")
    with pytest.raises(ValueError, match="replicates must be 'representative' or 'all'"):
        dna_overlay(run, "parental", replicates="some")  # type: ignore[arg-type]
    with pytest.raises(DesignError, match="no Chou-Talalay rows"):
        plot_fa_ci(run.synergy())
    with pytest.raises(DesignError, match="not a cell-cycle sample"):
        cellcycle_fit(run, "nope.fcs")


def _dose_series(ci: float = 0.5) -> pd.DataFrame:
    """A Chou-Talalay table of one cell line: drugs with Dm 1 and 10 (m 1.5) and a 1:10 series."""
    rows = []

    def fa(dose: float, dm: float, m: float = 1.5) -> float:
        return 1.0 / (1.0 + (dm / dose) ** m)

    rows.append({"cell_line": "parental", "treatment": "vehicle", "dose_a": 0.0, "dose_b": 0.0,
                 "drug_a": None, "drug_b": None, "total_apoptotic_pct": 8.0})
    for k in (0.25, 0.5, 1.0, 2.0, 4.0):
        rows.append({"cell_line": "parental", "treatment": "drugA", "dose_a": k, "dose_b": 0.0,
                     "drug_a": "drugA", "drug_b": None, "total_apoptotic_pct": 8 + 92 * fa(k, 1.0)})
        rows.append({"cell_line": "parental", "treatment": "drugB", "dose_a": 0.0, "dose_b": 10 * k,
                     "drug_a": None, "drug_b": "drugB", "total_apoptotic_pct": 8 + 92 * fa(10 * k, 10.0)})
        # at ci < 1 the combination acts like a higher dose of A
        rows.append({"cell_line": "parental", "treatment": "drugA+drugB", "dose_a": k / 2, "dose_b": 5 * k,
                     "drug_a": "drugA", "drug_b": "drugB",
                     "total_apoptotic_pct": 8 + 92 * fa(k / ci, 1.0)})
    table = pd.DataFrame(rows)
    table = pd.concat([table.assign(replicate=r) for r in (1, 2, 3)], ignore_index=True)
    out = stats.dose_series_synergy(table, "total_apoptotic_pct")
    out.insert(0, "metric", "Chou-Talalay")
    out.insert(0, "assay", "apoptosis")
    return out


def test_dose_response_and_fa_ci_draw_the_synergy_table() -> None:
    synergy = _dose_series()
    ax = plot_dose_response(synergy, cell_line="parental")
    try:
        fits = synergy[synergy["kind"] == "fit"]
        curves = {line.get_gid(): line for line in ax.lines}
        assert set(curves) == {f"curve:{agent}" for agent in fits["agent"]}
        # the curve of drug A passes through fa 0.5 at its Dm
        dm = float(fits.loc[fits["agent"] == "drugA", "dm"].iloc[0])
        x, y = curves["curve:drugA"].get_data()
        assert float(pd.Series(y).iloc[int(abs(pd.Series(x) - dm).idxmin())]) == pytest.approx(0.5, abs=0.02)
    finally:
        plt.close(ax.figure)
    ax = plot_fa_ci(synergy, cell_line="parental")
    try:
        levels = synergy[synergy["kind"] == "fa_level"].sort_values("fa")
        (line,) = [ln for ln in ax.lines if str(ln.get_gid()).startswith("ci:")]
        assert list(line.get_ydata()) == pytest.approx(list(levels["ci"]))
        assert (levels["ci"] < 0.9).all()  # the table says synergy; the plot shows the table
    finally:
        plt.close(ax.figure)


def test_dose_levels_are_separate_arms_in_figures() -> None:
    table = pd.DataFrame({
        "treatment": ["vehicle", "drugA", "drugA", "drugB"],
        "drug_a": [None, "drugA", "drugA", None], "dose_a": [0.0, 0.5, 1.0, 0.0],
        "drug_b": [None, None, None, "drugB"], "dose_b": [0.0, 0.0, 0.0, 2.0],
    })
    assert list(display_arms(table)["treatment"]) == ["vehicle", "drugA (drugA 0.5)", "drugA (drugA 1)",
                                                      "drugB"]
    single = table.iloc[[0, 1, 3]]
    assert display_arms(single) is single


# ---------------------------------------------------------------------------- image baselines
def test_quadrant_grid_looks_like_its_baseline(run: ExperimentResult, tmp_path: Path) -> None:
    fig = quadrant_grid(run, "parental", arms=["vehicle", "drugA+drugB"])
    try:
        check_figure(fig, "report_quadrant_grid", tmp_path)
    finally:
        plt.close(fig)


def test_dna_overlay_looks_like_its_baseline(run: ExperimentResult, tmp_path: Path) -> None:
    ax = dna_overlay(run, "parental", replicates="all")
    try:
        check_figure(ax.figure, "report_dna_overlay", tmp_path)  # type: ignore[arg-type]
    finally:
        plt.close(ax.figure)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- quality flags
def test_flags_agree_with_the_analyses_own_warnings(run: ExperimentResult) -> None:
    flags = qc_flags(run)
    low = set(flags.loc[flags["flag"] == "low event count", "file"])
    cc = run.cellcycle
    warned = set(cc.loc[cc["message"].fillna("").str.contains(r"singlets \(< 10,000\)"), "file"])
    assert warned  # the example's cell-cycle files have ~7,600 singlets
    assert low & set(cc["file"]) == warned
    cv = set(flags.loc[flags["flag"] == "high G1 CV", "file"])
    assert cv == set(cc.loc[cc["message"].fillna("").str.contains("G1 CV"), "file"])
    assert f"cellcycle/{HOSTILE_FILE}" in cv
    error = flags[flags["severity"] == "error"]
    assert list(error["file"]) == [CORRUPT]
    assert list(error["flag"]) == ["not analysed"]
    # the parts of a warning that a flag already says are not repeated; the rest is kept
    hostile = flags[flags["file"] == f"cellcycle/{HOSTILE_FILE}"].set_index("flag")["detail"]
    message = str(cc.loc[cc["file"] == f"cellcycle/{HOSTILE_FILE}", "message"].iloc[0])
    assert "G1 CV" in message
    assert "singlets" in message
    if "warning" in hostile:
        assert "G1 CV" not in hostile["warning"]
        assert "singlets" not in hostile["warning"]
        assert hostile["warning"] in message


def test_each_flag_at_its_limit(run: ExperimentResult) -> None:
    apo = run.apoptosis.copy()
    ok = apo.index[apo["status"] == "ok"]
    apo.loc[ok[0], ["events_total", "events_singlets"]] = [5000, 3000]  # 40% removed
    for q in ("viable", "early_apoptotic", "late_apoptotic", "necrotic"):
        apo.loc[ok[1], f"{q}_n"] = 100  # 400 cells analysed
    cc = run.cellcycle.copy()
    first = cc.index[0]
    cc.loc[first, ["rcs", "g1_cv_pct", "events_singlets", "events_total"]] = [4.5, 8.5, 20_000, 21_000]
    cc.loc[first, "status"] = "ok"
    cc.loc[first, "message"] = ""
    second = cc.index[1]
    cc.loc[second, ["rcs", "g1_cv_pct", "events_singlets", "events_total"]] = [0.69, 8.0, 10_000, 10_000]
    cc.loc[second, ["status", "message"]] = ["warn", "linearity 2.100 at its bound (1.5, 2.1)"]
    flags = qc_flags(dataclasses.replace(run, apoptosis=apo, cellcycle=cc))

    def of(frame: pd.DataFrame, index: Any) -> dict[str, str]:
        sub = flags[flags["file"] == frame.loc[index, "file"]]
        return dict(zip(sub["flag"], sub["detail"], strict=True))

    assert of(apo, ok[0]) == {
        "pre-gate loss": "40% of 5,000 events removed by the debris and singlet gates (> 30%)"}
    assert of(apo, ok[1]) == {"low event count": "400 cells analysed (< 500)"}
    assert of(cc, first) == {"high G1 CV": "G0/G1 CV 8.5% (> 8%)",
                             "RCS out of range": "RCS 4.50 (outside [0.7, 4])"}
    assert of(cc, second) == {"RCS out of range": "RCS 0.69 (outside [0.7, 4])",
                              "warning": "linearity 2.100 at its bound (1.5, 2.1)"}
    assert QC_LIMITS.rcs_range == (0.7, 4.0)


# ---------------------------------------------------------------------------- the report
def test_report_is_self_contained(written: dict[str, Any]) -> None:
    text, page = written["html"], written["page"]
    assert written["report"] == written["out"] / "report.html"
    assert "http://" not in text
    assert "https://" not in text
    assert "<script" not in text.lower()
    assert page.names().isdisjoint({"script", "link", "iframe", "object", "embed", "base", "form", "input"})
    images = [attrs for tag, attrs in page.tags if tag == "img"]
    assert len(images) > 20
    for attrs in images:
        src = str(attrs["src"])
        assert src.startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as image:
            assert image.format == "PNG"
    for tag, attrs in page.tags:
        for name in ("href", "src", "srcset", "action", "background", "poster"):
            value = attrs.get(name)
            if value is not None and name != "src":
                assert value.startswith("#"), (tag, name, value)
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
    policy = [attrs for tag, attrs in page.tags if tag == "meta" and attrs.get("http-equiv")]
    assert "default-src 'none'" in str(policy[0]["content"])
    size = written["report"].stat().st_size
    assert size < 5_000_000, size


def test_report_names_every_sample_and_shows_the_run(run: ExperimentResult, written: dict[str, Any]) -> None:
    text = written["page"].text
    for file in [*run.apoptosis["file"], *run.cellcycle["file"]]:
        assert str(file) in text
    record = run.run_record()
    for expected in (run.design.sheet.name, record["design"]["sha256"], "generic_modern",
                     record["templates"]["apoptosis"]["sha256"], record["environment"]["packages"]["numpy"],
                     f"{run.gatings['parental'].thresholds.annexin:.1f}", "Dunnett", "Bliss",
                     "Quality control", "Errors and notes"):
        assert str(expected) in text, expected


def test_report_embeds_every_figure_written(written: dict[str, Any]) -> None:
    pngs = [p for p in written["figures"] if p.suffix == ".png"]
    figures = [attrs for tag, attrs in written["page"].tags
               if tag == "figure" and "fig" in str(attrs.get("class"))]
    assert len(figures) == len(pngs)
    for path in pngs:
        assert f"figures/{path.name}" in written["page"].text


def test_report_lists_the_errors(written: dict[str, Any]) -> None:
    text = written["page"].text
    errors = text[text.index("Errors and notes"):]
    assert "1 error(s)" in errors
    assert CORRUPT in errors
    assert "parental_drugA_r2.fcs" in errors
    assert "<div class='banner error'>1 error(s)" in written["html"]


def test_text_from_files_and_the_design_is_escaped(written: dict[str, Any]) -> None:
    text, page = written["html"], written["page"]
    # never markup ...
    assert HOSTILE not in text
    assert "<img src=x" not in text
    assert "script" not in page.names()
    assert all("onerror" not in attrs for _, attrs in page.tags)
    # ... always text: the file name, $FIL, cell line and treatment are all shown, as written
    escaped = html.escape(HOSTILE, quote=True)
    assert text.count(escaped) >= 4
    assert html.escape(HOSTILE_FILE, quote=True) in text
    shown = page.text
    assert f"$FIL {HOSTILE}" in shown
    assert f"cellcycle/{HOSTILE_FILE}" in shown
    assert f"{HOSTILE} · {HOSTILE} · replicate 1" in shown  # cell line, treatment of its card


def test_report_without_thumbnails_or_figures_is_small_and_keeps_the_flags(run: ExperimentResult,
                                                                            tmp_path: Path) -> None:
    path = write_report(run, tmp_path, figures=[], thumbnails=False)
    page = Page(path.read_text(encoding="utf-8"))
    assert not [attrs for tag, attrs in page.tags if tag == "img"]
    assert "No figures in this report" in page.text
    assert "Figures not drawn" not in page.text
    assert "low event count" in page.text
    assert path.stat().st_size < 400_000
