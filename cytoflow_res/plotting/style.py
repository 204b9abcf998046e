"""One look for every publication figure: colours, sizes in millimetres, fonts, saving.

Journals ask for figures at their final size (one column is about 85-90 mm wide), with
text of 5-8 pt that stays editable, colours that colour-blind readers can tell apart, and
vector files with the fonts embedded. This module holds those choices in one place:

* :data:`PALETTE`: the Okabe-Ito colour-blind-safe palette; :func:`arm_colours` gives each
  treatment arm a colour from it (the same arm gets the same colour in every figure);
* :func:`mm`, :func:`figure`: figure sizes in millimetres;
* :func:`publication_style`: the rcParams (7 pt sans-serif text, thin lines, no top/right
  spines, editable SVG text, TrueType fonts in PDF/PS);
* :func:`save_figure`: write one figure as PNG, SVG and PDF in one call.

Examples
--------
>>> from cytoflow_res.plotting import style
>>> with style.publication_style():  # doctest: +SKIP
...     fig = style.figure(90, 60)
...     ax = fig.add_subplot()
...     ...
>>> style.save_figure(fig, "figures/fig2a")  # doctest: +SKIP
[PosixPath('figures/fig2a.png'), PosixPath('figures/fig2a.svg'), PosixPath('figures/fig2a.pdf')]
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "OKABE_ITO",
    "PALETTE",
    "PUBLICATION_RC",
    "VEHICLE_COLOUR",
    "arm_colours",
    "figure",
    "mm",
    "publication_style",
    "save_figure",
]

#: The Okabe-Ito palette by name (Okabe & Ito 2008, "Color Universal Design"; Wong 2011,
#: Nat Methods 8:441). Every pair stays distinguishable with the common colour-vision deficiencies.
OKABE_ITO: dict[str, str] = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}

#: The Okabe-Ito colours in their published order.
PALETTE: tuple[str, ...] = tuple(OKABE_ITO.values())

#: Colour of the vehicle (control) arm: a neutral grey, so the treated arms stand out.
VEHICLE_COLOUR = "#BBBBBB"

# Single agents get the light/mid colours and combinations the strong ones, so a combination
# stands out next to its components. Yellow is left out: it vanishes on white paper.
_SINGLE_COLOURS = (OKABE_ITO["sky_blue"], OKABE_ITO["orange"], OKABE_ITO["bluish_green"],
                   OKABE_ITO["reddish_purple"])
_COMBINATION_COLOURS = (OKABE_ITO["vermillion"], OKABE_ITO["blue"], OKABE_ITO["reddish_purple"],
                        OKABE_ITO["black"])

#: The rcParams of :func:`publication_style` (its ``font`` and ``size`` arguments change the
#: font entries).
PUBLICATION_RC: dict[str, Any] = {
    "font.family": ["DejaVu Sans"],
    "font.size": 7.0,
    "axes.titlesize": 7.0,
    "axes.labelsize": 7.0,
    "xtick.labelsize": 7.0,
    "ytick.labelsize": 7.0,
    "legend.fontsize": 7.0,
    "legend.title_fontsize": 7.0,
    "figure.titlesize": 8.0,
    "mathtext.default": "regular",
    "axes.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlepad": 4.0,
    "axes.labelpad": 2.0,
    "lines.linewidth": 0.8,
    "lines.markersize": 3.0,
    "patch.linewidth": 0.5,
    "hatch.linewidth": 0.5,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.minor.width": 0.4,
    "ytick.minor.width": 0.4,
    "xtick.major.size": 2.5,
    "ytick.major.size": 2.5,
    "xtick.minor.size": 1.5,
    "ytick.minor.size": 1.5,
    "xtick.major.pad": 2.0,
    "ytick.major.pad": 2.0,
    "xtick.direction": "out",
    "ytick.direction": "out",
    "errorbar.capsize": 2.0,
    "legend.frameon": False,
    "legend.handlelength": 1.0,
    "legend.handleheight": 0.8,
    "legend.handletextpad": 0.4,
    "legend.borderaxespad": 0.3,
    "legend.labelspacing": 0.3,
    "figure.dpi": 100.0,
    "figure.facecolor": "white",
    "savefig.dpi": 300.0,
    "savefig.facecolor": "white",
    # text stays text: editable in Illustrator/Inkscape, and accepted by journals
    "svg.fonttype": "none",
    "pdf.fonttype": 42,  # TrueType (Type 42), not Type 3 bitmaps
    "ps.fonttype": 42,
    "svg.hashsalt": "cytoflow_res",  # the same figure gives the same SVG, run after run
}

# What every saved file must have, whatever the caller's rcParams say.
_SAVE_RC: dict[str, Any] = {"svg.fonttype": "none", "pdf.fonttype": 42, "ps.fonttype": 42,
                            "svg.hashsalt": "cytoflow_res"}
# Dates left out, so that saving the same figure twice gives the same bytes.
_NO_DATE: dict[str, dict[str, Any]] = {"pdf": {"CreationDate": None}, "svg": {"Date": None}}


def mm(x: float) -> float:
    """Millimetres in inches, the unit of matplotlib's figure sizes.

    Parameters
    ----------
    x
        A length in millimetres.

    Returns
    -------
    float
        The length in inches.

    Examples
    --------
    >>> mm(25.4)
    1.0
    """
    return float(x) / 25.4


@contextlib.contextmanager
def publication_style(
    *, font: str | Sequence[str] = "DejaVu Sans", size: float = 7.0,
) -> Iterator[dict[str, Any]]:
    """Draw (and save) inside this block in the publication style.

    Sizes of text and lines are fixed when an artist is made, so make the figure and draw it
    inside the block; fonts are embedded as TrueType in PDF/PS and text stays ``<text>`` in
    SVG for figures saved inside the block (and always by :func:`save_figure`).

    Parameters
    ----------
    font
        Font family, or families in order of preference. The default, DejaVu Sans, ships with
        matplotlib, so a figure looks the same on every computer; pass e.g. ``"Arial"`` for a
        journal that asks for it (matplotlib falls back to DejaVu Sans, with a logged
        warning, where it is not installed).
    size
        Text size in points (tick labels, axis labels, legends).

    Yields
    ------
    dict
        The rcParams set in the block.
    """
    import matplotlib as mpl

    families = [font] if isinstance(font, str) else list(font)
    if "DejaVu Sans" not in families:
        families.append("DejaVu Sans")
    size = float(size)
    rc: dict[str, Any] = {
        **PUBLICATION_RC,
        "font.family": families,
        "font.size": size,
        "axes.titlesize": size,
        "axes.labelsize": size,
        "xtick.labelsize": size,
        "ytick.labelsize": size,
        "legend.fontsize": size,
        "legend.title_fontsize": size,
        "figure.titlesize": size + 1.0,
    }
    settings: Any = rc  # matplotlib's stubs want literal rcParams keys
    with mpl.rc_context(settings):
        yield rc


def figure(width_mm: float, height_mm: float, **kwargs: Any) -> Figure:
    """A new pyplot figure of a size given in millimetres, with constrained layout.

    Parameters
    ----------
    width_mm, height_mm
        Size of the whole figure in millimetres (e.g. 85-90 mm for one journal column,
        170-180 mm for two).
    **kwargs
        Passed on to :func:`matplotlib.pyplot.figure` (``layout="constrained"`` unless given).

    Returns
    -------
    matplotlib.figure.Figure
        The figure (empty: add axes with ``fig.add_subplot()`` or ``fig.subplots()``).

    Raises
    ------
    ValueError
        A size is not a positive number.
    """
    import matplotlib.pyplot as plt

    for name, value in (("width_mm", width_mm), ("height_mm", height_mm)):
        if not float(value) > 0:
            msg = f"figure: {name} must be a positive number of millimetres, got {value!r}"
            raise ValueError(msg)
    kwargs.setdefault("layout", "constrained")
    return plt.figure(figsize=(mm(width_mm), mm(height_mm)), **kwargs)


def save_figure(
    fig: Figure,
    path: str | PathLike[str],
    formats: Sequence[str] = ("png", "svg", "pdf"),
    dpi: float = 300,
) -> list[Path]:
    """Write a figure in several formats: ``<path>.png``, ``<path>.svg``, ``<path>.pdf``.

    The folder is made if needed. Text stays editable ``<text>`` in SVG and fonts are
    embedded as TrueType in PDF/PS, whatever the current rcParams. SVG and PDF files get no
    creation date, so the same figure saves to the same bytes.

    Parameters
    ----------
    fig
        The figure.
    path
        Path without the format suffix (``"figures/fig2a"``); a suffix already there is kept
        (``"fig.v2"`` -> ``"fig.v2.png"``).
    formats
        File formats, each one that matplotlib can write (png, svg, pdf, eps, tiff, ...).
    dpi
        Resolution of raster formats (and of rasterized artists in vector formats).

    Returns
    -------
    list of pathlib.Path
        The files written, in the order of ``formats``.

    Raises
    ------
    ValueError
        A format is not one matplotlib can write (the message lists those it can), or no
        format is given.
    """
    import matplotlib as mpl

    names = [formats] if isinstance(formats, str) else list(formats)
    wanted = [f.lower().lstrip(".") for f in names]
    supported = fig.canvas.get_supported_filetypes()
    bad = [f for f in wanted if f not in supported]
    if bad or not wanted:
        what = f"unknown format(s) {', '.join(map(repr, bad))}" if bad else "no format given"
        msg = f"save_figure: {what}; matplotlib can write {', '.join(sorted(supported))}"
        raise ValueError(msg)
    base = Path(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    settings: Any = _SAVE_RC
    with mpl.rc_context(settings):
        for fmt in wanted:
            target = base.with_name(f"{base.name}.{fmt}")
            fig.savefig(target, format=fmt, dpi=dpi, metadata=_NO_DATE.get(fmt))
            written.append(target)
    return written


def arm_colours(
    arms: Sequence[str], *, vehicle: str = "vehicle", colours: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A colour for each treatment arm: grey vehicle, light single agents, strong combinations.

    Single agents (labels without ``"+"``) take sky blue, orange, bluish green, ... in the
    order given; combinations (labels with ``"+"``) take vermillion, blue, ... The colours
    depend only on the arms and their order, so figures of the same experiment agree.

    Parameters
    ----------
    arms
        Treatment labels, in display order.
    vehicle
        Label of the vehicle (control) arm, drawn grey.
    colours
        Colours to use for some arms instead (label -> any matplotlib colour).

    Returns
    -------
    dict
        Arm label -> hex colour (or the colour given in ``colours``).

    Examples
    --------
    >>> arm_colours(["vehicle", "drugA", "drugB", "drugA+drugB"])
    {'vehicle': '#BBBBBB', 'drugA': '#56B4E9', 'drugB': '#E69F00', 'drugA+drugB': '#D55E00'}
    """
    given = dict(colours or {})
    out: dict[str, str] = {}
    n_single = n_combination = 0
    for arm in arms:
        if arm in out:
            continue
        if arm == vehicle:
            out[arm] = VEHICLE_COLOUR
        elif "+" in arm:
            out[arm] = _COMBINATION_COLOURS[n_combination % len(_COMBINATION_COLOURS)]
            n_combination += 1
        else:
            out[arm] = _SINGLE_COLOURS[n_single % len(_SINGLE_COLOURS)]
            n_single += 1
    out.update({arm: colour for arm, colour in given.items() if arm in out})
    return out
