"""The Gating-ML 2.0 scale transformations and spectrum matrices, in pure numpy.

Gating-ML 2.0 (ISAC, 2013) defines six parametrised transformations that a gate may apply
to a dimension before comparing it with the gate's coordinates, and a spectrum matrix for
compensation. Each class here holds the parameters exactly as written in the XML and maps
an array of values to transformed values; none of them ever changes its input.

* ``flin``      ``(x + A) / (T + A)``
* ``flog``      ``log10(x / T) / M + 1`` (NaN for x <= 0, so such events fall outside any gate)
* ``fasinh``    ``(asinh(x sinh(M ln 10) / T) + A ln 10) / ((M + A) ln 10)``
* ``logicle``   the root y of ``B(y) = a e^(by) - c e^(-dy) - f = x`` (Moore & Parks 2012)
* ``hyperlog``  the root y of ``EH(y) = a e^(by) + c y - f = x`` (Bagwell 2005)
* ``fratio``    ``A (x1 - B) / (x2 - C)`` of two dimensions

Logicle and hyperlog are defined by their inverse; the forward value is found by Halley's
method on all events at once. The defining function is used on the positive side only and
negative values are reflected about the value of zero, ``y(-x) = 2 x1 - y(x)``, which is how
logicle was defined (Parks et al. 2006) and how the reference implementations (Moore's, and
flowutils') compute it. (The compliance truth does not tell this apart from the plain root
of the biexponential: its gates lie far above the negative events.) Near zero a Taylor
series replaces the exponentials, whose difference loses precision there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy.optimize import brentq

from cytoflow_res.errors import TemplateError

__all__ = [
    "AsinhTransform",
    "HyperlogTransform",
    "LinearTransform",
    "LogTransform",
    "LogicleTransform",
    "RatioTransform",
    "ScaleTransform",
    "SpectrumMatrix",
]

_LN10 = math.log(10.0)
_EPS = float(np.finfo(np.float64).eps)
_TAYLOR_TERMS = 16
_MAX_ITER = 60


def _as_float_array(values: np.ndarray | Sequence[float] | float) -> np.ndarray:
    return np.array(values, dtype=np.float64, copy=True, ndmin=1)


def _require(ok: bool, msg: str) -> None:
    if not ok:
        raise TemplateError(msg)


@dataclass(frozen=True)
class LinearTransform:
    """Gating-ML ``flin``: maps ``[-A, T]`` linearly onto ``[0, 1]``.

    Parameters
    ----------
    T
        Top of the scale (``T > 0``).
    A
        Offset of the bottom of the scale (``0 <= A <= T``).
    """

    T: float
    A: float
    kind: Literal["flin"] = field(default="flin", init=False)

    def __post_init__(self) -> None:
        _require(self.T > 0, f"flin needs T > 0; got T={self.T}")
        _require(0 <= self.A <= self.T, f"flin needs 0 <= A <= T; got A={self.A}, T={self.T}")

    def apply(self, values: np.ndarray) -> np.ndarray:
        """Transformed values (same shape as ``values``)."""
        x = _as_float_array(values)
        return (x + self.A) / (self.T + self.A)

    def inverse(self, values: np.ndarray) -> np.ndarray:
        """Data values whose transform is ``values``."""
        y = _as_float_array(values)
        return y * (self.T + self.A) - self.A


@dataclass(frozen=True)
class LogTransform:
    """Gating-ML ``flog``: ``log10(x / T) / M + 1``; ``T`` maps to 1, ``T / 10**M`` to 0.

    Non-positive values have no logarithm; they map to NaN, which no gate contains.

    Parameters
    ----------
    T
        Top of the scale (``T > 0``).
    M
        Number of decades (``M > 0``).
    """

    T: float
    M: float
    kind: Literal["flog"] = field(default="flog", init=False)

    def __post_init__(self) -> None:
        _require(self.T > 0, f"flog needs T > 0; got T={self.T}")
        _require(self.M > 0, f"flog needs M > 0; got M={self.M}")

    def apply(self, values: np.ndarray) -> np.ndarray:
        """Transformed values; NaN where the value is not positive."""
        x = _as_float_array(values)
        out = np.full_like(x, np.nan)
        pos = x > 0
        out[pos] = np.log10(x[pos] / self.T) / self.M + 1.0
        return out

    def inverse(self, values: np.ndarray) -> np.ndarray:
        """Data values whose transform is ``values``."""
        y = _as_float_array(values)
        return self.T * np.power(10.0, (y - 1.0) * self.M)


@dataclass(frozen=True)
class AsinhTransform:
    """Gating-ML ``fasinh``: a parametrised inverse hyperbolic sine.

    Parameters
    ----------
    T
        Top of the scale (``T > 0``); maps to 1.
    M
        Decades of the scale's log-like part (``M > 0``).
    A
        Additional negative decades (``0 <= A <= M``).
    """

    T: float
    M: float
    A: float
    kind: Literal["fasinh"] = field(default="fasinh", init=False)

    def __post_init__(self) -> None:
        _require(self.T > 0, f"fasinh needs T > 0; got T={self.T}")
        _require(self.M > 0, f"fasinh needs M > 0; got M={self.M}")
        _require(0 <= self.A <= self.M, f"fasinh needs 0 <= A <= M; got A={self.A}, M={self.M}")

    def apply(self, values: np.ndarray) -> np.ndarray:
        """Transformed values (same shape as ``values``)."""
        x = _as_float_array(values)
        pre = math.sinh(self.M * _LN10) / self.T
        return (np.arcsinh(x * pre) + self.A * _LN10) / ((self.M + self.A) * _LN10)

    def inverse(self, values: np.ndarray) -> np.ndarray:
        """Data values whose transform is ``values``."""
        y = _as_float_array(values)
        pre = math.sinh(self.M * _LN10) / self.T
        return np.sinh(y * (self.M + self.A) * _LN10 - self.A * _LN10) / pre


def _check_biex(kind: str, T: float, W: float, M: float, A: float) -> None:
    _require(T > 0, f"{kind} needs T > 0; got T={T}")
    _require(M > 0, f"{kind} needs M > 0; got M={M}")
    _require(0 <= W <= M / 2, f"{kind} needs 0 <= W <= M/2; got W={W}, M={M}")
    _require(-W <= A <= M - 2 * W, f"{kind} needs -W <= A <= M - 2W; got A={A}, W={W}, M={M}")


def _series(coef: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``sum_k coef[k] * t**(k+1)`` by Horner's rule."""
    acc = np.zeros_like(t)
    for c in coef[::-1]:
        acc = (acc + c) * t
    return acc


