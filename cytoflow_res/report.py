"""Figure files and a self-contained HTML report of a run.

:func:`write_figures` writes the standard figures of an
:class:`~cytoflow_res.experiment.ExperimentResult` (see
:func:`cytoflow_res.plotting.experiment.figure_specs`) as PNG, SVG and PDF under
``DIR/figures/``. :func:`write_report` writes ``DIR/report.html``: one file that opens in any
browser without a network or a server, to archive with the data or send to a collaborator:

* the run: design sheet and its checksum, files, versions, templates with their hashes,
  thresholds per group, cell-cycle fit settings, design warnings and notes;
* per-condition tables: mean +- SD with n (the full statistics in a fold), the comparisons
  with their p-values and marks, the combination metrics with their calls;
* the figures;
* a quality-control gallery: a gating thumbnail of every apoptosis sample and a fit thumbnail
  of every cell-cycle sample, with the flags of :func:`qc_flags`;
* every error.

The page holds no script and loads nothing: images are PNG ``data:`` URIs, the style sheet is
inline, and a Content-Security-Policy forbids anything else. Every text that comes from a file
or the design (keywords, file names, sheet cells, messages) is HTML-escaped.

Examples
--------
>>> from cytoflow_res.report import write_figures, write_report
>>> paths = write_figures(result, "results")  # doctest: +SKIP
>>> write_report(result, "results", figures=paths)  # doctest: +SKIP
PosixPath('results/report.html')
"""

from __future__ import annotations

import base64
import html
import io
import logging
import math
import multiprocessing
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from cytoflow_res._version import __version__
from cytoflow_res.apoptosis import MIN_CELLS
from cytoflow_res.cellcycle.fit import MAX_G1_CV, MIN_SINGLETS, RCS_RANGE
from cytoflow_res.errors import CytoflowResError
from cytoflow_res.io.export import write_text_atomic
from cytoflow_res.stats import FAILED_STATUSES

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from cytoflow_res.experiment import ExperimentResult
    from cytoflow_res.plotting.experiment import FigureSpec

__all__ = ["QC_LIMITS", "QCLimits", "qc_flags", "write_figures", "write_report"]

log = logging.getLogger(__name__)



# ============================================================================ quality control
@dataclass(frozen=True)
class QCLimits:
    """Limits beyond which a sample is flagged in the report.

    The defaults are the limits at which the analyses themselves warn, so a flag and the
    sample's ``warn`` status agree: :data:`cytoflow_res.apoptosis.MIN_CELLS` analysed cells,
    and the cell-cycle fit's :data:`~cytoflow_res.cellcycle.fit.MIN_SINGLETS` singlets,
    :data:`~cytoflow_res.cellcycle.fit.MAX_G1_CV` G1 CV and
    :data:`~cytoflow_res.cellcycle.fit.RCS_RANGE` reduced chi-square range.

    Attributes
    ----------
    min_apoptosis_cells
        Fewest analysed (pre-gated) cells of an apoptosis sample.
    min_cellcycle_singlets
        Fewest singlets of a cell-cycle sample.
    max_g1_cv_pct
        Largest G0/G1 peak CV, in percent.
    rcs_range
        Reduced chi-square (RCS) of a good fit: a larger one misses structure in the data,
        a smaller one is over-fitted.
    max_pregate_loss
        Largest share of events removed before the analysis (debris and singlet gates for
        apoptosis, doublet discrimination for cell cycle).
    """

    min_apoptosis_cells: int = MIN_CELLS
    min_cellcycle_singlets: int = MIN_SINGLETS
    max_g1_cv_pct: float = 100 * MAX_G1_CV
    rcs_range: tuple[float, float] = RCS_RANGE
    max_pregate_loss: float = 0.30


#: The limits of the report (those of the analyses' own warnings).
QC_LIMITS = QCLimits()

QC_COLUMNS = ["assay", "file", "cell_line", "treatment", "replicate", "flag", "severity", "detail"]


