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

Logicle and hyperlog are defined by their inverse; the forward value is the root of the
defining function, found by Halley's method on all events at once. The defining function is
used on the positive side only and negative values are reflected about the value of zero,
``y(-x) = 2 x1 - y(x)``, which is how logicle was defined (Parks et al. 2006) and how the
reference implementations (Moore's, and flowutils') compute it. (The compliance truth does
not tell this apart from the plain root of the biexponential: its gates lie far above the
negative events.) Near zero a Taylor series replaces the exponentials, whose difference
loses precision there.

Solving per event costs a few iterations of exponentials, so ``apply`` evaluates a table
of the root instead, built once per parameter set (cached on the frozen parameters). The
table covers 64 octaves of ``|x|``, the top one ending between ``2**13 T`` and ``2**14 T``,
cut into 128 segments per octave whose ends are the floats with seven leading mantissa
bits: an event's segment is read off its bit pattern, without a search. On each segment
the root is the quintic Hermite polynomial through the solver's roots at both ends with
their exact first and second derivatives, ``y' = 1 / B'(y)`` and
``y'' = -B''(y) / B'(y)**3``. Its truncation error, ``|y^(6)| h^6 / 46080`` for a segment
of width ``h``, is about ``1.1e-3 r^6 / (M + A)`` in the logarithmic part (``r = h / x``
at most ``2**-7``: below 1e-16), under the rounding of the values themselves. A table is
used only if its error, measured against the solver at three points inside every segment,
is below a quarter of the guaranteed ``TABLE_MAX_ERROR`` (1e-14 on the display scale);
values outside the table (zero, tiny, huge or non-finite) still go to the solver. Every
value goes through the same elementwise arithmetic whatever the array, so a boundary
converted with ``apply`` and an event with the same data value get the same scale value.
"""

from __future__ import annotations

import functools
import logging
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

logger = logging.getLogger(__name__)

_LN10 = math.log(10.0)
_EPS = float(np.finfo(np.float64).eps)
_TAYLOR_TERMS = 16
_MAX_ITER = 60

TABLE_MAX_ERROR = 1e-14
"""Largest difference between the tabulated logicle/hyperlog and the exact root (scale units)."""
# Segments per octave (2**_TABLE_BITS) and octaves covered: up to 2**13 x T, down 64 octaves.
_TABLE_BITS = 7
_TABLE_OCTAVES = 64
_TABLE_HEADROOM = 13
# A table is used only if its measured error is this far below the guarantee: the
# Hermite remainder varies little across a segment, but the check samples 3 points of it.
_TABLE_CHECK = TABLE_MAX_ERROR / 4


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

    T: float
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
        """Scale values (the transform) of data ``values``; ``0 -> x1``, NaN stays NaN.

        Evaluated through the transform's root table (see the module docstring): within
        :data:`TABLE_MAX_ERROR` of :meth:`apply_exact`, and identical to it outside the
        table's range.
        """
        x = np.asarray(values, dtype=np.float64)
        if x.ndim == 0:
            x = x.reshape(1)
        table = _root_table(self)
        if table is None:
            return self.apply_exact(x)
        v = np.abs(x)
        inside = table.covers(v)
        if inside is not None:
            v[~inside] = table.start  # any point of the table; overwritten below
        y = table.evaluate(v)
        # the reflection of the exact solver: y(-x) = 2 x1 - y(x)
        np.subtract(2.0 * self.x1, y, out=y, where=x < 0)
        if inside is not None:
            outside = ~inside
            y[outside] = self.apply_exact(x[outside])
        return y

    def apply_exact(self, values: np.ndarray) -> np.ndarray:
        """Scale values of data ``values`` solved event by event (the reference for :meth:`apply`)."""
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


@dataclass(frozen=True, eq=False)
class _RootTable:
    """Piecewise quintic root of a biexponential on ``[start, 2**64 start)``, indexed by bits.

    Segment ``k`` starts at the float whose bit pattern is ``start_bits + (k << shift)``;
    for ``start`` a power of two these are the floats with ``52 - shift`` leading mantissa
    bits, so ``(bits(v) - start_bits) >> shift`` is ``v``'s segment and clearing the low
    ``shift`` bits of ``v`` gives the segment's start exactly. ``coef[j, k]`` multiplies
    ``t**j``, ``t = v - start_k`` (exact, both in one binade).
    """

    start: float
    start_bits: int
    shift: int
    coef: np.ndarray
    measured_error: float

    @property
    def size(self) -> int:
        """Number of segments."""
        return int(self.coef.shape[1])

    def segments(self, v: np.ndarray) -> np.ndarray:
        """Segment index of each value (out of ``[0, size)`` outside the table)."""
        k = v.view(np.int64) - self.start_bits
        k >>= self.shift
        return k

    def covers(self, v: np.ndarray) -> np.ndarray | None:
        """Mask of the values ``v >= 0`` inside the table, or None if all are."""
        # a negative index is a huge unsigned one: one comparison catches both sides (NaN too)
        inside = self.segments(v).view(np.uint64) < self.size
        return None if inside.all() else inside

    def evaluate(self, v: np.ndarray) -> np.ndarray:
        """Tabulated root for values ``v`` inside the table (a new array)."""
        k = self.segments(v)
        low = np.int64(~((1 << self.shift) - 1))
        t = v - (v.view(np.int64) & low).view(np.float64)
        coef = self.coef
        acc = coef[-1].take(k)
        for row in coef[-2::-1]:
            acc *= t
            acc += row.take(k)
        return acc


def _hermite_coefficients(x: np.ndarray, y: np.ndarray, dy: np.ndarray, ddy: np.ndarray) -> np.ndarray:
    """Power-basis coefficients (in ``t = v - x[k]``) of the quintic Hermite interpolants.

    On segment ``k`` the quintic matches ``y``, ``dy`` and ``ddy`` at ``x[k]`` and ``x[k+1]``.
    """
    h = np.diff(x)
    y0, y1 = y[:-1], y[1:]
    d0, d1 = h * dy[:-1], h * dy[1:]
    q0, q1 = h * h * ddy[:-1], h * h * ddy[1:]
    # what the quadratic Taylor part leaves for s**3 .. s**5 to match at s = 1 (s = t / h):
    # value, slope and curvature; y1 - y0 and its difference with d0 are exact (Sterbenz)
    rest_y = ((y1 - y0) - d0) - 0.5 * q0
    rest_d = (d1 - d0) - q0
    rest_q = q1 - q0
    s3 = 10.0 * rest_y - 4.0 * rest_d + 0.5 * rest_q
    s4 = -15.0 * rest_y + 7.0 * rest_d - rest_q
    s5 = 6.0 * rest_y - 3.0 * rest_d + 0.5 * rest_q
    # h is a power of two: rescaling to t is exact
    return np.stack([y0, dy[:-1], 0.5 * ddy[:-1], s3 / h**3, s4 / h**4, s5 / h**5])


@functools.lru_cache(maxsize=16)
def _root_table(xf: _Biexponential) -> _RootTable | None:
    """The root table of a transform (cached per parameter set), or None if not accurate enough."""
    # the bit arithmetic needs normal floats at both ends (absurd T values just get less table)
    top = min(max(math.frexp(float(xf.T))[1] + _TABLE_HEADROOM, -1021 + _TABLE_OCTAVES), 1023)
    start = math.ldexp(1.0, top - _TABLE_OCTAVES)
    start_bits = int(np.float64(start).view(np.int64))
    shift = 52 - _TABLE_BITS
    n = _TABLE_OCTAVES << _TABLE_BITS
    nodes = (start_bits + (np.arange(n + 1, dtype=np.int64) << shift)).view(np.float64)
    with np.errstate(all="ignore"):  # a failure shows as a non-finite error: no table
        roots = xf._solve_positive(nodes.copy())
        dg, ddg = xf._derivs(roots)
        coef = _hermite_coefficients(nodes, roots, 1.0 / dg, -ddg / (dg * dg * dg))
        coef.flags.writeable = False
        table = _RootTable(start, start_bits, shift, coef, math.nan)
        h = np.diff(nodes)
        probe = np.concatenate([nodes[:-1] + f * h for f in (0.25, 0.5, 0.75)])
        error = float(np.max(np.abs(table.evaluate(probe) - xf._solve_positive(probe.copy()))))
    if not error <= _TABLE_CHECK:
        logger.debug("%r: root table error %.3g > %.3g; solving per event", xf, error, _TABLE_CHECK)
        return None
    return _RootTable(start, start_bits, shift, coef, error)


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
