"""Pure-numpy line shapes for DNA-content histograms.

Every function returns expected counts per histogram bin for a component of unit area
(``sum over the whole real line == 1``), evaluated on bin *edges*, so that a fitted
amplitude is directly a number of events. Positions are in histogram channel units.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_ndtr, ndtr, owens_t

__all__ = [
    "aggregates_from_histogram",
    "broadened_rectangles",
    "broadened_s_phase",
    "exponential_debris",
    "gaussian_bins",
    "multi_cut_debris",
    "peak_bins",
    "single_cut_debris",
    "skew_normal_bins",
]


def gaussian_bins(edges: np.ndarray, mean: float, sd: float) -> np.ndarray:
    """Unit-area Gaussian integrated over each bin.

    Parameters
    ----------
    edges
        Bin edges, length ``n_bins + 1``.
    mean, sd
        Centre and standard deviation in channel units.

    Returns
    -------
    numpy.ndarray
        Fraction of the Gaussian falling in each bin (length ``n_bins``).
    """
    cdf = ndtr((edges - mean) / max(sd, 1e-12))
    return np.diff(cdf)


def skew_normal_bins(edges: np.ndarray, mean: float, sd: float, shape: float) -> np.ndarray:
    """Unit-area skew-normal of given mean and standard deviation, integrated over each bin.

    The skew-normal of Azzalini (1985) has density ``2 / w * phi(z) * Phi(shape * z)`` with
    ``z = (x - loc) / w`` and CDF ``Phi(z) - 2 T(z, shape)`` (Owen's T); ``loc`` and ``w``
    are set from the requested mean and SD. ``shape < 0`` leans the hump towards lower values
    (a long left flank, a steep right one); ``shape == 0`` is :func:`gaussian_bins`. Its
    skewness stays below 1 in magnitude whatever ``shape``, so it remains a hump and cannot
    turn into a tail that decays all the way to zero.

    Parameters
    ----------
    edges
        Bin edges, length ``n_bins + 1``.
    mean, sd
        Mean and standard deviation of the distribution (channel units).
    shape
        Skewness parameter (alpha).

    Returns
    -------
    numpy.ndarray
        Fraction of the distribution falling in each bin (length ``n_bins``).
    """
    b = np.sqrt(2.0 / np.pi) * shape / np.sqrt(1.0 + shape * shape)  # mean of the standard form
    scale = max(sd, 1e-12) / np.sqrt(1.0 - b * b)
    z = (np.asarray(edges, dtype=float) - (mean - scale * b)) / scale
    cdf = ndtr(z) - 2.0 * owens_t(z, shape)
    return np.diff(cdf)


def _tail_cdf(z: np.ndarray, sd: np.ndarray | float, tau: np.ndarray | float) -> np.ndarray:
    """CDF of ``Z = G + E`` with ``G ~ N(0, sd)`` and ``E ~ Exp(mean tau)`` (ex-Gaussian).

    ``F(z) = Phi(z / sd) - exp(-z / tau + sd**2 / (2 tau**2)) * Phi(z / sd - sd / tau)``; the
    second term is evaluated in logs so that a short tail (``tau << sd``) cannot overflow.
    """
    sd = np.maximum(sd, 1e-12)
    tau = np.maximum(tau, 1e-12)
    ratio = sd / tau
    with np.errstate(over="ignore", under="ignore"):
        tail = np.exp(-z / tau + 0.5 * ratio**2 + log_ndtr(z / sd - ratio))
    return ndtr(z / sd) - tail


def peak_bins(edges: np.ndarray, mean: float, sd: float, tail: float = 0.0) -> np.ndarray:
    """Unit-area DNA peak per bin: a Gaussian, optionally with an exponential tail to the left.

    With ``tail > 0`` the peak is ``N(mean, sd) - Exp(tail)``: the Gaussian seen through a
    one-sided loss of signal (under-stained or partly degraded nuclei), an ex-Gaussian
    mirrored towards lower DNA content. ``mean`` stays the centre of the Gaussian part, which
    is the peak's mode when the tail is short. ``tail == 0`` is exactly :func:`gaussian_bins`.

    Parameters
    ----------
    edges
        Bin edges.
    mean, sd
        Centre and standard deviation of the Gaussian part (channel units).
    tail
        Mean of the exponential loss (channel units); 0 for a symmetric Gaussian.

    Returns
    -------
    numpy.ndarray
        Fraction of the peak in each bin.
    """
    if tail <= 0:
        return gaussian_bins(edges, mean, sd)
    # X = mean - Z, so P(X <= e) = 1 - F_Z(mean - e); bin masses are differences of that
    upper = _tail_cdf(mean - np.asarray(edges, dtype=float), sd, tail)
    return upper[:-1] - upper[1:]


def broadened_s_phase(
    edges: np.ndarray,
    g1_mean: float,
    g2_mean: float,
    cv: float,
    *,
    degree: int = 2,
    n_nodes: int = 48,
    tail: float = 0.0,
) -> np.ndarray:
    """S-phase basis: a Bernstein polynomial between the peak means, broadened like the peaks.

    Cells in S phase have DNA content ``u`` between the G0/G1 and G2/M means; the density
    of ``u`` is a polynomial of the given degree (Dean & Jett 1974), written in the Bernstein
    basis so that non-negative coefficients give a non-negative S phase everywhere. Each
    ``u`` is seen with the instrument's Gaussian spread ``sd = cv * u`` (Fox 1980), so the
    expected counts are the integral over ``u`` of the density times the Gaussian bin mass.

    Parameters
    ----------
    edges
        Bin edges.
    g1_mean, g2_mean
        The limits of S phase (G0/G1 and G2/M means).
    cv
        Coefficient of variation used for broadening (that of G0/G1).
    degree
        0 (flat), 1 or 2.
    n_nodes
        Quadrature nodes across S phase (midpoint rule).
    tail
        Relative exponential tail of the instrument spread (``tail * u`` channels at ``u``),
        as in :func:`peak_bins`; 0 for a Gaussian spread.

    Returns
    -------
    numpy.ndarray
        Shape ``(degree + 1, n_bins)``: one unit-area basis function per Bernstein term.
    """
    t, mass = _s_nodes(edges, g1_mean, g2_mean, cv, n_nodes, tail)
    basis = _bernstein(t, degree)  # (degree + 1, n_nodes)
    out = basis @ mass.T  # (degree + 1, n_bins)
    # each Bernstein term integrates to 1/(degree+1) over t; normalise to unit area
    out *= (degree + 1) / n_nodes
    return out


def broadened_rectangles(
    edges: np.ndarray,
    g1_mean: float,
    g2_mean: float,
    cv: float,
    *,
    n: int = 4,
    n_nodes: int = 48,
    tail: float = 0.0,
) -> np.ndarray:
    """S-phase basis as ``n`` adjacent rectangles between the peak means, each broadened.

    The sum-of-broadened-rectangles (SBR) S phase: a piecewise-constant DNA density whose
    ``n`` levels are fitted independently (non-negative), then seen with the Gaussian
    spread ``cv * u`` (with the relative left ``tail`` of :func:`peak_bins` if given).

    Returns
    -------
    numpy.ndarray
        Shape ``(n, n_bins)``, each row of unit area.
    """
    if n < 1:
        msg = f"the number of S-phase rectangles must be at least 1, got {n}"
        raise ValueError(msg)
    n_nodes = max(n_nodes, 8 * n)
    t, mass = _s_nodes(edges, g1_mean, g2_mean, cv, n_nodes, tail)
    which = np.minimum((t * n).astype(int), n - 1)
    basis = (which[None, :] == np.arange(n)[:, None]).astype(float)
    basis /= basis.sum(axis=1, keepdims=True)
    return basis @ mass.T


def _s_nodes(
    edges: np.ndarray, g1_mean: float, g2_mean: float, cv: float, n_nodes: int, tail: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Midpoint nodes across S phase and the peak-shaped bin masses seen from each."""
    t = (np.arange(n_nodes) + 0.5) / n_nodes
    u = g1_mean + t * (g2_mean - g1_mean)
    sd = np.maximum(cv * u, 1e-12)
    if tail > 0:
        upper = _tail_cdf(u[None, :] - edges[:, None], sd[None, :], tail * u[None, :])
        return t, upper[:-1] - upper[1:]
    # Only bins within 9 SD of S phase get any mass (ndtr(-9) ~ 1e-19): evaluate those alone.
    i0 = max(int(np.searchsorted(edges, u[0] - 9.0 * sd[0], side="right")) - 1, 0)
    i1 = min(int(np.searchsorted(edges, u[-1] + 9.0 * sd[-1], side="left")) + 1, edges.size)
    mass = np.zeros((edges.size - 1, n_nodes))
    if i1 - i0 >= 2:
        cdf = ndtr((edges[i0:i1, None] - u[None, :]) / sd[None, :])
        mass[i0 : i1 - 1] = np.diff(cdf, axis=0)  # (n_bins, n_nodes)
    return t, mass


def _bernstein(t: np.ndarray, degree: int) -> np.ndarray:
    if degree == 0:
        return np.ones((1, t.size))
    if degree == 1:
        return np.vstack([1 - t, t])
    if degree == 2:
        return np.vstack([(1 - t) ** 2, 2 * t * (1 - t), t**2])
    msg = f"S-phase polynomial degree must be 0, 1 or 2, not {degree}"
    raise ValueError(msg)


def single_cut_debris(centers: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Sliced-nuclei debris from one random cut per nucleus (Bagwell et al. 1991).

    A nucleus of DNA content ``x_j`` cut once at a random point leaves pieces whose size
    follows ``2 / (pi * sqrt(x * (x_j - x)))`` on ``(0, x_j)``. The chance that a nucleus is
    cut at all grows with its diameter, ``x_j ** (1/3)``; summing over the observed histogram
    (the nuclei that could have been cut) gives the debris shape (as flowPloidy does).

    Parameters
    ----------
    centers
        Bin centres (channel units, > 0).
    counts
        Observed counts per bin.

    Returns
    -------
    numpy.ndarray
        Unit-area debris shape over the bins (zeros if the histogram is empty).
    """
    x = np.asarray(centers, dtype=float)
    y = np.asarray(counts, dtype=float)
    diff = x[None, :] - x[:, None]  # x_j - x_i
    with np.errstate(divide="ignore", invalid="ignore"):
        kernel = np.where(diff > 0, 2.0 / (np.pi * np.sqrt(np.abs(x[:, None] * diff))), 0.0)
    shape = kernel @ (y * np.cbrt(np.clip(x, 0, None)))
    return _unit(shape)


def multi_cut_debris(centers: np.ndarray, counts: np.ndarray, decay: float) -> np.ndarray:
    """Debris from several cuts: an exponentially decaying share of the larger nuclei.

    ``shape_i = exp(-decay * x_i) * sum_{j > i} y_j`` (the multi-cut form used by flowPloidy).

    Parameters
    ----------
    centers
        Bin centres.
    counts
        Observed counts per bin.
    decay
        Exponential rate per channel.

    Returns
    -------
    numpy.ndarray
        Unit-area shape.
    """
    y = np.asarray(counts, dtype=float)
    above = np.cumsum(y[::-1])[::-1] - y  # sum over bins strictly above
    return _unit(np.exp(-decay * np.asarray(centers, dtype=float)) * above)


def exponential_debris(centers: np.ndarray, scale: float) -> np.ndarray:
    """A plain exponential debris tail ``exp(-x / scale)``, unit area over the bins."""
    return _unit(np.exp(-np.asarray(centers, dtype=float) / max(scale, 1e-9)))


def aggregates_from_histogram(counts: np.ndarray, *, triplets: bool = False) -> np.ndarray:
    """Doublet (and triplet) shape from the histogram convolved with itself.

    Two cells with DNA ``a`` and ``b`` stuck together read as ``a + b``. With bin centres at
    ``i + 0.5`` channel units, a pair from bins ``i`` and ``j`` sums to ``i + j + 1``, the
    edge between bins ``i + j`` and ``i + j + 1``: it is shared half and half.

    Parameters
    ----------
    counts
        Observed counts per bin (channel units: bin ``i`` spans ``[i, i + 1)``).
    triplets
        Also add three-cell aggregates, with the same weight per event as doublets.

    Returns
    -------
    numpy.ndarray
        Unit-area shape over the same bins.
    """
    y = np.clip(np.asarray(counts, dtype=float), 0, None)
    n = y.size
    pairs = np.convolve(y, y)  # index i + j
    shape = 0.5 * pairs[:n]
    shape[1:] += 0.5 * pairs[: n - 1]
    if triplets:
        trip = np.convolve(pairs, y)  # index i + j + k -> bin i + j + k + 1 (centres add 1.5)
        t = np.zeros(n)
        t[1:] = trip[: n - 1]
        shape = _unit(shape) + _unit(t) * 0.5
    return _unit(shape)


def _unit(shape: np.ndarray) -> np.ndarray:
    total = float(shape.sum())
    if not np.isfinite(total) or total <= 0:
        return np.zeros_like(shape, dtype=float)
    return shape / total