class _Biexponential:
    """Shared solver of ``g(y) = x`` for the logicle and hyperlog families.

    Subclasses provide ``x1`` (the scale value of data zero), the Taylor coefficients of g
    about ``x1``, ``x_taylor`` (below which the series is used) and ``_g``/``_g_derivs``.
    """

    x1: float
    a: float
    b: float
    x_taylor: float
    taylor: np.ndarray

    def _g_exact(self, y: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _derivs(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _initial(self, v: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _g(self, y: np.ndarray) -> np.ndarray:
        """g(y) for y >= x1, through the series near x1 (where the exact form cancels)."""
        near = y < self.x_taylor
        out = np.empty_like(y)
        out[near] = _series(self.taylor, y[near] - self.x1)
        out[~near] = self._g_exact(y[~near])
        return out

    def _solve_positive(self, v: np.ndarray) -> np.ndarray:
        """The root y >= x1 of g(y) = v for finite v > 0, by Halley's method."""
        y = self._initial(v)
        active = np.arange(v.size)
        for _ in range(_MAX_ITER):
            if active.size == 0:
                break
            ya = y[active]
            va = v[active]
            resid = self._g(ya) - va
            dg, ddg = self._derivs(ya)
            delta = resid / (dg * (1.0 - resid * ddg / (2.0 * dg * dg)))
            new = ya - delta
            # the root of a positive value lies above x1; a step past it halves the way instead
            below = ~(new >= self.x1)
            new[below] = 0.5 * (ya[below] + self.x1)
            delta[below] = ya[below] - new[below]
            y[active] = new
            tol = np.where(ya > 1.0, 3.0 * ya * _EPS, 3.0 * _EPS)
            active = active[~(np.abs(delta) < tol)]
        return y

    def apply(self, values: np.ndarray) -> np.ndarray:
        """Scale values (the transform) of data ``values``; ``0 -> x1``, NaN stays NaN."""
        x = _as_float_array(values)
        out = np.full_like(x, np.nan)
        out[x == 0] = self.x1
        out[x == np.inf] = np.inf
        out[x == -np.inf] = -np.inf
        solve = np.isfinite(x) & (x != 0)
        mag = np.abs(x[solve])
        y = self._solve_positive(mag)
        out[solve] = np.where(x[solve] < 0, 2.0 * self.x1 - y, y)
        return out

    def inverse(self, values: np.ndarray) -> np.ndarray:
        """Data values whose transform is ``values`` (the defining function, reflected)."""
        y = _as_float_array(values)
        out = np.full_like(y, np.nan)
        ok = np.isfinite(y)
        yy = y[ok]
        upper = np.where(yy >= self.x1, yy, 2.0 * self.x1 - yy)
        g = self._g(upper)
        out[ok] = np.where(yy >= self.x1, g, -g)
        out[y == np.inf] = np.inf
        out[y == -np.inf] = -np.inf
        return out


def _logicle_d(b: float, w: float) -> float:
    """The d of the logicle condition: root of ``2 (ln d - ln b) + w (b + d) = 0`` in (0, b]."""
    if w == 0:
        return b

    def cond(d: float) -> float:
        return 2.0 * (math.log(d) - math.log(b)) + w * (b + d)

    lo = b
    while cond(lo) >= 0:
        lo /= 2.0
    return float(brentq(cond, lo, b, xtol=1e-300, rtol=4 * _EPS, maxiter=500))


@dataclass(frozen=True)
class LogicleTransform(_Biexponential):
    """Gating-ML ``logicle`` (Moore & Parks 2012): linear near zero, logarithmic above.

    Parameters
    ----------
    T
        Top of the scale (``T > 0``); maps to 1.
    W
        Decades of the near-linear region (``0 <= W <= M/2``).
    M
        Decades of the full scale (``M > 0``).
    A
        Additional negative decades (``-W <= A <= M - 2W``).
    """

    T: float
    W: float
    M: float
    A: float
    kind: Literal["logicle"] = field(default="logicle", init=False)
    x1: float = field(init=False, repr=False, compare=False)
    a: float = field(init=False, repr=False, compare=False)
    b: float = field(init=False, repr=False, compare=False)
    c: float = field(init=False, repr=False, compare=False)
    d: float = field(init=False, repr=False, compare=False)
    f: float = field(init=False, repr=False, compare=False)
    x_taylor: float = field(init=False, repr=False, compare=False)
    taylor: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_biex("logicle", self.T, self.W, self.M, self.A)
        w = self.W / (self.M + self.A)
        x2 = self.A / (self.M + self.A)
        x1 = x2 + w
        x0 = x2 + 2.0 * w
        b = (self.M + self.A) * _LN10
        d = _logicle_d(b, w)
        c_a = math.exp(x0 * (b + d))
        mf_a = math.exp(b * x1) - c_a * math.exp(-d * x1)
        a = self.T / ((math.exp(b) - mf_a) - c_a * math.exp(-d))
        # Taylor coefficients of B about x1; the second is zero by the logicle condition.
        pos = a * math.exp(b * x1)
        neg = -(c_a * a) * math.exp(-d * x1)
        taylor = np.empty(_TAYLOR_TERMS)
        for k in range(_TAYLOR_TERMS):
            pos *= b / (k + 1)
            neg *= -d / (k + 1)
            taylor[k] = pos + neg
        taylor[1] = 0.0
        for name, value in (
            ("x1", x1), ("a", a), ("b", b), ("c", c_a * a), ("d", d), ("f", -mf_a * a),
            ("x_taylor", x1 + w / 4.0), ("taylor", taylor),
        ):
            object.__setattr__(self, name, value)

    def _g_exact(self, y: np.ndarray) -> np.ndarray:
        # (a e^by + f) - c e^-dy rounds better than the textbook order
        return (self.a * np.exp(self.b * y) + self.f) - self.c * np.exp(-self.d * y)

    def _derivs(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pos = self.a * np.exp(self.b * y)
        neg = self.c * np.exp(-self.d * y)
        return self.b * pos + self.d * neg, self.b * self.b * pos - self.d * self.d * neg

    def _initial(self, v: np.ndarray) -> np.ndarray:
        # linear near zero (always when W = 0 leaves no linear region), logarithmic above
        lin = self.x1 + v / self.taylor[0]
        log = np.log(np.maximum(v, 1e-300) / self.a) / self.b
        return np.where((v < self.f) | (log <= self.x1), lin, log)


@dataclass(frozen=True)
class HyperlogTransform(_Biexponential):
    """Gating-ML ``hyperlog`` (Bagwell 2005): linear near zero, logarithmic above.

    Parameters
    ----------
    T
        Top of the scale (``T > 0``); maps to 1.
    W
        Decades of the near-linear region (``0 < W <= M/2``).
    M
        Decades of the full scale (``M > 0``).
    A
        Additional negative decades (``-W <= A <= M - 2W``).
    """

    T: float
    W: float
    M: float
    A: float
    kind: Literal["hyperlog"] = field(default="hyperlog", init=False)
    x1: float = field(init=False, repr=False, compare=False)
    a: float = field(init=False, repr=False, compare=False)
    b: float = field(init=False, repr=False, compare=False)
    c: float = field(init=False, repr=False, compare=False)
    f: float = field(init=False, repr=False, compare=False)
    x_taylor: float = field(init=False, repr=False, compare=False)
    taylor: np.ndarray = field(init=False, repr=False, compare=False)
    _lin_limit: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_biex("hyperlog", self.T, self.W, self.M, self.A)
        _require(self.W > 0, f"hyperlog needs W > 0; got W={self.W}")
        w = self.W / (self.M + self.A)
        x2 = self.A / (self.M + self.A)
        x1 = x2 + w
        x0 = x2 + 2.0 * w
        b = (self.M + self.A) * _LN10
        c_a = math.exp(b * x0) / w
        f_a = math.exp(b * x1) + c_a * x1
        a = self.T / (math.exp(b) + c_a - f_a)
        c = c_a * a
        # EH(x1 + t) = a e^(b x1) (e^(bt) - 1) + c t: every power of t has a coefficient.
        coef = a * math.exp(b * x1)
        taylor = np.empty(_TAYLOR_TERMS)
        for k in range(_TAYLOR_TERMS):
            coef *= b / (k + 1)
            taylor[k] = coef
        taylor[0] += c
        for name, value in (
            ("x1", x1), ("a", a), ("b", b), ("c", c), ("f", f_a * a),
            ("x_taylor", x1 + w / 4.0), ("taylor", taylor),
        ):
            object.__setattr__(self, name, value)
        # data value at the top of the quasi-linear region: below it, start from the line
        upper = x0 if x0 >= x1 else 2.0 * x1 - x0
        lin_limit = float(self._g(np.array([upper]))[0])
        object.__setattr__(self, "_lin_limit", lin_limit)

    def _g_exact(self, y: np.ndarray) -> np.ndarray:
        return (self.a * np.exp(self.b * y) + self.c * y) - self.f

    def _derivs(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pos = self.a * np.exp(self.b * y)
        return self.b * pos + self.c, self.b * pos * self.b

    def _initial(self, v: np.ndarray) -> np.ndarray:
        x0 = self.x1 + (self.W / (self.M + self.A))
        lin = self.x1 + v * (x0 - self.x1) / self._lin_limit
        log = np.log(np.maximum(v, 1e-300) / self.a) / self.b
        return np.where((v < self._lin_limit) | (log <= self.x1), lin, log)


@dataclass(frozen=True)
class RatioTransform:
    """Gating-ML ``fratio``: ``A (x - B) / (y - C)`` of two dimensions.

    A zero denominator gives ``inf`` or NaN, which no finite gate contains.

    Parameters
    ----------
    numerator, denominator
        Names of the two dimensions (``$PnN``, or fluorochromes of a compensation).
    A, B, C
        Scale, numerator offset and denominator offset.
    """

    numerator: str
    denominator: str
    A: float
    B: float
    C: float
    kind: Literal["fratio"] = field(default="fratio", init=False)

    def apply(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The ratio of ``x`` over ``y`` with the offsets and scale applied."""
        num = _as_float_array(x) - self.B
        den = _as_float_array(y) - self.C
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.A * (num / den)


ScaleTransform = LinearTransform | LogTransform | AsinhTransform | LogicleTransform | HyperlogTransform
"""A one-dimensional Gating-ML transformation (everything but ``fratio``)."""


@dataclass(frozen=True, eq=False)
class SpectrumMatrix:
    """A Gating-ML ``spectrumMatrix``: how much of each fluorochrome each detector sees.

    Row ``i`` is the spectrum of ``fluorochromes[i]`` across ``detectors``; observed
    detector values are true fluorochrome values times this matrix, so compensation
    multiplies detector values by its (pseudo-)inverse.

    Parameters
    ----------
    fluorochromes
        Names of the compensated dimensions, in row order.
    detectors
        Names of the measured channels, in column order.
    matrix
        ``len(fluorochromes) x len(detectors)`` coefficients.
    inverted
        True if ``matrix`` is already the compensation matrix (``matrix-inverted-already``).
    """

    fluorochromes: tuple[str, ...]
    detectors: tuple[str, ...]
    matrix: np.ndarray
    inverted: bool = False
    compensation: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        m = np.asarray(self.matrix, dtype=np.float64)
        nf, nd = len(self.fluorochromes), len(self.detectors)
        if self.inverted:
            want: tuple[int, int] = (nd, nf)
        else:
            want = (nf, nd)
        _require(
            m.shape == want and nf > 0 and nd >= nf,
            f"spectrum matrix for fluorochromes {list(self.fluorochromes)} and detectors "
            f"{list(self.detectors)} must be {want[0]} x {want[1]} with at least as many detectors "
            f"as fluorochromes; got shape {m.shape}",
        )
        _require(bool(np.isfinite(m).all()), "spectrum matrix coefficients must be finite numbers")
        comp: np.ndarray
        if self.inverted:
            comp = m
        else:
            if np.linalg.matrix_rank(m) < nf:
                msg = f"spectrum matrix {m.tolist()} is singular: the fluorochromes cannot be separated"
                raise TemplateError(msg)
            comp = np.linalg.inv(m) if nf == nd else np.linalg.pinv(m)
        object.__setattr__(self, "matrix", m)
        object.__setattr__(self, "compensation", comp)

    def index_of(self, name: str) -> int | None:
        """Column of the compensated values that holds dimension ``name``, if the matrix has it.

        A fluorochrome name wins; a detector name of a square matrix stands for the
        fluorochrome in the same position (how files written against ``$SPILLOVER`` name them).
        """
        if name in self.fluorochromes:
            return self.fluorochromes.index(name)
        if name in self.detectors and len(self.detectors) == len(self.fluorochromes):
            return self.detectors.index(name)
        return None

    def apply(self, detector_values: np.ndarray) -> np.ndarray:
        """Compensated values (events x fluorochromes) of detector values (events x detectors)."""
        return np.asarray(detector_values, dtype=np.float64) @ self.compensation