def _number(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out


def _sample_flags(assay: str, row: pd.Series, limits: QCLimits) -> list[tuple[str, str, str]]:
    """(flag, severity, detail) of one per-sample row."""
    flags: list[tuple[str, str, str]] = []
    status = str(row.get("status", "")).strip().lower()
    message = str(row.get("message") or "").strip()
    if status in FAILED_STATUSES:
        return [("not analysed", "error", message or status)]
    total = _number(row.get("events_total"))
    singlets = _number(row.get("events_singlets"))
    if assay == "apoptosis":
        counts = [_number(row.get(f"{q}_n")) for q in ("viable", "early_apoptotic", "late_apoptotic",
                                                       "necrotic")]
        analysed = sum(counts) if all(math.isfinite(c) for c in counts) else singlets
        if math.isfinite(analysed) and analysed < limits.min_apoptosis_cells:
            flags.append(("low event count", "warn",
                          f"{analysed:,.0f} cells analysed (< {limits.min_apoptosis_cells:,})"))
        gates = "the debris and singlet gates"
    else:
        if math.isfinite(singlets) and singlets < limits.min_cellcycle_singlets:
            flags.append(("low event count", "warn",
                          f"{singlets:,.0f} singlets (< {limits.min_cellcycle_singlets:,})"))
        cv = _number(row.get("g1_cv_pct"))
        if math.isfinite(cv) and cv > limits.max_g1_cv_pct:
            flags.append(("high G1 CV", "warn", f"G0/G1 CV {cv:.1f}% (> {limits.max_g1_cv_pct:g}%)"))
        rcs = _number(row.get("rcs"))
        lo, hi = limits.rcs_range
        if math.isfinite(rcs) and not lo <= rcs <= hi:
            flags.append(("RCS out of range", "warn", f"RCS {rcs:.2f} (outside [{lo:g}, {hi:g}])"))
        gates = "doublet discrimination"
    if math.isfinite(total) and math.isfinite(singlets) and total > 0:
        loss = 1.0 - singlets / total
        if loss > limits.max_pregate_loss:
            flags.append(("pre-gate loss", "warn",
                          f"{100 * loss:.0f}% of {total:,.0f} events removed by {gates} "
                          f"(> {100 * limits.max_pregate_loss:.0f}%)"))
    if status == "warn":
        rest = _uncovered(message, {flag for flag, _, _ in flags})
        if rest or not flags:
            flags.append(("warning", "warn", rest or message or "status warn"))
    return flags


# The parts of the analyses' warning messages that a flag above already says (not repeated).
_COVERED = {
    "low event count": (r"only \d+ cells left after pre-gating \(< [\d,]+\); percentages are coarse",
                        r"only \d+ singlets \(< [\d,]+\)"),
    "high G1 CV": (r"G1 CV [\d.]+% > [\d.]+%",),
    "RCS out of range": (r"RCS [\d.]+ [<>] [\d.]+ \([^)]*\)",),
}


def _uncovered(message: str, flags: set[str]) -> str:
    """The message without the parts that the given flags already say."""
    import re

    rest = message
    for flag in flags & set(_COVERED):
        for pattern in _COVERED[flag]:
            rest = re.sub(pattern, "", rest)
    parts = [p.strip() for p in rest.split(";")]
    return "; ".join(p for p in parts if p)


def qc_flags(result: ExperimentResult, *, limits: QCLimits = QC_LIMITS) -> pd.DataFrame:
    """Quality flags of every sample of a run, one row per flag.

    Flags: ``not analysed`` (status error/failed, with the reason), ``low event count``,
    ``high G1 CV``, ``RCS out of range``, ``pre-gate loss`` and ``warning`` (status warn,
    with the analysis's message), each against :class:`QCLimits`.

    Parameters
    ----------
    result
        The run.
    limits
        The limits (default: those of the analyses' own warnings).

    Returns
    -------
    pandas.DataFrame
        Columns ``assay``, ``file``, ``cell_line``, ``treatment``, ``replicate``, ``flag``,
        ``severity`` (``warn`` or ``error``) and ``detail``; samples in table order.
    """
    rows = []
    for assay in ("apoptosis", "cellcycle"):
        frame = result.apoptosis if assay == "apoptosis" else result.cellcycle
        for _, row in frame.iterrows():
            for flag, severity, detail in _sample_flags(assay, row, limits):
                rows.append({"assay": assay, "file": row.get("file"), "cell_line": row.get("cell_line"),
                             "treatment": row.get("treatment"), "replicate": row.get("replicate"),
                             "flag": flag, "severity": severity, "detail": detail})
    return pd.DataFrame(rows, columns=QC_COLUMNS)


# ============================================================================ figure files
def write_figures(
    result: ExperimentResult,
    out_dir: str | os.PathLike[str],
    formats: Sequence[str] = ("png", "svg", "pdf"),
    *,
    dpi: float = 300,
    n_jobs: int = 1,
) -> list[Path]:
    """Write the standard figures of a run under ``out_dir/figures/``.

    The figures of :func:`cytoflow_res.plotting.experiment.figure_specs`, in the publication
    style, each as ``figures/<name>.<format>``. SVG text stays editable, PDF fonts are
    embedded, and no file holds a date, so the same run gives the same files. A figure that
    cannot be drawn (e.g. a cell line whose samples all failed) is logged as a warning and
    left out; the others are written.

    Parameters
    ----------
    result
        The run.
    out_dir
        Output folder (``figures/`` is made in it).
    formats
        File formats (any matplotlib writes).
    dpi
        Resolution of PNG files and of the rasterized densities in SVG/PDF.
    n_jobs
        Worker processes drawing figures side by side (each holds a copy of ``result`` and
        matplotlib: about 0.5 GB at the peak of a 300 dpi figure). The files are the same.

    Returns
    -------
    list of pathlib.Path
        The files written, figure by figure, in the order of ``formats``.
    """
    from cytoflow_res.plotting.experiment import figure_specs

    folder = Path(out_dir) / "figures"
    specs = figure_specs(result)
    written: list[Path] = []
    if n_jobs > 1 and len(specs) >= _MIN_PARALLEL_FIGURES:
        with _render_pool(result, n_jobs) as pool:
            futures = [pool.submit(_figure_task, i, str(folder), tuple(formats), dpi)
                       for i in range(len(specs))]
            for future in futures:  # in spec order
                written += future.result()
    else:
        for spec in specs:
            written += _write_figure(spec, folder, formats, dpi)
    log.info("wrote %d figure files to %s", len(written), folder)
    return written


def _write_figure(spec: FigureSpec, folder: Path, formats: Sequence[str], dpi: float) -> list[Path]:
    import matplotlib.pyplot as plt

    from cytoflow_res.plotting.style import save_figure

    fig = _build(spec)
    if fig is None:
        return []
    try:
        return save_figure(fig, folder / spec.name, formats=formats, dpi=dpi)
    finally:
        plt.close(fig)


# ---------------------------------------------------------------------------- parallel drawing
#: Below these counts a pool's start-up (about 1.5 s per worker) costs more than it saves.
_MIN_PARALLEL_FIGURES = 4
_MIN_PARALLEL_THUMBNAILS = 16

_worker_result: ExperimentResult | None = None


def _init_render_worker(result: ExperimentResult) -> None:
    """Pool initializer: the run arrives once per worker, not once per task."""
    global _worker_result
    import matplotlib

    from cytoflow_res.experiment import _limit_worker_threads

    matplotlib.use("Agg")
    _limit_worker_threads()
    _worker_result = result


def _render_pool(result: ExperimentResult, n_jobs: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=n_jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_render_worker, initargs=(result,))


def _figure_task(index: int, folder: str, formats: tuple[str, ...], dpi: float) -> list[Path]:
    from cytoflow_res.plotting.experiment import figure_specs

    if _worker_result is None:  # pragma: no cover - the initializer always runs first
        msg = "render worker started without a run"
        raise RuntimeError(msg)
    return _write_figure(figure_specs(_worker_result)[index], Path(folder), formats, dpi)


Thumbnail = tuple[bytes, int, int] | str | None


def _thumbnail_task(items: list[tuple[str, int, str]], dpi: float) -> list[Thumbnail]:
    """Draw a chunk of the gallery's thumbnails in a worker (see :class:`_Thumbnails`)."""
    from cytoflow_res.plotting.style import publication_style

    if _worker_result is None:  # pragma: no cover - the initializer always runs first
        msg = "render worker started without a run"
        raise RuntimeError(msg)
    with publication_style(size=5.5):
        drawer = _Thumbnails(_worker_result, dpi)
        try:
            return [drawer.draw(assay, position, file) for assay, position, file in items]
        finally:
            drawer.close()


def _build(spec: FigureSpec) -> Figure | None:
    """The figure of a spec, or None (logged) when it cannot be drawn."""
    import matplotlib.pyplot as plt

    before = set(plt.get_fignums())
    try:
        return spec.build()
    except (CytoflowResError, ValueError, KeyError) as exc:
        for number in set(plt.get_fignums()) - before:  # a half-drawn figure
            plt.close(number)
        log.warning("figure %s not drawn: %s", spec.name, exc)
        return None


# ============================================================================ HTML helpers
def _e(value: Any) -> str:
    """Text for HTML: every value from a file or the design goes through here."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    return html.escape(str(value), quote=True)


def _fmt(value: Any, digits: int = 1) -> str:
    number = _number(value)
    if not math.isfinite(number):
        return "" if value is None or value is pd.NA or isinstance(value, float) else _e(value)
    return f"{number:.{digits}f}"


def _p(value: Any) -> str:
    p = _number(value)
    if not math.isfinite(p):
        return "n/a"
    return "&lt;0.0001" if p < 1e-4 else f"{p:.3g}"


def _int(value: Any) -> str:
    number = _number(value)
    return f"{number:,.0f}" if math.isfinite(number) else ""


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], *, cls: str = "") -> str:
    """An HTML table; header and cells must already be HTML (escaped)."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _details(summary: str, body: str, *, open_: bool = False) -> str:
    return f"<details{' open' if open_ else ''}><summary>{summary}</summary>{body}</details>"


def _badge(text: str, kind: str) -> str:
    return f'<span class="badge {_e(kind)}">{_e(text)}</span>'


def _png(fig: Figure, dpi: float) -> tuple[bytes, int, int]:
    """The figure as PNG bytes (no metadata that varies), with its size in pixels."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    data = buffer.getvalue()
    return _shrink(data)


def _shrink(data: bytes, *, scale: float = 1.0) -> tuple[bytes, int, int]:
    """A PNG with at most 256 colours (plots have few), optionally scaled; with its size."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        rgb = image.convert("RGB")
    if scale < 1.0:
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        rgb = rgb.resize(size, Image.Resampling.LANCZOS)
    small = rgb.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    out = io.BytesIO()
    small.save(out, format="PNG", optimize=True)
    return out.getvalue(), rgb.width, rgb.height


def _img(data: bytes, width: int, height: int, alt: str, *, display: float = 1.0, cls: str = "") -> str:
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    w, h = round(width * display), round(height * display)
    attr = f' class="{cls}"' if cls else ""
    return f'<img{attr} src="{uri}" width="{w}" height="{h}" alt="{_e(alt)}">'


# ============================================================================ sections
_CSS = """
:root { --ink: #1a1a1a; --muted: #5f6368; --line: #d9d9d9; --bg: #f6f7f8; --ok: #1b7837;
        --warn: #9a5b00; --error: #b2182b; }
* { box-sizing: border-box; }
body { font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--ink); margin: 0; background: white; }
main { max-width: 1280px; margin: 0 auto; padding: 16px 28px 48px; }
h1 { font-size: 24px; margin: 8px 0 2px; }
h2 { font-size: 19px; margin: 32px 0 8px; padding-top: 8px; border-top: 2px solid var(--ink); }
h3 { font-size: 16px; margin: 22px 0 6px; }
h4 { font-size: 14px; margin: 14px 0 4px; }
p.sub, .muted { color: var(--muted); }
nav { position: sticky; top: 0; background: white; border-bottom: 1px solid var(--line);
      padding: 6px 28px; z-index: 2; font-size: 13px; }
nav a { margin-right: 16px; color: var(--ink); text-decoration: none; }
nav a:hover { text-decoration: underline; }
.banner { padding: 10px 14px; border-radius: 6px; margin: 12px 0; font-weight: 600; }
.banner.ok { background: #e6f4ea; color: var(--ok); }
.banner.warn { background: #fff4e0; color: var(--warn); }
.banner.error { background: #fde8e8; color: var(--error); }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 3px 10px 3px 0; text-align: left;
         vertical-align: top; }
th { font-weight: 600; border-bottom: 1.5px solid var(--ink); white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.kv th { border-bottom: 1px solid var(--line); font-weight: 600; padding-right: 16px; }
code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 12px;
              overflow-wrap: anywhere; }
details { margin: 6px 0 14px; }
summary { cursor: pointer; color: var(--muted); font-weight: 600; }
.badge { display: inline-block; padding: 0 6px; border-radius: 9px; font-size: 11.5px; font-weight: 600;
         margin: 0 3px 2px 0; white-space: nowrap; }
.badge.ok, .badge.synergy { background: #e6f4ea; color: var(--ok); }
.badge.warn { background: #fff4e0; color: var(--warn); }
.badge.error, .badge.failed, .badge.antagonism { background: #fde8e8; color: var(--error); }
.badge.additive, .badge.undetermined { background: #eceff1; color: var(--muted); }
figure.fig { margin: 14px 0 26px; }
figure.fig img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figure.fig figcaption { max-width: 900px; font-size: 13px; color: var(--muted); margin-top: 4px; }
figure.fig figcaption b { color: var(--ink); }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(470px, 1fr)); gap: 12px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 8px; margin: 0; background: white; }
.card.warn { border-left: 4px solid #e69f00; }
.card.error { border-left: 4px solid var(--error); background: #fffafa; }
.card img { max-width: 100%; height: auto; display: block; }
.card .name { font-weight: 600; word-break: break-all; }
.card .meta { font-size: 12px; color: var(--muted); }
.card ul { margin: 4px 0 0 18px; padding: 0; font-size: 12px; }
.nothing { color: var(--muted); font-style: italic; }
ul.glance { margin: 4px 0; padding-left: 20px; }
ul.glance li { margin: 2px 0; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
@media print { nav { display: none; } .card, figure.fig { break-inside: avoid; } }
"""

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

_MEASURES = {
    "apoptosis": ("viable_pct", "early_apoptotic_pct", "late_apoptotic_pct", "necrotic_pct",
                  "total_apoptotic_pct"),
    "cellcycle": ("g0g1_pct", "s_pct", "g2m_pct", "sub_g1_pct"),
}
_ASSAY_NAMES = {"apoptosis": "Apoptosis (Annexin V / PI)", "cellcycle": "Cell cycle (PI DNA content)"}


def _measure(measure: Any) -> str:
    from cytoflow_res.plotting.summary import measure_label

    return _e(measure_label(str(measure)))


def _arm_rank(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted by cell line (first appearance) then arm (vehicle, singles, combinations)."""
    from cytoflow_res.plotting.summary import arm_order

    if frame.empty or "treatment" not in frame.columns:
        return frame
    lines = {line: i for i, line in enumerate(dict.fromkeys(frame["cell_line"].astype(str)))}
    arms = {arm: i for i, arm in enumerate(arm_order(frame["treatment"].astype(str).tolist()))}
    key = [(lines.get(str(c), 0), arms.get(str(t), 0))
           for c, t in zip(frame["cell_line"], frame["treatment"], strict=True)]
    order = sorted(range(len(frame)), key=lambda i: key[i])
    return frame.iloc[order]


def _run_section(result: ExperimentResult, record: Mapping[str, Any]) -> str:
    design = result.design
    table = design.table
    parts = ['<h2 id="run">Run</h2>']
    samples = table[table["role"] == "sample"]
    counts = ", ".join(f"{int((samples['assay'] == a).sum())} {a} samples" for a in ("apoptosis", "cellcycle")
                       if (samples["assay"] == a).any())
    n_controls = int((table["role"] != "sample").sum())
    env = record.get("environment", {})
    kv = [
        ("Design sheet", f"{_e(design.sheet.name)}<br><span class='mono'>{_e(design.sheet)}</span>"),
        ("Sheet SHA-256", f"<span class='mono'>{_e(record.get('design', {}).get('sha256'))}</span>"),
        ("Files", f"{len(table)} ({_e(counts)}; {n_controls} controls)"),
        ("Started / finished (UTC)",
         f"{_e(result.started)} / {_e(result.finished)} ({result.seconds:.1f} s, executor "
         f"{_e(result.settings.get('executor'))})"),
        ("cytoflow_res", _e(record.get("cytoflow_res_version", __version__))),
        ("Python", f"{_e(env.get('python'))} ({_e(env.get('implementation'))}) on {_e(env.get('platform'))}"),
        ("Statistics seed", _e(record.get("settings", {}).get("stats_seed"))),
    ]
    parts.append(_table(["", ""], [(f"<b>{k}</b>", v) for k, v in kv], cls="kv"))
    packages = env.get("packages", {}) or {}
    versions = [(_e(k), _e(v if v is not None else "not installed")) for k, v in packages.items()]
    parts.append(_details("Package versions", _table(["Package", "Version"], versions)))

    parts.append("<h3>Templates</h3>")
    templates = record.get("templates", {}) or {}
    rows: list[tuple[str, ...]] = [
        (_e(assay), _e(t.get("name")), f"<span class='mono'>{_e(t.get('sha256'))}</span>",
         f"<span class='mono'>{_e(t.get('source'))}</span>") for assay, t in templates.items()]
    if "cellcycle" not in templates and not result.cellcycle.empty:
        rows.append(("cellcycle", "none (DNA channel found by name)", "", ""))
    parts.append(_table(["Assay", "Template", "SHA-256 of its settings", "Source"], rows)
                 if rows else "<p class='nothing'>No template.</p>")

    thresholds = record.get("thresholds", {}) or {}
    if thresholds:
        parts.append("<h3>Apoptosis thresholds per group</h3>")
        rows = []
        for group, thr in thresholds.items():
            if "error" in thr:
                reason = _badge("no thresholds", "error") + " " + _e(thr["error"])
                rows.append((_e(group), "", "", "", "", reason, ""))
                continue
            comp = thr.get("compensation")
            comp_text = _e(comp if isinstance(comp, str) else f"matrix from {comp.get('source')}")
            channels = _group_channels(result, str(group))
            notes = "; ".join(str(n) for n in [*thr.get("threshold_notes", []), *thr.get("notes", [])])
            rows.append((_e(group), f"<span class='num'>{_fmt(thr.get('annexin_threshold'), 1)}</span>",
                         f"<span class='num'>{_fmt(thr.get('pi_threshold'), 1)}</span>", _e(channels),
                         _e(thr.get("threshold_method")), _e(thr.get("threshold_source")) +
                         (f"<br><span class='muted'>{_e(notes)}</span>" if notes else ""), comp_text))
        parts.append(_table(["Group", "Annexin V &ge;", "PI &ge;", "Channels (Annexin V / PI)", "Method",
                             "Source", "Compensation"], rows))
        parts.append("<p class='muted'>Thresholds are in compensated data units; a cell is positive at or "
                     "above the threshold. Every sample of a group is gated with its group's thresholds.</p>")

    cc_settings = result.settings.get("cellcycle")
    if isinstance(cc_settings, Mapping) and not result.cellcycle.empty:
        parts.append("<h3>Cell-cycle fit settings</h3>")
        parts.append(_table(["Setting", "Value"], [(_e(k), _e("default" if v is None else v))
                                                   for k, v in cc_settings.items()], cls="kv"))
    parts.append(_details(f"Design sheet ({len(table)} rows)", _design_table(result)))
    warnings = list(design.warnings)
    if warnings:
        items = "".join(f"<li>{_e(w)}</li>" for w in warnings)
        parts.append(f"<h3>Design warnings</h3><ul>{items}</ul>")
    return "".join(parts)


def _group_channels(result: ExperimentResult, group: str) -> str:
    """The Annexin V and PI channels the samples of a group were gated on."""
    apo = result.apoptosis
    if apo.empty or not {"group", "annexin_channel", "pi_channel"} <= set(apo.columns):
        return ""
    rows = apo[(apo["group"].astype(str) == group) & apo["annexin_channel"].notna()]
    pairs = dict.fromkeys(f"{a} / {p}" for a, p in zip(rows["annexin_channel"], rows["pi_channel"],
                                                       strict=True))
    return "; ".join(pairs)


def _glance(result: ExperimentResult) -> str:
    """The combination calls, first: what the experiment was for."""
    synergy = result.synergy()
    if synergy.empty:
        return ""
    items = []
    for _, r in synergy[synergy["metric"] == "Bliss/HSA"].iterrows():
        items.append(
            f"<li>{_e(r.get('cell_line'))}, {_measure(r.get('measure'))}: "
            f"{_badge(str(r.get('call')), str(r.get('call')))} Bliss excess {_points(r.get('bliss_excess'))} "
            f"points [{_points(r.get('bliss_ci_low'))}, {_points(r.get('bliss_ci_high'))}], "
            f"p = {_p(r.get('bliss_p'))}</li>")
    ct = synergy[synergy["metric"] == "Chou-Talalay"]
    if "kind" in ct.columns:
        ct = ct[ct["kind"] == "fa_level"]
    for _, r in ct.iterrows():
        items.append(
            f"<li>{_e(r.get('cell_line'))}, {_measure(r.get('measure'))}, {_e(r.get('agent'))}: "
            f"{_badge(str(r.get('call')), str(r.get('call')))} CI {_fmt(r.get('ci'), 2)} at fa "
            f"{_fmt(r.get('fa'), 2)}</li>")
    if not items:
        return ""
    return ("<h3>Combination effect at a glance</h3><ul class='glance'>" + "".join(items) + "</ul>"
            "<p class='muted'>Details in <a href='#synergy'>Combination effect</a>.</p>")


def _design_table(result: ExperimentResult) -> str:
    table = result.design.table
    columns = [c for c in table.columns if c not in ("path", "sheet_row")]
    rows = [[_e(row[c]) for c in columns] for _, row in table.iterrows()]
    return _table([_e(c) for c in columns], rows)


def _summary_tables(result: ExperimentResult) -> str:
    summary = result.summary()
    if summary.empty:
        return "<p class='nothing'>No usable samples to summarise.</p>"
    parts = []
    for assay in ("apoptosis", "cellcycle"):
        sub = summary[summary["assay"] == assay]
        if sub.empty:
            continue
        measures = [m for m in _MEASURES[assay] if m in set(sub["measure"].astype(str))]
        parts.append(f"<h4>{_e(_ASSAY_NAMES[assay])}</h4>")
        arms = _arm_rank(sub[["cell_line", "treatment"]].drop_duplicates())
        rows = []
        for _, arm in arms.iterrows():
            part = sub[(sub["cell_line"] == arm["cell_line"]) & (sub["treatment"] == arm["treatment"])]
            by_measure = {str(r["measure"]): r for _, r in part.iterrows()}
            n = max((int(r["n"]) for r in by_measure.values()), default=0)
            excluded = max((int(r["n_excluded"]) for r in by_measure.values()
                            if math.isfinite(_number(r.get("n_excluded")))), default=0)
            cells = [_e(arm["cell_line"]), _e(arm["treatment"]),
                     f"{n}" + (f" <span class='muted'>({excluded} excluded)</span>" if excluded else "")]
            for m in measures:
                r = by_measure.get(m)
                if r is None or not math.isfinite(_number(r["mean"])):
                    cells.append("")
                    continue
                sd = _number(r["sd"])
                mean = _fmt(r["mean"])
                cells.append(f"{mean} &plusmn; {_fmt(sd)}" if math.isfinite(sd) else mean)
            rows.append(cells)
        parts.append(_table(["Cell line", "Arm", "n", *(_measure(m) for m in measures)], rows, cls="summary"))
    parts.append("<p class='muted'>Mean &plusmn; SD of the replicates (n per arm; samples that failed are "
                 "excluded). SEM and 95% confidence intervals are in the full table.</p>")
    full = summary.copy()
    rows = [[_e(r["assay"]), _e(r["cell_line"]), _e(r["treatment"]), _measure(r["measure"]), _int(r["n"]),
             _int(r.get("n_excluded")), _fmt(r["mean"], 2), _fmt(r["sd"], 2), _fmt(r["sem"], 2),
             f"{_fmt(r['ci95_low'], 2)} to {_fmt(r['ci95_high'], 2)}"] for _, r in full.iterrows()]
    parts.append(_details("All summary statistics (mean, SD, SEM, 95% CI)", _table(
        ["Assay", "Cell line", "Arm", "Measure", "n", "Excluded", "Mean", "SD", "SEM", "95% CI"], rows)))
    return "".join(parts)


def _comparison_rows(frame: pd.DataFrame) -> list[list[str]]:
    rows = []
    for _, r in frame.iterrows():
        mark = str(r.get("mark") or "")
        rows.append([
            _e(r.get("assay")), _e(r.get("cell_line")), _measure(r.get("measure")), _e(r.get("comparison")),
            f"{_e(r.get('group2'))} vs {_e(r.get('group1'))}", f"{_int(r.get('n2'))} / {_int(r.get('n1'))}",
            f"{_number(r.get('mean_diff')):+.2f}" if math.isfinite(_number(r.get("mean_diff"))) else "",
            _p(r.get("p_value")), f"{_e(r.get('test'))} ({_e(r.get('correction'))})", f"<b>{_e(mark)}</b>",
        ])
    return rows


def _test_name(test: Any, correction: Any) -> str:
    test, correction = str(test), str(correction)
    if correction in ("", "none", "nan") or correction.lower() in test.lower():
        return test
    return f"{test}, {correction}-adjusted"


def _comparison_matrix(frame: pd.DataFrame, assay: str) -> str:
    """One row per comparison, one column per measure: mark, difference and p."""
    sub = frame[frame["assay"] == assay]
    measures = [m for m in _MEASURES[assay] if m in set(sub["measure"].astype(str))]
    keys = list(dict.fromkeys(zip(sub["cell_line"].astype(str), sub["comparison"].astype(str),
                                  sub["group1"].astype(str), sub["group2"].astype(str), strict=True)))
    cells: dict[tuple[str, str, str, str, str], pd.Series] = {}
    for _, r in sub.iterrows():
        cells[(str(r["cell_line"]), str(r["comparison"]), str(r["group1"]), str(r["group2"]),
               str(r["measure"]))] = r
    rows = []
    for line, family, g1, g2 in keys:
        first = next(cells[(line, family, g1, g2, m)] for m in measures if (line, family, g1, g2, m) in cells)
        row = [_e(line), f"{_e(g2)} vs {_e(g1)}", _e(_test_name(first.get("test"), first.get("correction"))),
               f"{_int(first.get('n2'))} / {_int(first.get('n1'))}"]
        for m in measures:
            r = cells.get((line, family, g1, g2, m))
            if r is None:
                row.append("")
                continue
            diff = _number(r.get("mean_diff"))
            shown = f"{diff:+.1f}" if math.isfinite(diff) else ""
            p_text = _p(r.get("p_value"))
            row.append(f"<b>{_e(r.get('mark'))}</b> <span class='muted'>{shown}, p {p_text}</span>")
        rows.append(row)
    return _table(["Cell line", "Arms", "Test", "n", *(_measure(m) for m in measures)], rows,
                  cls="comparisons")


def _comparison_tables(result: ExperimentResult) -> str:
    from cytoflow_res.plotting.experiment import BAR_FAMILIES

    comps = result.comparisons()
    if comps.empty:
        return "<p class='nothing'>No comparison could be made (see the notes).</p>"
    main = comps[comps["comparison"].isin(BAR_FAMILIES)]
    parts = []
    for assay in ("apoptosis", "cellcycle"):
        if (main["assay"] == assay).any():
            parts.append(f"<h4>{_e(_ASSAY_NAMES[assay])}</h4>{_comparison_matrix(main, assay)}")
    if not parts:
        parts.append("<p class='nothing'>No comparison against the vehicle or the single agents.</p>")
    parts.append("<p class='muted'>Each arm against the vehicle and the combination against each single "
                 "agent, per cell line, with the test named. Cells: significance mark, difference of the "
                 "means (first arm named minus second, percentage points) and adjusted p. * p &lt; 0.05, "
                 "** p &lt; 0.01, *** p &lt; 0.001, **** p &lt; 0.0001, ns not significant.</p>")
    header = ["Assay", "Cell line", "Measure", "Family", "Arms", "n", "Difference", "p", "Test", ""]
    if not main.empty:
        parts.append(_details(f"The same as one list ({len(main)} rows)",
                              _table(header, _comparison_rows(main))))
    pairwise = comps[comps["comparison"] == "pairwise"]
    if not pairwise.empty:
        parts.append(_details(f"All pairs (Tukey HSD, {len(pairwise)} rows)",
                              _table(header, _comparison_rows(pairwise))))
    anova = comps[comps["comparison"] == "cell line x treatment"]
    if not anova.empty:
        rows = [[_e(r.get("assay")), _measure(r.get("measure")), _e(r.get("term")), _fmt(r.get("df"), 0),
                 _fmt(r.get("statistic"), 2), _p(r.get("p_value")), f"<b>{_e(r.get('mark'))}</b>"]
                for _, r in anova.iterrows()]
        parts.append(_details(f"Cell line x treatment, two-way ANOVA (Type II, {len(anova)} rows)",
                              _table(["Assay", "Measure", "Term", "df", "F", "p", ""], rows)))
    return "".join(parts)


def _points(value: Any) -> str:
    number = _number(value)
    return f"{100 * number:+.1f}" if math.isfinite(number) else ""


def _synergy_tables(result: ExperimentResult) -> str:
    synergy = result.synergy()
    if synergy.empty:
        return "<p class='nothing'>No combination metric could be computed (see the notes).</p>"
    parts = []
    bliss = synergy[synergy["metric"] == "Bliss/HSA"]
    if not bliss.empty:
        rows = []
        for _, r in bliss.iterrows():
            rows.append([
                _e(r.get("assay")), _e(r.get("cell_line")), _measure(r.get("measure")),
                f"{_e(r.get('arm_a'))} / {_e(r.get('arm_b'))} / {_e(r.get('arm_ab'))}",
                " / ".join(_fmt(100 * _number(r.get(k))) for k in ("fa_a", "fa_b", "fa_ab")),
                _fmt(100 * _number(r.get("bliss_expected"))),
                f"{_points(r.get('bliss_excess'))} [{_points(r.get('bliss_ci_low'))}, "
                f"{_points(r.get('bliss_ci_high'))}]", _p(r.get("bliss_p")),
                f"{_points(r.get('hsa_excess'))} [{_points(r.get('hsa_ci_low'))}, "
                f"{_points(r.get('hsa_ci_high'))}]", _p(r.get("hsa_p")),
                _badge(str(r.get("call")), str(r.get("call"))),
            ])
        parts.append("<h3>Bliss independence and highest single agent</h3>")
        parts.append(_table(["Assay", "Cell line", "Measure", "Arms A / B / A+B", "fa A / B / A+B (%)",
                             "Bliss expected (%)", "Bliss excess [95% CI]", "p", "HSA excess [95% CI]",
                             "p", "Call"], rows))
        method = ", ".join(dict.fromkeys(str(m) for m in bliss.get("method", pd.Series(dtype=str))))
        parts.append(f"<p class='muted'>fa: vehicle-corrected fraction affected. Excess in percentage points "
                     f"of fa (observed minus expected); confidence intervals by {_e(method)}.</p>")
    ct = synergy[synergy["metric"] == "Chou-Talalay"]
    if not ct.empty:
        parts.append("<h3>Chou-Talalay combination index</h3>")
        fits = ct[ct["kind"] == "fit"]
        rows = [[_e(r.get("assay")), _e(r.get("cell_line")), _measure(r.get("measure")), _e(r.get("agent")),
                 _fmt(r.get("dm"), 3), _fmt(r.get("m"), 2), _fmt(r.get("r"), 3), _e(r.get("n_doses")),
                 _e(r.get("note"))] for _, r in fits.iterrows()]
        parts.append(_table(["Assay", "Cell line", "Measure", "Agent", "Dm", "m", "r", "Doses", "Note"],
                            rows))
        levels = ct[ct["kind"].isin(["fa_level", "point"])]
        rows = [[_e(r.get("assay")), _e(r.get("cell_line")), _measure(r.get("measure")), _e(r.get("agent")),
                 "fitted" if r.get("kind") == "fa_level" else "tested",
                 f"{_fmt(r.get('dose_a'), 3)} + {_fmt(r.get('dose_b'), 3)}", _fmt(r.get("fa"), 3),
                 _fmt(r.get("ci"), 3), f"{_fmt(r.get('dri_a'), 2)} / {_fmt(r.get('dri_b'), 2)}",
                 _badge(str(r.get("call")), str(r.get("call"))), _e(r.get("note"))]
                for _, r in levels.iterrows()]
        parts.append(_table(["Assay", "Cell line", "Measure", "Series", "CI at", "Doses A + B", "fa", "CI",
                             "DRI A / B", "Call", "Note"], rows))
        parts.append("<p class='muted'>CI &lt; 0.9 synergy, 0.9-1.1 additive, &gt; 1.1 antagonism "
                     "(Chou 2006); CI from replicate means, without confidence intervals.</p>")
    return "".join(parts)


def _figure_section(result: ExperimentResult, figures: Sequence[str | os.PathLike[str]] | None,
                    dpi: float) -> tuple[str, list[str]]:
    """The figures as HTML, and the names of those that could not be drawn."""
    import matplotlib.pyplot as plt

    from cytoflow_res.plotting.experiment import figure_specs
    from cytoflow_res.plotting.style import publication_style

    specs = figure_specs(result)
    parts: list[str] = []
    missing: list[str] = []
    if figures is not None:
        by_name = {spec.name: spec for spec in specs}
        rank = {spec.name: i for i, spec in enumerate(specs)}
        pngs = [Path(p) for p in figures if Path(p).suffix.lower() == ".png"]
        pngs.sort(key=lambda path: rank.get(path.stem, len(rank)))  # report order; others last
        for path in pngs:
            spec = by_name.get(path.stem)
            data, width, height = _embed_file(path, dpi)
            parts.append(_figure_html(data, width, height, spec.title if spec else path.stem,
                                      spec.caption if spec else "", path.name))
        if pngs:  # figures=[] asks for none; otherwise those not given were not drawn
            missing = [spec.name for spec in specs if spec.name not in {p.stem for p in pngs}]
        else:
            parts.append("<p class='nothing'>No figures in this report.</p>")
    else:
        for spec in specs:
            fig = _build(spec)
            if fig is None:
                missing.append(spec.name)
                continue
            try:
                with publication_style():
                    data, width, height = _png(fig, dpi)
            finally:
                plt.close(fig)
            parts.append(_figure_html(data, width, height, spec.title, spec.caption, f"{spec.name}.png"))
    if not parts:
        parts.append("<p class='nothing'>No figure could be drawn.</p>")
    return "".join(parts), missing


def _embed_file(path: Path, dpi: float) -> tuple[bytes, int, int]:
    """A PNG file for the report, scaled down to ``dpi`` if it was written finer."""
    from PIL import Image

    data = path.read_bytes()
    with Image.open(io.BytesIO(data)) as image:
        file_dpi = float((image.info.get("dpi") or (dpi, dpi))[0])
    return _shrink(data, scale=min(1.0, dpi / file_dpi) if file_dpi > 0 else 1.0)


def _figure_html(data: bytes, width: int, height: int, title: str, caption: str, file: str) -> str:
    # at 150 dpi and 1 image pixel per CSS pixel the 7 pt text of a journal figure reads easily
    image = _img(data, width, height, title)
    return (f"<figure class='fig'>{image}<figcaption><b>{_e(title)}.</b> {_e(caption)} "
            f"<span class='mono'>figures/{_e(file)}</span></figcaption></figure>")


# ============================================================================ QC gallery
def _keywords(path: Any, dataset: int) -> dict[str, str]:
    from cytoflow_res.io.fcs import read_header

    try:
        header = read_header(Path(str(path)), dataset=dataset)
    except (CytoflowResError, OSError):
        return {}
    keys = ("$FIL", "$CYT", "$DATE", "$BTIM", "$TOT")
    return {k: header.keywords[k] for k in keys if header.keywords.get(k, "").strip()}


class _Thumbnails:
    """Draws the gallery's thumbnails, reusing two figures.

    A new figure per sample spends most of its time creating tick artists; clearing the data
    artists of the same axes and drawing the next sample keeps them. Every plot function
    used sets its own limits, ticks, labels and title, so nothing of one sample is left on
    the next. Positions are fixed (no layout engine), so all thumbnails line up.
    """

    def __init__(self, result: ExperimentResult, dpi: float) -> None:
        import matplotlib.pyplot as plt

        from cytoflow_res.plotting.style import mm

        self.result = result
        self.dpi = dpi
        self.apoptosis = plt.figure(figsize=(mm(122), mm(42)))
        self.apo_axes = [self.apoptosis.add_axes((0.075 + 0.335 * i, 0.2, 0.235, 0.66)) for i in range(3)]
        self.cellcycle = plt.figure(figsize=(mm(100), mm(42)))
        self.dna = self.cellcycle.add_axes((0.1, 0.4, 0.87, 0.53))
        self.residuals = self.cellcycle.add_axes((0.1, 0.15, 0.87, 0.16), sharex=self.dna)

    def close(self) -> None:
        import matplotlib.pyplot as plt

        plt.close(self.apoptosis)
        plt.close(self.cellcycle)

    def draw(self, assay: str, position: int, file: str) -> Thumbnail:
        """The thumbnail of row ``position`` of the ``assay`` table (PNG, or why there is none)."""
        if assay == "apoptosis":
            return self.apoptosis_sample(file)
        return self.cellcycle_sample(self.result.cellcycle_fits[position])

    @staticmethod
    def _clear(ax: Any) -> None:
        for artist in [*ax.collections, *ax.lines, *ax.patches, *ax.texts, *ax.images]:
            artist.remove()
        if ax.get_legend() is not None:
            ax.get_legend().remove()
        # Forget the data limits of the samples drawn before, or autoscaled axes (the residuals)
        # would span every earlier sample too.
        ax.relim()
        ax.ignore_existing_data_limits = True
        ax.autoscale(True)
        ax.set_axis_on()

    @staticmethod
    def _small_text(ax: Any) -> None:
        for text in [*ax.texts, ax.title, ax.xaxis.label, ax.yaxis.label]:
            text.set_fontsize(min(float(text.get_fontsize()), 6.0))
        ax.tick_params(labelsize=5)

    def apoptosis_sample(self, file: str) -> tuple[bytes, int, int] | str:
        """Pre-gates and quadrants of one sample as a PNG strip, or why there is none."""
        from cytoflow_res.plotting.apoptosis import plot_apoptosis, plot_gating_steps
        from cytoflow_res.plotting.experiment import (
            _corner_percentages,
            _drop_negative_labels,
            apoptosis_result,
        )

        try:
            res = apoptosis_result(self.result, file)
        except CytoflowResError as exc:
            return str(exc)
        for ax in self.apo_axes:
            self._clear(ax)
        drawn = plot_gating_steps(res, axes=self.apo_axes[:2], bins=96)
        for ax in self.apo_axes[len(drawn):2]:
            ax.set_axis_off()
        quadrants = self.apo_axes[2]
        plot_apoptosis(res, ax=quadrants, bins=96, show_percentages=False, title="Quadrants (%)")
        _corner_percentages(quadrants, res.percentages, size=5.5)
        _drop_negative_labels(quadrants)
        for ax in self.apo_axes:
            self._small_text(ax)
        return _png(self.apoptosis, self.dpi)

    def cellcycle_sample(self, fit: Any) -> tuple[bytes, int, int] | None:
        """The fitted DNA histogram of one sample with its residuals, as a PNG."""
        import numpy as np

        from cytoflow_res.plotting.cellcycle import plot_cell_cycle_fit
        from cytoflow_res.plotting.experiment import _shown_channels

        if fit is None or getattr(fit, "histogram", None) is None:
            return None
        self._clear(self.dna)
        self._clear(self.residuals)
        hist = fit.histogram
        if getattr(fit, "params", None):
            plot_cell_cycle_fit(fit, ax=self.dna, residuals=False, legend=False, title="")
            # Pearson residuals over the fit range, as plot_cell_cycle_fit draws them
            lo, hi = hist.fit_range
            expected = fit.eval_components()["total"]
            with np.errstate(divide="ignore", invalid="ignore"):
                res = (hist.counts - expected) / np.sqrt(np.maximum(expected, 1.0))
            self.residuals.axhline(0, color="#777777", lw=0.6)
            self.residuals.plot(hist.channel_centers[lo:hi], res[lo:hi], color="#000000", lw=0.5)
        else:
            self.dna.stairs(hist.counts, hist.channel_edges, color="#BBBBBB", fill=True)
            self.dna.set_ylim(0, None)
            self.dna.set_ylabel("Events")
            self.dna.set_title("")
            self.residuals.set_axis_off()
        self.dna.set_xlim(0, _shown_channels([hist]))
        self.dna.set_xlabel("")
        self.dna.tick_params(labelbottom=False)
        self.residuals.set_ylabel("Resid.")
        self.residuals.set_xlabel(f"{hist.channel} (channel of {hist.n_bins})")
        for ax in (self.dna, self.residuals):
            self._small_text(ax)
        return _png(self.cellcycle, self.dpi)


def _card(assay: str, row: pd.Series, flags: list[tuple[str, str, str]], image: str,
          keywords: Mapping[str, str], facts: str) -> str:
    severity = "error" if any(s == "error" for _, s, _ in flags) else ("warn" if flags else "ok")
    status = str(row.get("status", ""))
    group = f"group {_e(row.get('group'))}" if assay == "apoptosis" and "group" in row.index else ""
    who = " &middot; ".join(x for x in (_e(row.get("cell_line")), _e(row.get("treatment")),
                                        f"replicate {_e(row.get('replicate'))}", group) if x)
    kw = " &middot; ".join(f"{_e(k)} <span class='mono'>{_e(v)}</span>" for k, v in keywords.items())
    flag_items = "".join(f"<li>{_badge(flag, sev)} {_e(detail)}</li>" for flag, sev, detail in flags)
    return (f"<figure class='card {severity}'>{image}<figcaption>"
            f"<div class='name'>{_e(row.get('file'))} {_badge(status, status)}</div>"
            f"<div class='meta'>{who}</div>"
            + (f"<div class='meta'>{kw}</div>" if kw else "")
            + f"<div class='meta'>{facts}</div>"
            + (f"<ul>{flag_items}</ul>" if flag_items else "")
            + "</figcaption></figure>")


def _qc_section(result: ExperimentResult, *, thumbnails: bool, dpi: float,
                limits: QCLimits, n_jobs: int = 1) -> tuple[str, int]:
    """The flags table and the gallery; returns the HTML and the number of flagged samples."""
    from cytoflow_res.plotting.style import publication_style

    items = _thumbnail_items(result) if thumbnails else []
    if n_jobs > 1 and len(items) >= _MIN_PARALLEL_THUMBNAILS:
        chunk = max(1, math.ceil(len(items) / (4 * n_jobs)))
        parts = [items[i:i + chunk] for i in range(0, len(items), chunk)]
        drawn: list[Thumbnail] = []
        with _render_pool(result, n_jobs) as pool:
            for part in pool.map(_thumbnail_task, parts, [dpi] * len(parts)):
                drawn += part
        ready = _Drawn(dict(zip(((a, p) for a, p, _ in items), drawn, strict=True)))
        return _qc_html(result, ready, limits)
    with publication_style(size=5.5):
        drawer = _Thumbnails(result, dpi) if thumbnails else None
        try:
            return _qc_html(result, drawer, limits)
        finally:
            if drawer is not None:
                drawer.close()


def _thumbnail_items(result: ExperimentResult) -> list[tuple[str, int, str]]:
    """(assay, row position, file) of every sample that gets a thumbnail (not failed)."""
    items = []
    for assay in ("apoptosis", "cellcycle"):
        frame = result.apoptosis if assay == "apoptosis" else result.cellcycle
        for position, (_, row) in enumerate(frame.iterrows()):
            if str(row.get("status")) not in FAILED_STATUSES:
                items.append((assay, position, str(row.get("file"))))
    return items


@dataclass(frozen=True)
class _Drawn:
    """Thumbnails drawn beforehand (by workers), looked up like :meth:`_Thumbnails.draw`."""

    images: dict[tuple[str, int], Thumbnail]

    def draw(self, assay: str, position: int, file: str) -> Thumbnail:
        return self.images.get((assay, position))


def _qc_html(result: ExperimentResult, drawer: _Thumbnails | _Drawn | None,
             limits: QCLimits) -> tuple[str, int]:
    dataset = int(result.settings.get("dataset") or 0)
    design = result.design.table
    paths = {(str(r["assay"]), str(r["file"])): r["path"] for _, r in design.iterrows()}
    flagged_rows: list[list[str]] = []
    counts: dict[str, int] = {}
    galleries: list[str] = []
    for assay in ("apoptosis", "cellcycle"):
        frame = result.apoptosis if assay == "apoptosis" else result.cellcycle
        if frame.empty:
            continue
        cards = []
        for position, (_, row) in enumerate(frame.iterrows()):
            file = str(row.get("file"))
            flags = _sample_flags(assay, row, limits)
            if flags:
                for flag, _, _ in flags:
                    counts[flag] = counts.get(flag, 0) + 1
                flagged_rows.append([
                    _e(assay), _e(file), _e(row.get("cell_line")), _e(row.get("treatment")),
                    _e(row.get("replicate")), "".join(_badge(flag, sev) for flag, sev, _ in flags),
                    "<br>".join(_e(detail) for _, _, detail in flags)])
            image = ""
            if drawer is not None and str(row.get("status")) not in FAILED_STATUSES:
                thumb = drawer.draw(assay, position, file)
                what = "gates and quadrants" if assay == "apoptosis" else "DNA histogram fit"
                alt = f"{what} of {file}"
                if isinstance(thumb, str):
                    image = f"<p class='nothing'>{_e(thumb)}</p>"
                elif thumb is not None:
                    image = _img(*thumb, alt=alt)
            cards.append(_card(assay, row, flags, image, _keywords(paths.get((assay, file)), dataset),
                               _facts(assay, row)))
        galleries.append(f"<h3>{_e(_ASSAY_NAMES[assay])}: {len(frame)} samples</h3>"
                         f"<div class='gallery'>{''.join(cards)}</div>")
    parts: list[str] = []
    if flagged_rows:
        tally = ", ".join(f"{_e(flag)} {n}" for flag, n in counts.items())
        parts.append(f"<p>{len(flagged_rows)} sample(s) flagged ({tally}).</p>")
        table = _table(["Assay", "File", "Cell line", "Arm", "Replicate", "Flags", "Details"], flagged_rows,
                       cls="flags")
        parts.append(_details(f"Flagged samples ({len(flagged_rows)})", table, open_=len(flagged_rows) <= 12))
    else:
        parts.append("<p>No sample flagged.</p>")
    lo, hi = limits.rcs_range
    parts.append(
        "<p class='muted'>Flags: apoptosis samples with fewer than "
        f"{limits.min_apoptosis_cells:,} analysed cells; cell-cycle samples with fewer than "
        f"{limits.min_cellcycle_singlets:,} singlets, a G0/G1 CV above {limits.max_g1_cv_pct:g}% or an RCS "
        f"outside [{lo:g}, {hi:g}]; more than {100 * limits.max_pregate_loss:.0f}% of events removed "
        "before the analysis; and every other warning or error of the analysis, with its message.</p>")
    parts.extend(galleries)
    return "".join(parts), len(flagged_rows)


def _facts(assay: str, row: pd.Series) -> str:
    if str(row.get("status")) in FAILED_STATUSES:
        return f"<span class='muted'>{_e(row.get('message'))}</span>"
    if assay == "apoptosis":
        return (f"events {_int(row.get('events_total'))} &rarr; cells {_int(row.get('events_cells'))} &rarr; "
                f"singlets {_int(row.get('events_singlets'))}; viable {_fmt(row.get('viable_pct'))}%, early "
                f"{_fmt(row.get('early_apoptotic_pct'))}%, late {_fmt(row.get('late_apoptotic_pct'))}%, "
                f"necrotic {_fmt(row.get('necrotic_pct'))}%")
    return (f"events {_int(row.get('events_total'))} &rarr; singlets {_int(row.get('events_singlets'))}; "
            f"G0/G1 {_fmt(row.get('g0g1_pct'))}%, S {_fmt(row.get('s_pct'))}%, "
            f"G2/M {_fmt(row.get('g2m_pct'))}%, "
            f"sub-G1 {_fmt(row.get('sub_g1_pct'))}%; G1 CV {_fmt(row.get('g1_cv_pct'))}%, RCS "
            f"{_fmt(row.get('rcs'), 2)}; model {_e(row.get('model'))}")


def _errors_section(result: ExperimentResult, missing_figures: Sequence[str]) -> str:
    parts = ['<h2 id="errors">Errors and notes</h2>']
    errors = result.errors
    if errors.empty:
        parts.append("<p>No errors: every sample and control was analysed.</p>")
    else:
        columns = [c for c in errors.columns]
        parts.append(f"<p>{len(errors)} error(s). These samples are left out of the statistics.</p>")
        parts.append(_table([_e(c) for c in columns],
                            [[_e(r[c]) for c in columns] for _, r in errors.iterrows()], cls="errors"))
    notes = list(result.notes)
    if notes:
        parts.append("<h3>Notes</h3><ul>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
    if missing_figures:
        parts.append("<h3>Figures not drawn</h3><ul>" + "".join(f"<li>{_e(n)}</li>" for n in missing_figures)
                     + "</ul><p class='muted'>See the log for why.</p>")
    return "".join(parts)


# ============================================================================ the report
def write_report(
    result: ExperimentResult,
    out_dir: str | os.PathLike[str],
    *,
    figures: Sequence[str | os.PathLike[str]] | None = None,
    thumbnails: bool = True,
    limits: QCLimits = QC_LIMITS,
    n_jobs: int = 1,
) -> Path:
    """Write ``out_dir/report.html``: the run, its tables, figures, quality control and errors.

    The file is self-contained (no script, no network: images are embedded PNGs, the style
    is inline) and written atomically. Every text from the files or the design is escaped.

    Parameters
    ----------
    result
        The run.
    out_dir
        Output folder (made if needed).
    figures
        PNG files to embed as the figures, e.g. the list :func:`write_figures` returned
        (other formats in it are ignored; files are scaled down for the page). None: the
        standard figures are drawn for the report.
    thumbnails
        Draw the per-sample gating and fit thumbnails of the quality-control gallery
        (the flags are listed either way).
    limits
        Quality-control limits of the flags (:func:`qc_flags`).
    n_jobs
        Worker processes drawing the thumbnails side by side (the page is the same).

    Returns
    -------
    pathlib.Path
        The report.
    """
    start = time.perf_counter()
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    record = result.run_record()
    figure_html, missing = _figure_section(result, figures, dpi=150.0)
    qc_html, n_flagged = _qc_section(result, thumbnails=thumbnails, dpi=110.0, limits=limits, n_jobs=n_jobs)
    n_samples = len(result.apoptosis) + len(result.cellcycle)
    n_errors = len(result.errors)
    flags = qc_flags(result, limits=limits)
    tally = ", ".join(f"{_e(flag)}: {n}" for flag, n in
                      flags.groupby("flag", sort=False)["file"].nunique().items())
    flagged = f"{n_flagged} flagged for review ({tally})" if n_flagged else "none flagged"
    if n_errors:
        banner = (f"<div class='banner error'>{n_errors} error(s): see <a href='#errors'>Errors</a>. "
                  f"{n_samples} samples; {flagged}.</div>")
    elif n_flagged:
        banner = (f"<div class='banner warn'>All {n_samples} samples analysed; {flagged}: see "
                  "<a href='#qc'>Quality control</a>.</div>")
    else:
        banner = f"<div class='banner ok'>All {n_samples} samples analysed; none flagged.</div>"
    name = result.design.sheet.name
    body = "".join([
        "<nav><a href='#run'>Run</a><a href='#tables'>Results</a><a href='#figures'>Figures</a>"
        "<a href='#qc'>Quality control</a><a href='#errors'>Errors</a></nav><main>",
        f"<h1>cytoflow_res report: {_e(name)}</h1>",
        f"<p class='sub'>Analysed {_e(result.finished)} (UTC) with cytoflow_res {_e(__version__)}.</p>",
        banner,
        _glance(result),
        _run_section(result, record),
        '<h2 id="tables">Results</h2><h3>Summary per arm</h3>', _summary_tables(result),
        '<h3 id="comparisons">Comparisons</h3>', _comparison_tables(result),
        '<h3 id="synergy">Combination effect</h3>', _synergy_tables(result),
        '<h2 id="figures">Figures</h2>', figure_html,
        '<h2 id="qc">Quality control</h2>', qc_html,
        _errors_section(result, missing),
        f"<footer>cytoflow_res {_e(__version__)}. Tables: apoptosis.csv, cellcycle.csv, summary.csv, "
        "comparisons.csv, synergy.csv, errors.csv and results.xlsx beside this file; run.json holds the "
        "versions, settings and input checksums.</footer></main>",
    ])
    page = ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta http-equiv='Content-Security-Policy' content=\"{_CSP}\">"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<meta name='generator' content='cytoflow_res {_e(__version__)}'>"
            f"<title>cytoflow_res report: {_e(name)}</title><style>{_CSS}</style></head>"
            f"<body>{body}</body></html>\n")
    path = folder / "report.html"
    write_text_atomic(page, path)
    log.info("wrote %s (%.1f MB) in %.1f s", path, len(page) / 1e6, time.perf_counter() - start)
    return path
