"""Per-condition statistics for drug-combination experiments: summaries, tests, synergy.

Every function takes a tidy per-sample table (one row per sample, design columns such as
``cell_line`` and ``treatment``, one column per measure such as ``viable_pct``) and returns a
tidy :class:`pandas.DataFrame`. Nothing here plots, reads files or changes its input.

Rows are left out of every calculation when

* the table has a ``role`` column and the row's role is not ``role`` (by default only
  ``"sample"`` rows are analysed, so unstained and single-stain controls never become arms),
* its ``status`` is ``"error"`` or ``"failed"`` (a file that could not be analysed), or
* the measure is NaN or infinite.

:func:`summarize` counts the last two kinds in ``n_excluded``.

Comparisons of arms (treatments) within each cell line:

* :func:`compare_to_vehicle`: Dunnett's many-to-one test (:func:`scipy.stats.dunnett`),
* :func:`pairwise_tukey`: Tukey's HSD over all pairs (:func:`scipy.stats.tukey_hsd`),
* :func:`combination_vs_singles`: Welch t-tests of the combination against each single agent,
  Holm-corrected,
* :func:`two_way_anova`: cell line x treatment ANOVA with Type II sums of squares.

Combination metrics: :func:`bliss` (Bliss independence and highest single agent, with
replicate-level confidence intervals and a test of the interaction) and the Chou-Talalay
median-effect method (:func:`chou_talalay`, :func:`combination_index`, :func:`ci_call`), and
:func:`dose_series_synergy`, which runs the whole CompuSyn analysis (median-effect fits, CI and
DRI at chosen effect levels and at each combination tested) on a dose-series experiment table;
:func:`has_dose_series` tells which of :func:`bliss` and :func:`dose_series_synergy` a table needs.
:func:`synergy_surface` scores each combination against Loewe additivity or ZIP with the
optional ``synergy`` package.

Examples
--------
>>> from cytoflow_res import stats
>>> stats.summarize(table, ["viable_pct", "total_apoptotic_pct"])  # doctest: +SKIP
>>> stats.compare_to_vehicle(table, "total_apoptotic_pct")  # doctest: +SKIP
>>> stats.bliss(table, "viable_pct")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats as sps

from cytoflow_res.errors import CytoflowResError, DesignError, FitError

__all__ = [
    "BLISS_COLUMNS",
    "COMPARISON_COLUMNS",
    "DOSE_SERIES_COLUMNS",
    "SURFACE_COLUMNS",
    "MedianEffectFit",
    "bliss",
    "chou_talalay",
    "ci_call",
    "combination_index",
    "combination_vs_singles",
    "compare_to_vehicle",
    "dose_series_synergy",
    "has_dose_series",
    "pairwise_tukey",
    "significance_mark",
    "summarize",
    "synergy_surface",
    "two_way_anova",
]

log = logging.getLogger(__name__)

#: Column naming the arm of each sample.
TREATMENT = "treatment"

#: ``status`` values of rows that carry no usable result.
FAILED_STATUSES = frozenset({"error", "failed"})

#: Columns of :func:`compare_to_vehicle`, :func:`pairwise_tukey` and
#: :func:`combination_vs_singles` after the grouping columns (the last adds ``p_raw``).
COMPARISON_COLUMNS = (
    "measure", "group1", "group2", "n1", "n2", "mean_diff", "statistic", "p_value",
    "test", "correction", "mark",
)

_MARKS = ((1e-4, "****"), (1e-3, "***"), (1e-2, "**"), (5e-2, "*"))

# scipy 1.15 renamed dunnett's ``random_state`` to ``rng``; pyproject allows scipy >= 1.11.
_DUNNETT_RNG = "rng" if "rng" in inspect.signature(sps.dunnett).parameters else "random_state"

Direction = Literal["increase", "decrease"]
BlissMethod = Literal["bootstrap-t", "delta-t"]
SurfaceModel = Literal["loewe", "zip"]


# --------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def _quiet_constant_samples() -> Iterator[None]:
    # scipy warns of "catastrophic cancellation" when an arm's values are all equal (e.g. 0%);
    # for such exact data the variance is exactly 0 and the result is right.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Precision loss occurred", category=RuntimeWarning)
        yield


def significance_mark(p: float) -> str:
    """Asterisks for a p-value, in the GraphPad Prism convention.

    Parameters
    ----------
    p
        A p-value.

    Returns
    -------
    str
        ``"****"`` for p < 0.0001, ``"***"`` < 0.001, ``"**"`` < 0.01, ``"*"`` < 0.05,
        ``"ns"`` otherwise, and ``"n/a"`` when p is NaN.

    Examples
    --------
    >>> significance_mark(0.003)
    '**'
    >>> significance_mark(0.05)
    'ns'
    """
    p = float(p)
    if math.isnan(p):
        return "n/a"
    for threshold, mark in _MARKS:
        if p < threshold:
            return mark
    return "ns"


def _as_list(columns: str | Sequence[str] | None) -> list[str]:
    if columns is None:
        return []
    if isinstance(columns, str):
        return [columns]
    return list(columns)


def _require_columns(table: pd.DataFrame, columns: Sequence[str], *, what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        msg = (
            f"{what}: the table has no column {', '.join(map(repr, missing))}; "
            f"its columns are {', '.join(map(str, table.columns))}"
        )
        raise DesignError(msg)


def _require_numeric(table: pd.DataFrame, measures: Sequence[str], *, what: str) -> None:
    for measure in measures:
        if not pd.api.types.is_numeric_dtype(table[measure]):
            msg = (
                f"{what}: column {measure!r} is not numeric (dtype {table[measure].dtype}); "
                "convert it, e.g. with pandas.to_numeric"
            )
            raise DesignError(msg)


def _prepare(
    table: pd.DataFrame, columns: Sequence[str], measures: Sequence[str], *, role: str | None, what: str,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Check the columns, keep the rows of ``role``; return them and a failed-status mask."""
    _require_columns(table, [*columns, *measures], what=what)
    _require_numeric(table, measures, what=what)
    data = table
    if role is not None and "role" in table.columns:
        # a row without a role is a sample row
        roles = table["role"].fillna("").astype(str).str.strip()
        data = table[(roles == role) | (roles == "")]
    # positions, not the caller's index (which may repeat, e.g. after pd.concat), identify rows
    data = data.reset_index(drop=True)
    if "status" in data.columns:
        failed = data["status"].astype(str).str.strip().str.lower().isin(FAILED_STATUSES).to_numpy()
    else:
        failed = np.zeros(len(data), dtype=bool)
    return data, failed


def _groups(data: pd.DataFrame, by: list[str]) -> Iterator[tuple[dict[str, Any], pd.DataFrame]]:
    if not by:
        yield {}, data
        return
    for keys, group in data.groupby(by, sort=False, dropna=False):
        values = keys if isinstance(keys, tuple) else (keys,)
        plain = [v.item() if isinstance(v, np.generic) else v for v in values]
        yield dict(zip(by, plain, strict=True)), group


def _where(keys: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in keys.items()) if keys else "the table"


def _arm_values(failed: np.ndarray, group: pd.DataFrame, measure: str) -> dict[str, np.ndarray]:
    """Usable values of ``measure`` per treatment label, in order of first appearance.

    ``group`` is part of a table from :func:`_prepare`, whose index is the row position in
    ``failed``.
    """
    arms: dict[str, np.ndarray] = {}
    for label, rows in group.groupby(TREATMENT, sort=False):
        x = rows[measure].to_numpy(dtype=float)
        keep = np.isfinite(x) & ~failed[rows.index.to_numpy()]
        arms[str(label)] = x[keep]
    return arms


def _found(arms: dict[str, np.ndarray]) -> str:
    return ", ".join(f"{k!r} (n={v.size})" for k, v in arms.items()) or "none"


def _holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values; NaNs stay NaN and do not count as tests."""
    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = valid.size
    if m == 0:
        return out
    order = valid[np.argsort(p[valid], kind="stable")]
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adjusted
    return out


def _comparison_frame(rows: list[dict[str, Any]], by: list[str], extra: Sequence[str] = ()) -> pd.DataFrame:
    columns = [*by, *COMPARISON_COLUMNS, *extra]
    return pd.DataFrame(rows, columns=columns)


# --------------------------------------------------------------------------- summaries
def summarize(
    table: pd.DataFrame,
    measures: str | Sequence[str],
    *,
    by: str | Sequence[str] | None = ("cell_line", "treatment"),
    role: str | None = "sample",
) -> pd.DataFrame:
    """Mean, SD, SEM and t-based 95% confidence interval of each measure per group.

    Parameters
    ----------
    table
        Tidy per-sample table.
    measures
        Column name(s) to summarise.
    by
        Grouping column(s); None summarises the whole table as one group.
    role
        If the table has a ``role`` column, only rows with this role (or no role) are used;
        None: all rows.

    Returns
    -------
    pandas.DataFrame
        One row per group x measure, in order of first appearance: the ``by`` columns,
        ``measure``, ``n`` (values used), ``n_excluded`` (rows of the group left out because
        their status is error/failed or the value is NaN/infinite), ``mean``, ``sd`` (ddof=1),
        ``sem``, ``ci95_low``, ``ci95_high`` (mean +- t(0.975, n-1) * sem). Statistics that
        need more values than there are (sd with n < 2, mean with n = 0) are NaN.

    Raises
    ------
    DesignError
        A column is missing or a measure is not numeric.
    """
    measure_list = _as_list(measures)
    by_list = _as_list(by)
    data, failed = _prepare(table, by_list, measure_list, role=role, what="summarize")
    rows: list[dict[str, Any]] = []
    for keys, group in _groups(data, by_list):
        ok_status = ~failed[group.index.to_numpy()]
        for measure in measure_list:
            x = group[measure].to_numpy(dtype=float)
            keep = ok_status & np.isfinite(x)
            x = x[keep]
            n = int(x.size)
            mean = float(x.mean()) if n else math.nan
            sd = float(x.std(ddof=1)) if n > 1 else math.nan
            sem = sd / math.sqrt(n) if n > 1 else math.nan
            half = float(sps.t.ppf(0.975, n - 1)) * sem if n > 1 else math.nan
            rows.append({
                **keys, "measure": measure, "n": n, "n_excluded": int((~keep).sum()),
                "mean": mean, "sd": sd, "sem": sem, "ci95_low": mean - half, "ci95_high": mean + half,
            })
    columns = [*by_list, "measure", "n", "n_excluded", "mean", "sd", "sem", "ci95_low", "ci95_high"]
    return pd.DataFrame(rows, columns=columns)


# --------------------------------------------------------------------------- arm comparisons
def compare_to_vehicle(
    table: pd.DataFrame,
    measure: str,
    *,
    by: str | Sequence[str] | None = "cell_line",
    control: str = "vehicle",
    role: str | None = "sample",
    seed: int = 0,
) -> pd.DataFrame:
    """Dunnett's test of every arm against the vehicle arm, within each cell line.

    Parameters
    ----------
    table
        Tidy per-sample table with a ``treatment`` column.
    measure
        Column to compare.
    by
        Column(s) defining independent experiments (one Dunnett family each); None: one family.
    control
        Treatment label of the control arm.
    role
        If the table has a ``role`` column, only rows with this role (or no role) are used;
        None: all rows.
    seed
        Seed of the quasi-Monte Carlo integration scipy uses for Dunnett p-values (the same
        seed gives the same p-values as calling :func:`scipy.stats.dunnett` with
        ``rng=numpy.random.default_rng(seed)``).

    Returns
    -------
    pandas.DataFrame
        One row per non-control arm: the ``by`` columns, then :data:`COMPARISON_COLUMNS`;
        ``group1`` is the control, ``group2`` the arm, ``mean_diff`` = mean(arm) - mean(control),
        ``statistic`` scipy's Dunnett t statistic, ``p_value`` two-sided and already adjusted
        for the many-to-one family (``correction`` "Dunnett"). Arms with no usable value are
        left out (and logged).

    Raises
    ------
    DesignError
        A column is missing, or a group has no usable control values.
    """
    by_list = _as_list(by)
    data, failed = _prepare(table, [*by_list, TREATMENT], [measure], role=role, what="compare_to_vehicle")
    rows: list[dict[str, Any]] = []
    for keys, group in _groups(data, by_list):
        arms = _arm_values(failed, group, measure)
        if control not in arms or arms[control].size == 0:
            msg = (
                f"compare_to_vehicle: {_where(keys)} has no usable {control!r} values of {measure!r}; "
                f"arms found: {_found(arms)}; pass control= to name the control arm"
            )
            raise DesignError(msg)
        others = {k: v for k, v in arms.items() if k != control and v.size > 0}
        for label in sorted(set(arms) - set(others) - {control}):
            log.warning("compare_to_vehicle: %s arm %r has no usable values; left out", _where(keys), label)
        if not others:
            log.warning("compare_to_vehicle: %s has only the control arm; no comparisons", _where(keys))
            continue
        n_total = arms[control].size + sum(v.size for v in others.values())
        if n_total - (len(others) + 1) < 1:  # the pooled variance needs a degree of freedom
            log.warning("compare_to_vehicle: %s has one value per arm (%s); Dunnett's test needs "
                        "replicates in at least one arm", _where(keys), _found(arms))
            continue
        rng = np.random.default_rng(seed)
        with _quiet_constant_samples():
            res = sps.dunnett(*others.values(), control=arms[control], alternative="two-sided",
                              **{_DUNNETT_RNG: rng})
        ctrl_mean = float(arms[control].mean())
        for i, (label, x) in enumerate(others.items()):
            p = float(res.pvalue[i])
            rows.append({
                **keys, "measure": measure, "group1": control, "group2": label,
                "n1": int(arms[control].size), "n2": int(x.size),
                "mean_diff": float(x.mean()) - ctrl_mean, "statistic": float(res.statistic[i]),
                "p_value": p, "test": "Dunnett vs vehicle", "correction": "Dunnett",
                "mark": significance_mark(p),
            })
    return _comparison_frame(rows, by_list)


def pairwise_tukey(
    table: pd.DataFrame,
    measure: str,
    *,
    by: str | Sequence[str] | None = "cell_line",
    role: str | None = "sample",
) -> pd.DataFrame:
    """Tukey's honestly significant difference test over all pairs of arms, per cell line.

    Parameters
    ----------
    table
        Tidy per-sample table with a ``treatment`` column.
    measure
        Column to compare.
    by
        Column(s) defining independent experiments (one Tukey family each); None: one family.
    role
        If the table has a ``role`` column, only rows with this role (or no role) are used;
        None: all rows.

    Returns
    -------
    pandas.DataFrame
        One row per pair of arms (in order of first appearance): the ``by`` columns, then
        :data:`COMPARISON_COLUMNS`; ``mean_diff`` = mean(group2) - mean(group1),
        ``statistic`` the Tukey-Kramer studentized range
        q = abs(mean_diff) / sqrt(MSE / 2 * (1/n1 + 1/n2)) (MSE pooled over all arms of
        the group), ``p_value`` from :func:`scipy.stats.tukey_hsd` (adjusted for all pairs).
        Arms with fewer than two usable values are left out (and logged); groups with fewer
        than two arms left give no rows.

    Raises
    ------
    DesignError
        A column is missing.
    """
    by_list = _as_list(by)
    data, failed = _prepare(table, [*by_list, TREATMENT], [measure], role=role, what="pairwise_tukey")
    rows: list[dict[str, Any]] = []
    for keys, group in _groups(data, by_list):
        all_arms = _arm_values(failed, group, measure)
        arms = {k: v for k, v in all_arms.items() if v.size > 1}  # scipy's tukey_hsd needs n > 1
        for label in (k for k in all_arms if k not in arms):
            log.warning("pairwise_tukey: %s arm %r has fewer than two usable values; left out",
                        _where(keys), label)
        n_total = sum(v.size for v in arms.values())
        if len(arms) < 2 or n_total - len(arms) < 1:
            log.warning("pairwise_tukey: %s has too few arms or values for Tukey HSD (%s)",
                        _where(keys), _found(arms))
            continue
        labels = list(arms)
        with _quiet_constant_samples():
            res = sps.tukey_hsd(*arms.values())
        mse = sum(float(((v - v.mean()) ** 2).sum()) for v in arms.values()) / (n_total - len(arms))
        for i in range(len(labels)):
            for j in range(i + 1, len(labels)):
                x1, x2 = arms[labels[i]], arms[labels[j]]
                diff = float(x2.mean() - x1.mean())
                scale = math.sqrt(mse / 2.0 * (1.0 / x1.size + 1.0 / x2.size))
                q = abs(diff) / scale if scale > 0 else (math.inf if diff else math.nan)
                p = float(res.pvalue[i, j])
                rows.append({
                    **keys, "measure": measure, "group1": labels[i], "group2": labels[j],
                    "n1": int(x1.size), "n2": int(x2.size), "mean_diff": diff, "statistic": q,
                    "p_value": p, "test": "Tukey HSD", "correction": "Tukey",
                    "mark": significance_mark(p),
                })
    return _comparison_frame(rows, by_list)


def _welch(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Welch's t (x - y) and two-sided p; NaN when a sample has < 2 values or no spread."""
    if x.size < 2 or y.size < 2:
        return math.nan, math.nan
    if x.var(ddof=1) == 0 and y.var(ddof=1) == 0:
        return math.nan, math.nan
    with _quiet_constant_samples():
        res = sps.ttest_ind(x, y, equal_var=False)
    return float(res.statistic), float(res.pvalue)


def combination_vs_singles(
    table: pd.DataFrame,
    measure: str,
    *,
    by: str | Sequence[str] | None = "cell_line",
    combination: str | None = None,
    singles: Sequence[str] | None = None,
    role: str | None = "sample",
) -> pd.DataFrame:
    """Is the combination different from each of its single agents? Welch t-tests, Holm.

    Parameters
    ----------
    table
        Tidy per-sample table with a ``treatment`` column.
    measure
        Column to compare.
    by
        Column(s) defining independent experiments; None: one experiment.
    combination
        Treatment label of the combination arm; by default the one label containing ``"+"``.
    singles
        Treatment labels of the single agents; by default the parts of the combination label
        (``"drugA+drugB"`` -> ``"drugA"``, ``"drugB"``).
    role
        If the table has a ``role`` column, only rows with this role (or no role) are used;
        None: all rows.

    Returns
    -------
    pandas.DataFrame
        One row per single agent: the ``by`` columns, :data:`COMPARISON_COLUMNS` and ``p_raw``;
        ``group1`` is the single agent, ``group2`` the combination, ``mean_diff`` and the Welch
        ``statistic`` are combination minus single agent, ``p_raw`` is the two-sided Welch
        p-value and ``p_value`` its Holm adjustment across the comparisons of the group.
        p is NaN when an arm has fewer than two values or neither arm varies.

    Raises
    ------
    DesignError
        A column is missing, or the combination or a single agent is not found.
    """
    by_list = _as_list(by)
    data, failed = _prepare(table, [*by_list, TREATMENT], [measure], role=role,
                            what="combination_vs_singles")
    rows: list[dict[str, Any]] = []
    for keys, group in _groups(data, by_list):
        arms = _arm_values(failed, group, measure)
        combo = _find_combination(arms, group, combination, keys, what="combination_vs_singles")
        if singles is None:
            single_labels = list(_find_singles(arms, group, combo, None, None, keys,
                                               what="combination_vs_singles", option="singles="))
        else:
            single_labels = list(singles)
            _require_arms(arms, {"single agent": single_labels}, keys, what="combination_vs_singles")
        tests = [_welch(arms[combo], arms[s]) for s in single_labels]
        p_raw = np.array([p for _, p in tests])
        p_adj = _holm(p_raw)
        for s, (t, p), pa in zip(single_labels, tests, p_adj, strict=True):
            x1, x2 = arms[s], arms[combo]
            diff = float(x2.mean() - x1.mean()) if x1.size and x2.size else math.nan
            rows.append({
                **keys, "measure": measure, "group1": s, "group2": combo,
                "n1": int(x1.size), "n2": int(x2.size), "mean_diff": diff, "statistic": t,
                "p_value": float(pa), "test": "Welch t-test", "correction": "Holm",
                "mark": significance_mark(pa), "p_raw": p,
            })
    return _comparison_frame(rows, by_list, extra=("p_raw",))


# --------------------------------------------------------------------------- two-way ANOVA
def _rss_rank(design: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    coef, _, rank, _ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    return float(resid @ resid), int(rank)


def _within_ss(codes: np.ndarray, y: np.ndarray) -> float:
    """Residual sum of squares about the group means."""
    sums = np.bincount(codes, weights=y)
    counts = np.bincount(codes)
    means = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    resid = y - means[codes]
    return float(resid @ resid)


def _one_hot(codes: np.ndarray, n_levels: int) -> np.ndarray:
    out = np.zeros((codes.size, n_levels))
    out[np.arange(codes.size), codes] = 1.0
    return out


def two_way_anova(
    table: pd.DataFrame,
    measure: str,
    *,
    factors: Sequence[str] = ("cell_line", "treatment"),
    role: str | None = "sample",
) -> pd.DataFrame:
    """Two-way ANOVA with interaction, Type II sums of squares (balanced or not).

    Each sum of squares is a comparison of least-squares fits (group means, and
    :func:`numpy.linalg.lstsq` for the additive model A + B):
    SS(A) = RSS(B) - RSS(A + B), SS(B) = RSS(A) - RSS(A + B),
    SS(AxB) = RSS(A + B) - RSS(A x B), residual = RSS(A x B), each with the difference in
    model rank as its degrees of freedom. This is Type II (each main effect adjusted for the
    other, not for the interaction), which is invariant to the coding of the factors. In a
    balanced design Types I, II and III coincide.

    Parameters
    ----------
    table
        Tidy per-sample table.
    measure
        Response column.
    factors
        The two factor columns (A, B).
    role
        If the table has a ``role`` column, only rows with this role (or no role) are used;
        None: all rows.

    Returns
    -------
    pandas.DataFrame
        Four rows, terms ``A``, ``B``, ``A:B`` (named after the factor columns) and
        ``Residual``, with columns ``measure``, ``term``, ``df``, ``sum_sq``, ``mean_sq``,
        ``F``, ``p_value``, ``mark`` (F, p and mark are NaN / ``"n/a"`` on the residual row).
        Empty cells are allowed: the interaction then has fewer degrees of freedom.

    Raises
    ------
    DesignError
        Not exactly two factors, a column is missing, a factor has fewer than two levels, or
        no cell is replicated (no residual degrees of freedom).
    """
    factor_list = _as_list(factors)
    if len(factor_list) != 2 or factor_list[0] == factor_list[1]:
        msg = f"two_way_anova: factors must be two different columns, got {factor_list!r}"
        raise DesignError(msg)
    data, failed = _prepare(table, factor_list, [measure], role=role, what="two_way_anova")
    y = data[measure].to_numpy(dtype=float)
    keep = ~failed & np.isfinite(y) & data[factor_list].notna().all(axis=1).to_numpy()
    y = y[keep]
    codes = []
    for name in factor_list:
        c, levels = pd.factorize(data[name][keep], sort=False)
        if len(levels) < 2:
            msg = (
                f"two_way_anova: factor {name!r} needs at least two levels among the usable rows; "
                f"found {list(map(str, levels))}"
            )
            raise DesignError(msg)
        codes.append((np.asarray(c), len(levels)))
    (ca, na), (cb, nb) = codes
    # one-factor and cell-means fits are group means: exact; only the additive fit needs lstsq
    rss_a, rank_a = _within_ss(ca, y), na
    rss_b, rank_b = _within_ss(cb, y), nb
    cells = ca * nb + cb
    rss_full, rank_full = _within_ss(cells, y), int(np.unique(cells).size)
    rss_ab, rank_ab = _rss_rank(np.hstack([_one_hot(ca, na), _one_hot(cb, nb)]), y)
    df_res = y.size - rank_full
    if df_res < 1:
        msg = (
            f"two_way_anova: no residual degrees of freedom ({y.size} usable values in "
            f"{rank_full} cells of {factor_list[0]} x {factor_list[1]}); replicate at least one cell"
        )
        raise DesignError(msg)
    # differences of residual sums below rounding error of the total are zero
    tol = 1e-12 * float(((y - y.mean()) ** 2).sum())
    a_name, b_name = factor_list
    terms = [
        (a_name, rss_b - rss_ab, rank_ab - rank_b),
        (b_name, rss_a - rss_ab, rank_ab - rank_a),
        (f"{a_name}:{b_name}", rss_ab - rss_full, rank_full - rank_ab),
    ]
    terms = [(name, ss if ss > tol else 0.0, df) for name, ss, df in terms]
    rss_full = rss_full if rss_full > tol else 0.0
    ms_res = rss_full / df_res
    rows: list[dict[str, Any]] = []
    for term, ss, df in terms:
        ms = ss / df if df > 0 else math.nan
        if df == 0:
            f_value = math.nan
        elif ms_res > 0:
            f_value = ms / ms_res
        else:
            f_value = math.inf if ms > 0 else math.nan
        p = float(sps.f.sf(f_value, df, df_res)) if not math.isnan(f_value) else math.nan
        rows.append({"measure": measure, "term": term, "df": int(df), "sum_sq": ss, "mean_sq": ms,
                     "F": f_value, "p_value": p, "mark": significance_mark(p)})
    rows.append({"measure": measure, "term": "Residual", "df": int(df_res), "sum_sq": rss_full,
                 "mean_sq": ms_res, "F": math.nan, "p_value": math.nan, "mark": "n/a"})
    return pd.DataFrame(rows, columns=["measure", "term", "df", "sum_sq", "mean_sq", "F", "p_value", "mark"])


# --------------------------------------------------------------------------- arm detection
def _require_arms(
    arms: dict[str, np.ndarray], wanted: dict[str, Sequence[str]], keys: dict[str, Any], *, what: str,
) -> None:
    for role_name, labels in wanted.items():
        for label in labels:
            if label not in arms:
                msg = (
                    f"{what}: {_where(keys)} has no {role_name} arm {label!r}; "
                    f"arms found: {_found(arms)}"
                )
                raise DesignError(msg)


def _dose_pattern(group: pd.DataFrame) -> dict[str, tuple[bool, bool]] | None:
    """Treatment label -> (gets drug A, gets drug B) from ``dose_a``/``dose_b``, if present."""
    if not {"dose_a", "dose_b"} <= set(group.columns):
        return None
    patterns: dict[str, tuple[bool, bool]] = {}
    for label, rows in group.groupby(TREATMENT, sort=False):
        dose_a = pd.to_numeric(rows["dose_a"], errors="coerce").fillna(0.0)
        dose_b = pd.to_numeric(rows["dose_b"], errors="coerce").fillna(0.0)
        patterns[str(label)] = (bool((dose_a > 0).any()), bool((dose_b > 0).any()))
    return patterns


def _labels_with(patterns: dict[str, tuple[bool, bool]], pattern: tuple[bool, bool]) -> list[str]:
    return [label for label, p in patterns.items() if p == pattern]


def _find_combination(
    arms: dict[str, np.ndarray], group: pd.DataFrame, combination: str | None, keys: dict[str, Any],
    *, what: str,
) -> str:
    if combination is not None:
        _require_arms(arms, {"combination": [combination]}, keys, what=what)
        return combination
    candidates = [label for label in arms if "+" in label]
    source = "treatment labels containing '+'"
    if not candidates:
        patterns = _dose_pattern(group)
        if patterns is not None:
            candidates = _labels_with(patterns, (True, True))
            source = "arms with dose_a > 0 and dose_b > 0"
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        doses = "" if _dose_pattern(group) is None else ", and no arm has both dose_a and dose_b > 0"
        msg = (
            f"{what}: {_where(keys)} has no combination arm (no treatment label contains '+'{doses}); "
            f"arms found: {_found(arms)}; pass combination="
        )
    else:
        msg = (
            f"{what}: {_where(keys)} has several combination arms ({source}): "
            f"{', '.join(map(repr, candidates))}; pass combination= to choose one"
        )
    raise DesignError(msg)


def _find_singles(
    arms: dict[str, np.ndarray], group: pd.DataFrame, combination: str, a: str | None, b: str | None,
    keys: dict[str, Any], *, what: str, option: str | None = None,
) -> tuple[str, str]:
    """The single-agent arms: given, else the parts of the combination label, else by dose."""
    parts = [p.strip() for p in combination.split("+")]
    patterns = _dose_pattern(group)
    chosen: list[str] = []
    for index, given in enumerate((a, b)):
        name = "ab"[index]
        if given is not None:
            _require_arms(arms, {f"single-agent ({name}=)": [given]}, keys, what=what)
            chosen.append(given)
            continue
        if len(parts) == 2 and parts[index] in arms:
            chosen.append(parts[index])
            continue
        by_dose = [] if patterns is None else _labels_with(patterns, (index == 0, index == 1))
        if len(by_dose) == 1:
            chosen.append(by_dose[0])
            continue
        if len(parts) == 2:
            expected = f"{parts[index]!r} (from combination {combination!r})"
        else:
            expected = f"for drug {name.upper()} (combination {combination!r} is not two names joined by '+')"
        ambiguous = (
            f"; several arms get only drug {name.upper()}: {', '.join(map(repr, by_dose))}" if by_dose else ""
        )
        msg = (
            f"{what}: {_where(keys)} has no single-agent arm {expected}{ambiguous}; arms found: "
            f"{_found(arms)}; pass {option or name + '='} to name the single agent"
        )
        raise DesignError(msg)
    return chosen[0], chosen[1]


# --------------------------------------------------------------------------- Bliss / HSA
def _fa_terms(
    means: dict[str, np.ndarray], direction: Direction,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Fraction affected of arms a, b, ab, and d fa_k / d m_k (the same for every arm)."""
    v = means["vehicle"]
    if direction == "increase":
        denominator, sign = 100.0 - v, 1.0
    else:
        denominator, sign = v, -1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        fa = {k: sign * (means[k] - v) / denominator for k in ("a", "b", "ab")}
        return fa, sign / denominator


def _excess_and_gradient(
    means: dict[str, np.ndarray], direction: Direction, kind: Literal["bliss", "hsa"],
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Bliss or HSA excess from arm means, and its gradient with respect to each arm mean.

    With fa_k = s * (m_k - v) / D (s = +1, D = 100 - v for "increase"; s = -1, D = v for
    "decrease"): d fa_k / d m_k = s / D and d fa_k / d v = -(1 - fa_k) * s / D.
    """
    fa, dfa = _fa_terms(means, direction)
    if kind == "bliss":
        excess = fa["ab"] - (fa["a"] + fa["b"] - fa["a"] * fa["b"])
        weight = {"ab": np.ones_like(fa["ab"]), "a": fa["b"] - 1.0, "b": fa["a"] - 1.0}
    else:
        a_wins = fa["a"] >= fa["b"]
        excess = fa["ab"] - np.where(a_wins, fa["a"], fa["b"])
        weight = {"ab": np.ones_like(fa["ab"]), "a": np.where(a_wins, -1.0, 0.0),
                  "b": np.where(a_wins, 0.0, -1.0)}
    gradient = {k: weight[k] * dfa for k in ("a", "b", "ab")}
    gradient["vehicle"] = -dfa * sum(weight[k] * (1.0 - fa[k]) for k in ("a", "b", "ab"))
    return excess, gradient


def _delta_se(gradient: dict[str, np.ndarray], variances: dict[str, np.ndarray],
              n: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Delta-method standard error and Welch-Satterthwaite degrees of freedom."""
    terms = {k: gradient[k] ** 2 * variances[k] / n[k] for k in gradient}
    var = sum(terms.values())
    with np.errstate(divide="ignore", invalid="ignore"):
        df = var**2 / sum(t**2 / (n[k] - 1) for k, t in terms.items())
    return np.sqrt(var), df


def _interaction_inference(
    samples: dict[str, np.ndarray], direction: Direction, method: BlissMethod, n_boot: int,
    rng: np.random.Generator,
) -> dict[str, tuple[float, float, float, float]]:
    """Estimate, 95% CI and two-sided p of the Bliss and the HSA excess (same resamples)."""
    kinds: tuple[Literal["bliss", "hsa"], ...] = ("bliss", "hsa")
    means = {k: np.asarray(v.mean()) for k, v in samples.items()}
    n = {k: int(v.size) for k, v in samples.items()}
    out: dict[str, tuple[float, float, float, float]] = {}
    observed: dict[str, tuple[float, float]] = {}
    for kind in kinds:
        estimate, gradient = _excess_and_gradient(means, direction, kind)
        est = float(estimate)
        out[kind] = (est, math.nan, math.nan, math.nan)
        if min(n.values()) < 2 or not math.isfinite(est):
            continue
        variances = {k: np.asarray(v.var(ddof=1)) for k, v in samples.items()}
        se_arr, df_arr = _delta_se(gradient, variances, n)
        se, df = float(se_arr), float(df_arr)
        if not se > 0:
            continue
        if method == "delta-t":
            half = float(sps.t.ppf(0.975, df)) * se
            out[kind] = (est, est - half, est + half, float(2.0 * sps.t.sf(abs(est) / se, df)))
        else:
            observed[kind] = (est, se)
    if not observed:
        return out
    # Symmetric studentized bootstrap: resample each arm's replicates, recompute the excess
    # and its delta-method SE, and refer |t| to the resampled |T*| (Hall 1988).
    boot_means: dict[str, np.ndarray] = {}
    boot_vars: dict[str, np.ndarray] = {}
    for k, x in samples.items():
        resampled = x[rng.integers(0, x.size, size=(n_boot, x.size))]
        boot_means[k] = resampled.mean(axis=1)
        boot_vars[k] = resampled.var(axis=1, ddof=1)
    for kind in kinds:
        if kind not in observed:
            continue
        est, se = observed[kind]
        boot_est, boot_grad = _excess_and_gradient(boot_means, direction, kind)
        boot_se, _ = _delta_se(boot_grad, boot_vars, n)
        with np.errstate(divide="ignore", invalid="ignore"):
            t_star = np.abs(boot_est - est) / boot_se
        # A resample with no spread in any arm has no SE: infinitely extreme unless it
        # reproduces the estimate exactly (0/0), when it carries no information and is dropped.
        t_star = t_star[~np.isnan(t_star)]
        if t_star.size == 0:
            continue
        crit = float(np.quantile(t_star, 0.95, method="higher"))
        p = (1.0 + float(np.count_nonzero(t_star >= abs(est) / se))) / (1.0 + t_star.size)
        out[kind] = (est, est - crit * se, est + crit * se, p)
    return out


def _call(low: float, high: float) -> str:
    if math.isnan(low) or math.isnan(high):
        return "undetermined"
    if low > 0:
        return "synergy"
    if high < 0:
        return "antagonism"
    return "additive"


#: Columns of :func:`bliss` after the grouping columns.
BLISS_COLUMNS = (
    "measure", "direction", "vehicle", "arm_a", "arm_b", "arm_ab",
    "n_vehicle", "n_a", "n_b", "n_ab",
    "fa_a", "fa_b", "fa_ab", "bliss_expected", "bliss_excess", "bliss_ci_low", "bliss_ci_high", "bliss_p",
    "hsa_excess", "hsa_ci_low", "hsa_ci_high", "hsa_p", "call", "method",
)


def bliss(
    table: pd.DataFrame,
    measure: str = "total_apoptotic_pct",
    *,
    by: str | Sequence[str] | None = "cell_line",
    vehicle: str = "vehicle",
    a: str | None = None,
    b: str | None = None,
    combination: str | None = None,
    direction: Direction | None = None,
    method: BlissMethod = "bootstrap-t",
    n_boot: int = 2000,
    seed: int = 0,
    role: str | None = "sample",
) -> pd.DataFrame:
    """Bliss independence and highest-single-agent excess of a two-drug combination.

    The fraction affected of each arm is computed from arm means after vehicle correction:

    * ``direction="increase"`` (more = more effect, e.g. ``total_apoptotic_pct``):
      fa = (mean - mean_vehicle) / (100 - mean_vehicle);
    * ``direction="decrease"`` (less = more effect, e.g. ``viable_pct``):
      fa = (mean_vehicle - mean) / mean_vehicle.

    Bliss expected E = fa_A + fa_B - fa_A * fa_B; ``bliss_excess`` = fa_AB - E;
    ``hsa_excess`` = fa_AB - max(fa_A, fa_B). fa is not clipped to [0, 1].

    Uncertainty comes from replicate scatter within each arm, through the delta-method
    standard error of the excess (a function of the four arm means). ``method`` chooses how
    it becomes a 95% interval and a two-sided p-value:

    * ``"bootstrap-t"`` (default): symmetric studentized bootstrap. Each arm's replicates are
      resampled with replacement ``n_boot`` times, the excess and its SE recomputed, and
      T* = abs(excess* - excess) / SE*; CI = excess +- q95(T*) * SE,
      p = (1 + #{T* >= abs(excess) / SE}) / (1 + n_boot). The CI excludes 0 exactly when p is
      below about 0.05.
    * ``"delta-t"``: t-test of excess / SE with Welch-Satterthwaite degrees of freedom; no
      resampling.

    Both hold their level with triplicates. On 2000 simulated Bliss-independent triplicate
    experiments (``tests/test_stats.py``) the false-positive rate at 0.05 was 3% for
    ``"bootstrap-t"`` (conservative) and 4.3% for ``"delta-t"``; a planted +18-point excess
    was found in 94% and 99% of experiments. A plain percentile bootstrap is not offered: with
    three replicates per arm it underestimates the spread and calls about one null experiment
    in six non-additive.

    Parameters
    ----------
    table
        Tidy per-sample table with a ``treatment`` column (and optionally ``dose_a``,
        ``dose_b``).
    measure
        Column holding the effect, in percent.
    by
        Column(s) defining independent experiments (e.g. cell lines); None: one experiment.
    vehicle
        Treatment label of the vehicle arm.
    a, b, combination
        Treatment labels of the single agents and of the combination. By default the
        combination is the one label containing ``"+"`` (else the one arm with both
        ``dose_a`` and ``dose_b`` > 0) and the single agents are the two parts of its label
        (else the arms given only drug A, only drug B).
    direction
        Whether the effect raises (``"increase"``) or lowers (``"decrease"``) the measure;
        None: ``"decrease"`` for measures whose name starts with ``"viable"``, else
        ``"increase"``.
    method
        ``"bootstrap-t"`` or ``"delta-t"``, see above.
    n_boot
        Bootstrap resamples (``"bootstrap-t"`` only); at least 100.
    seed
        Seed of the bootstrap (the same seed gives the same intervals).
    role
        If the table has a ``role`` column, only rows with this role (or no role) are used;
        None: all rows.

    Returns
    -------
    pandas.DataFrame
        One row per group: the ``by`` columns, ``measure``, ``direction``, the arm labels
        (``vehicle``, ``arm_a``, ``arm_b``, ``arm_ab``), usable replicates per arm
        (``n_vehicle``, ``n_a``, ``n_b``, ``n_ab``), ``fa_a``, ``fa_b``, ``fa_ab``,
        ``bliss_expected``, ``bliss_excess``, ``bliss_ci_low``, ``bliss_ci_high``, ``bliss_p``,
        ``hsa_excess``, ``hsa_ci_low``, ``hsa_ci_high``, ``hsa_p``, ``call`` and ``method``.
        ``call`` is ``"synergy"`` when the Bliss CI lies above 0, ``"antagonism"`` below 0,
        ``"additive"`` when it contains 0, and ``"undetermined"`` when there is no CI (an arm
        with fewer than two replicates, or no scatter at all). Excesses are fractions
        (0.18 = 18 points).

    Raises
    ------
    DesignError
        A column is missing, or a group lacks the vehicle, a single agent or the combination
        (the message names what is missing and lists the arms found).
    ValueError
        ``direction``, ``method`` or ``n_boot`` is not valid.
    """
    if direction is None:
        direction = "decrease" if measure.startswith("viable") else "increase"
    if direction not in ("increase", "decrease"):
        msg = f"bliss: direction must be 'increase' or 'decrease', got {direction!r}"
        raise ValueError(msg)
    if method not in ("bootstrap-t", "delta-t"):
        msg = f"bliss: method must be 'bootstrap-t' or 'delta-t', got {method!r}"
        raise ValueError(msg)
    if method == "bootstrap-t" and n_boot < 100:
        msg = f"bliss: n_boot must be at least 100 for a 95% bootstrap interval, got {n_boot}"
        raise ValueError(msg)
    by_list = _as_list(by)
    data, failed = _prepare(table, [*by_list, TREATMENT], [measure], role=role, what="bliss")
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for keys, group in _groups(data, by_list):
        arms = _arm_values(failed, group, measure)
        if vehicle not in arms:
            msg = (
                f"bliss: {_where(keys)} has no vehicle arm {vehicle!r}; arms found: {_found(arms)}; "
                "pass vehicle= to name it"
            )
            raise DesignError(msg)
        combo = _find_combination(arms, group, combination, keys, what="bliss")
        arm_a, arm_b = _find_singles(arms, group, combo, a, b, keys, what="bliss")
        samples = {"vehicle": arms[vehicle], "a": arms[arm_a], "b": arms[arm_b], "ab": arms[combo]}
        labels = (vehicle, arm_a, arm_b, combo)
        empty = [label for label, k in zip(labels, samples, strict=True) if samples[k].size == 0]
        if empty:
            msg = (
                f"bliss: {_where(keys)}: arm(s) {', '.join(map(repr, empty))} have no usable values of "
                f"{measure!r} (status error/failed or NaN); arms found: {_found(arms)}"
            )
            raise DesignError(msg)
        means = {k: np.asarray(v.mean()) for k, v in samples.items()}
        fa, _ = _fa_terms(means, direction)
        expected = fa["a"] + fa["b"] - fa["a"] * fa["b"]
        inference = _interaction_inference(samples, direction, method, n_boot, rng)
        bl, bl_lo, bl_hi, bl_p = inference["bliss"]
        hs, hs_lo, hs_hi, hs_p = inference["hsa"]
        rows.append({
            **keys, "measure": measure, "direction": direction, "vehicle": vehicle,
            "arm_a": arm_a, "arm_b": arm_b, "arm_ab": combo,
            "n_vehicle": samples["vehicle"].size, "n_a": samples["a"].size, "n_b": samples["b"].size,
            "n_ab": samples["ab"].size,
            "fa_a": float(fa["a"]), "fa_b": float(fa["b"]), "fa_ab": float(fa["ab"]),
            "bliss_expected": float(expected), "bliss_excess": bl, "bliss_ci_low": bl_lo,
            "bliss_ci_high": bl_hi, "bliss_p": bl_p, "hsa_excess": hs, "hsa_ci_low": hs_lo,
            "hsa_ci_high": hs_hi, "hsa_p": hs_p, "call": _call(bl_lo, bl_hi), "method": method,
        })
    return pd.DataFrame(rows, columns=[*by_list, *BLISS_COLUMNS])


# --------------------------------------------------------------------------- Chou-Talalay
@dataclass(frozen=True)
class MedianEffectFit:
    """Chou's median-effect fit of one agent: fa / fu = (D / Dm) ** m.

    Attributes
    ----------
    dm
        Median-effect dose (the dose giving fa = 0.5), in the units of the doses.
    m
        Hill-type slope (sigmoidicity; > 1 sigmoid, 1 hyperbolic, < 1 flat).
    r
        Linear correlation coefficient of the median-effect plot
        (log(fa / (1 - fa)) against log(D)); 1 for data that follow the equation exactly.
    n
        Number of dose-effect points fitted.
    """

    dm: float
    m: float
    r: float
    n: int

    def dose(self, fa: float | np.ndarray) -> float | np.ndarray:
        """Dose Dx giving effect ``fa``: Dx = Dm * (fa / (1 - fa)) ** (1 / m)."""
        fa_arr = np.asarray(fa, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = self.dm * (fa_arr / (1.0 - fa_arr)) ** (1.0 / self.m)
        return float(out) if out.ndim == 0 else out

    def fa(self, dose: float | np.ndarray) -> float | np.ndarray:
        """Fraction affected at ``dose``: fa = 1 / (1 + (Dm / D) ** m)."""
        d = np.asarray(dose, dtype=float)
        with np.errstate(divide="ignore", over="ignore"):
            out = 1.0 / (1.0 + (self.dm / d) ** self.m)
        return float(out) if out.ndim == 0 else out

    def summary(self) -> dict[str, float | int]:
        """JSON-safe dict of the parameters."""
        return {"dm": self.dm, "m": self.m, "r": self.r, "n": self.n}


def chou_talalay(
    doses: Sequence[float] | np.ndarray, effects: Sequence[float] | np.ndarray,
) -> MedianEffectFit:
    """Fit Chou's median-effect equation log(fa / (1 - fa)) = m log(D) - m log(Dm).

    A straight-line least-squares fit of the median-effect plot (Chou & Talalay 1984,
    Adv Enzyme Regul 22:27; Chou 2006, Pharmacol Rev 58:621).

    Parameters
    ----------
    doses
        Doses of one agent alone (> 0; leave out the vehicle).
    effects
        Fraction affected at each dose, strictly between 0 and 1 (e.g. vehicle-corrected
        ``fa`` as in :func:`bliss`; not percent).

    Returns
    -------
    MedianEffectFit
        ``dm``, ``m`` and the correlation ``r`` of the median-effect plot.

    Raises
    ------
    FitError
        Lengths differ, a dose is not positive, an effect is outside (0, 1), or there are
        fewer than two distinct doses.
    """
    d = np.asarray(doses, dtype=float).ravel()
    fa = np.asarray(effects, dtype=float).ravel()
    if d.size != fa.size:
        msg = f"chou_talalay: {d.size} doses but {fa.size} effects; give one effect per dose"
        raise FitError(msg)
    bad_dose = np.flatnonzero(~(np.isfinite(d) & (d > 0)))
    if bad_dose.size:
        msg = (
            f"chou_talalay: doses must be finite and > 0; got {d[bad_dose].tolist()} at position(s) "
            f"{bad_dose.tolist()} (leave out the vehicle)"
        )
        raise FitError(msg)
    bad_fa = np.flatnonzero(~((fa > 0) & (fa < 1)))
    if bad_fa.size:
        looks_like_percent = 1 < np.nanmax(fa) <= 100
        hint = " (they look like percent: divide by 100)" if looks_like_percent else ""
        msg = (
            f"chou_talalay: effects must be fractions affected strictly between 0 and 1; got "
            f"{fa[bad_fa].tolist()} at position(s) {bad_fa.tolist()}{hint}"
        )
        raise FitError(msg)
    if np.unique(d).size < 2:
        msg = f"chou_talalay: need at least two distinct doses, got {np.unique(d).tolist()}"
        raise FitError(msg)
    x = np.log(d)
    y = np.log(fa / (1.0 - fa))
    slope, intercept = np.polyfit(x, y, 1)
    if slope == 0:
        msg = "chou_talalay: the median-effect plot is flat (m = 0): the effect does not change with dose"
        raise FitError(msg)
    r = float(np.corrcoef(x, y)[0, 1]) if np.ptp(y) > 0 else math.nan
    return MedianEffectFit(dm=float(np.exp(-intercept / slope)), m=float(slope), r=r, n=int(d.size))


def ci_call(ci: float) -> str:
    """Classify a combination index: synergy (< 0.9), additive (0.9-1.1), antagonism (> 1.1).

    Parameters
    ----------
    ci
        Combination index.

    Returns
    -------
    str
        ``"synergy"``, ``"additive"``, ``"antagonism"``, or ``"undetermined"`` for NaN.
    """
    ci = float(ci)
    if math.isnan(ci):
        return "undetermined"
    if ci < 0.9:
        return "synergy"
    if ci > 1.1:
        return "antagonism"
    return "additive"


def combination_index(
    fit_a: MedianEffectFit,
    fit_b: MedianEffectFit,
    dose_a: float | Sequence[float] | np.ndarray,
    dose_b: float | Sequence[float] | np.ndarray,
    fa: float | Sequence[float] | np.ndarray,
) -> pd.DataFrame:
    """Chou-Talalay combination index and dose-reduction indices of combinations.

    CI = d_a / Dx_a + d_b / Dx_b, where Dx is the dose of each agent alone giving the effect
    ``fa`` that the combination (d_a, d_b) gave (mutually exclusive agents);
    DRI = Dx / d for each agent.

    Parameters
    ----------
    fit_a, fit_b
        Median-effect fits of the single agents (:func:`chou_talalay`).
    dose_a, dose_b
        Doses of each agent in the combination(s) (broadcast together with ``fa``).
    fa
        Fraction affected observed for each combination, strictly between 0 and 1.

    Returns
    -------
    pandas.DataFrame
        One row per combination: ``dose_a``, ``dose_b``, ``fa``, ``dx_a``, ``dx_b``, ``ci``,
        ``dri_a``, ``dri_b`` (inf for an agent not given) and ``call`` (:func:`ci_call`).

    Raises
    ------
    FitError
        An effect is outside (0, 1) or a dose is negative.
    """
    d_a, d_b, f = np.broadcast_arrays(
        np.atleast_1d(np.asarray(dose_a, dtype=float)), np.atleast_1d(np.asarray(dose_b, dtype=float)),
        np.atleast_1d(np.asarray(fa, dtype=float)),
    )
    if not np.all((f > 0) & (f < 1)):
        msg = f"combination_index: fa must be strictly between 0 and 1, got {f.tolist()}"
        raise FitError(msg)
    if np.any(d_a < 0) or np.any(d_b < 0):
        msg = f"combination_index: doses must be >= 0, got dose_a={d_a.tolist()}, dose_b={d_b.tolist()}"
        raise FitError(msg)
    dx_a = np.asarray(fit_a.dose(f), dtype=float)
    dx_b = np.asarray(fit_b.dose(f), dtype=float)
    ci = d_a / dx_a + d_b / dx_b
    with np.errstate(divide="ignore"):
        dri_a = dx_a / d_a
        dri_b = dx_b / d_b
    return pd.DataFrame({
        "dose_a": d_a, "dose_b": d_b, "fa": f, "dx_a": dx_a, "dx_b": dx_b, "ci": ci,
        "dri_a": dri_a, "dri_b": dri_b, "call": [ci_call(c) for c in ci],
    })


# --------------------------------------------------------------------------- dose series (CompuSyn)
# Dose columns as io.design names them: dose, dose_a, dose_b, ..., dose1, dose2, ...
_DOSE_COLUMN = re.compile(r"^dose(?:_([0-9a-z_]+)|([0-9]+))?$")

#: Columns of :func:`dose_series_synergy` after the grouping columns.
DOSE_SERIES_COLUMNS = (
    "measure", "direction", "kind", "agent", "drug_a", "drug_b", "ratio", "dose_a", "dose_b", "n",
    "fa", "dm", "m", "r", "n_doses", "dx_a", "dx_b", "ci", "dri_a", "dri_b", "call", "note",
)


def _dose_slots(table: pd.DataFrame) -> list[tuple[str | None, str]]:
    """``(drug column or None, dose column)`` pairs, in table order."""
    slots: list[tuple[str | None, str]] = []
    for name in table.columns:
        if isinstance(name, str) and _DOSE_COLUMN.match(name):
            drug = "drug" + name[len("dose"):]
            slots.append((drug if drug in table.columns else None, name))
    return slots


def _doses_given(data: pd.DataFrame, slots: list[tuple[str | None, str]], *, what: str,
                 ) -> list[dict[str, float]]:
    """Per row, ``{drug name: dose}`` of the drugs given (dose > 0; 0 or NaN = not given).

    A drug is named by its drug column, or by the dose column when there is none (or it is empty).
    """
    doses: dict[str, np.ndarray] = {}
    for _, dose_col in slots:
        raw = data[dose_col]
        values = pd.to_numeric(raw, errors="coerce")
        text = raw.astype(str).str.strip()
        not_numbers = values.isna() & raw.notna() & (text != "") & (text.str.lower() != "nan")
        if not_numbers.any():
            shown = ", ".join(repr(str(v)) for v in list(dict.fromkeys(text[not_numbers].tolist()))[:5])
            msg = (
                f"{what}: column {dose_col!r} has doses that are not numbers ({shown}); write numbers "
                "only (0 = not given)"
            )
            raise DesignError(msg)
        bad = (values < 0) | np.isinf(values)
        if bad.any():
            shown = ", ".join(f"{v:g}" for v in dict.fromkeys(values[bad].tolist()))
            msg = (
                f"{what}: column {dose_col!r} has doses {shown}; doses must be finite and >= 0 "
                "(0 = not given)"
            )
            raise DesignError(msg)
        doses[dose_col] = values.fillna(0.0).to_numpy(dtype=float)
    names: dict[str, list[str]] = {}
    for drug_col, dose_col in slots:
        if drug_col is None:
            names[dose_col] = [dose_col] * len(data)
        else:
            cells = data[drug_col].astype("string").str.strip().fillna("")
            names[dose_col] = [c if c else dose_col for c in cells]
    rows: list[dict[str, float]] = []
    for i in range(len(data)):
        given: dict[str, float] = {}
        for _, dose_col in slots:
            dose = float(doses[dose_col][i])
            if dose > 0:
                name = names[dose_col][i]
                if name in given:
                    msg = (
                        f"{what}: a row gives drug {name!r} in two dose columns ({given[name]:g} and "
                        f"{dose:g}); give each drug once per row"
                    )
                    raise DesignError(msg)
                given[name] = dose
        rows.append(given)
    return rows


def _fraction_affected(x: np.ndarray | float, vehicle_mean: float, direction: Direction) -> np.ndarray:
    """Vehicle-corrected fraction affected of a percent measure (as in :func:`bliss`)."""
    x_arr = np.asarray(x, dtype=float)
    if direction == "increase":
        return (x_arr - vehicle_mean) / (100.0 - vehicle_mean)
    return (vehicle_mean - x_arr) / vehicle_mean


def _vehicle_mean(keys: dict[str, Any], values: np.ndarray, measure: str, direction: Direction, *,
                  what: str) -> float:
    """Mean of the vehicle replicates, checked to allow a fraction affected."""
    v = float(values.mean())
    if (direction == "increase" and v >= 100.0) or (direction == "decrease" and v <= 0.0):
        msg = (
            f"{what}: {_where(keys)}: the vehicle mean of {measure!r} is {v:g}%, which leaves no room "
            f"for an effect with direction={direction!r}; check the measure and direction="
        )
        raise DesignError(msg)
    return v


def _ratio_label(ratio: float) -> str:
    """``dose_b / dose_a`` as ``"1:4"`` or ``"2.5:1"``."""
    return f"1:{ratio:.4g}" if ratio >= 1 else f"{1.0 / ratio:.4g}:1"


def _dropped_note(doses: np.ndarray, fa: np.ndarray, inside: np.ndarray, unit: str) -> str:
    if inside.all():
        return ""
    parts = ", ".join(f"{d:.4g} (fa {f:.3g})" for d, f in zip(doses[~inside], fa[~inside], strict=True))
    return f"left out {unit} {parts}: fa outside (0, 1)"


@dataclass(frozen=True)
class _Level:
    """Mean of the usable replicates at one dose level."""

    dose_a: float
    dose_b: float
    mean: float
    n: int


@dataclass
class _GroupDesign:
    """One group's arms, by dose level."""

    drug_a: str
    drug_b: str
    vehicle: np.ndarray
    single_a: list[_Level]
    single_b: list[_Level]
    combos: list[_Level]


def _levels(values: dict[tuple[float, float], list[float]]) -> list[_Level]:
    return [_Level(da, db, float(np.mean(v)), len(v)) for (da, db), v in sorted(values.items()) if v]


def _group_design(
    keys: dict[str, Any], group: pd.DataFrame, failed: np.ndarray, given: list[dict[str, float]],
    measure: str, vehicle: str, drugs: tuple[str, str] | None, *, what: str,
) -> _GroupDesign:
    """Sort a group's usable rows into vehicle, A alone, B alone and A+B dose levels."""
    positions = group.index.to_numpy()
    x = group[measure].to_numpy(dtype=float)
    usable = np.isfinite(x) & ~failed[positions]
    has_treatment = TREATMENT in group.columns
    labels = (group[TREATMENT].astype("string").fillna("").to_numpy() if has_treatment
              else np.array(["+".join(given[p]) or vehicle for p in positions]))
    arms: dict[str, int] = {}
    for label, ok in zip(labels, usable, strict=True):
        arms[str(label)] = arms.get(str(label), 0) + int(ok)
    found = ", ".join(f"{k!r} (n={v})" for k, v in arms.items()) or "none"

    vehicle_rows = labels == vehicle
    with_drug = [p for p, is_vehicle in zip(positions, vehicle_rows, strict=True) if is_vehicle and given[p]]
    if with_drug:
        shown = ", ".join(f"{k}={v:g}" for k, v in given[with_drug[0]].items())
        msg = (
            f"{what}: {_where(keys)}: the vehicle arm {vehicle!r} has a row with a drug given ({shown}); "
            "vehicle rows must have every dose 0, or pass vehicle= to name the vehicle arm"
        )
        raise DesignError(msg)
    vehicle_values = x[vehicle_rows & usable]
    if vehicle_values.size == 0:
        msg = (
            f"{what}: {_where(keys)} has no usable vehicle arm {vehicle!r} (every dose 0) for {measure!r}; "
            f"arms found (usable values): {found}; pass vehicle= to name it"
        )
        raise DesignError(msg)

    drug_rows = [(p, given[p], value)
                 for p, value, ok in zip(positions, x, usable, strict=True) if ok and given[p]]
    no_drug = sorted({str(label) for p, label in zip(positions, labels, strict=True)
                      if not given[p] and label != vehicle})
    if no_drug:
        log.warning("%s: %s arm(s) %s give no drug but are not the vehicle %r; left out",
                    what, _where(keys), ", ".join(map(repr, no_drug)), vehicle)
    if drugs is None:
        names = list(dict.fromkeys(name for _, g, _ in drug_rows for name in g))
        if len(names) != 2:
            msg = (
                f"{what}: {_where(keys)} gives {len(names)} drug(s) "
                f"({', '.join(map(repr, names)) or 'none'}); "
                "the median-effect analysis needs exactly two drugs, each alone at several doses and "
                "together; pass drugs=(first, second) to choose two of them"
            )
            raise DesignError(msg)
        # drug A is the one in the earlier dose column of the combination rows
        first_combo = next((list(g) for _, g, _ in drug_rows if len(g) == 2), names)
        drug_a, drug_b = first_combo
    else:
        drug_a, drug_b = drugs
    single_a: dict[tuple[float, float], list[float]] = {}
    single_b: dict[tuple[float, float], list[float]] = {}
    combos: dict[tuple[float, float], list[float]] = {}
    others = 0
    for _, g, value in drug_rows:
        if set(g) == {drug_a}:
            single_a.setdefault((g[drug_a], 0.0), []).append(value)
        elif set(g) == {drug_b}:
            single_b.setdefault((0.0, g[drug_b]), []).append(value)
        elif set(g) == {drug_a, drug_b}:
            combos.setdefault((g[drug_a], g[drug_b]), []).append(value)
        else:
            others += 1
    if others:
        log.warning("%s: %s: %d row(s) with drugs other than %r and %r left out",
                    what, _where(keys), others, drug_a, drug_b)
    for name, levels in ((drug_a, single_a), (drug_b, single_b)):
        if len(levels) < 2:
            doses = ", ".join(f"{max(d):g}" for d in sorted(levels)) or "none"
            msg = (
                f"{what}: {_where(keys)} has {len(levels)} usable dose(s) of {name!r} alone ({doses}); the "
                f"median-effect fit needs at least two; arms found (usable values): {found}; add doses, "
                "or use bliss() for a single-dose design"
            )
            raise DesignError(msg)
    if not combos:
        msg = (
            f"{what}: {_where(keys)} has no usable combination of {drug_a!r} and {drug_b!r} "
            f"(both doses > 0); arms found (usable values): {found}"
        )
        raise DesignError(msg)
    return _GroupDesign(drug_a, drug_b, vehicle_values, _levels(single_a), _levels(single_b), _levels(combos))


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in rec.items()} for rec in frame.to_dict("records")]


def _fit_row(base: dict[str, Any], agent: str, ratio: float, fit: MedianEffectFit | None, n: int,
             note: str) -> dict[str, Any]:
    return {
        **base, "kind": "fit", "agent": agent, "ratio": ratio, "n": n,
        "dm": fit.dm if fit else math.nan, "m": fit.m if fit else math.nan,
        "r": fit.r if fit else math.nan, "n_doses": fit.n if fit else 0, "note": note,
    }


def _fit_levels(
    doses: np.ndarray, fa: np.ndarray, counts: np.ndarray, unit: str,
) -> tuple[MedianEffectFit | None, int, str]:
    """Median-effect fit of the levels with fa in (0, 1): fit (None if < 2 left), n used, note."""
    inside = (fa > 0) & (fa < 1)
    note = _dropped_note(doses, fa, inside, unit)
    if np.unique(doses[inside]).size < 2:
        return None, 0, note
    fit = chou_talalay(doses[inside], fa[inside])
    if fit.m < 0:
        note = "; ".join(filter(None, [note, "m < 0: the effect falls with dose (check direction=)"]))
    return fit, int(counts[inside].sum()), note


def _single_fit(
    keys: dict[str, Any], name: str, levels: list[_Level], vehicle_mean: float, direction: Direction,
    *, what: str,
) -> tuple[MedianEffectFit, int, str]:
    doses = np.array([max(lv.dose_a, lv.dose_b) for lv in levels])
    fa = _fraction_affected(np.array([lv.mean for lv in levels]), vehicle_mean, direction)
    counts = np.array([lv.n for lv in levels])
    shown = ", ".join(f"{d:.4g} (fa {f:.3g})" for d, f in zip(doses, fa, strict=True))
    try:
        fit, n, note = _fit_levels(doses, fa, counts, "dose")
    except FitError as err:
        msg = f"{what}: {_where(keys)}: cannot fit {name!r} alone: {err}; doses and fa: {shown}"
        raise FitError(msg) from err
    if fit is None:
        msg = (
            f"{what}: {_where(keys)}: {name!r} alone has fa strictly between 0 and 1 at fewer than two "
            f"doses ({shown}); the median-effect plot needs at least two: add doses in the responsive "
            f"range, or check direction={direction!r} and the vehicle arm"
        )
        raise FitError(msg)
    if note:
        log.warning("%s: %s: %s alone: %s", what, _where(keys), name, note)
    return fit, n, note


def _series_rows(
    keys: dict[str, Any], design: _GroupDesign, base: dict[str, Any], direction: Direction,
    fa_levels: np.ndarray, *, what: str,
) -> list[dict[str, Any]]:
    """Fit, fa-level and point rows of one group."""
    v = _vehicle_mean(keys, design.vehicle, base["measure"], direction, what=what)
    fit_a, n_a, note_a = _single_fit(keys, design.drug_a, design.single_a, v, direction, what=what)
    fit_b, n_b, note_b = _single_fit(keys, design.drug_b, design.single_b, v, direction, what=what)
    fits = [_fit_row(base, design.drug_a, math.nan, fit_a, n_a, note_a),
            _fit_row(base, design.drug_b, math.nan, fit_b, n_b, note_b)]
    levels_rows: list[dict[str, Any]] = []
    point_rows: list[dict[str, Any]] = []

    series: dict[float, list[_Level]] = {}
    for level in design.combos:
        # ratios equal to 6 significant digits form one constant-ratio series
        series.setdefault(float(f"{level.dose_b / level.dose_a:.6g}"), []).append(level)
    for ratio, members in sorted(series.items()):
        agent = f"{design.drug_a}+{design.drug_b} ({_ratio_label(ratio)})"
        dose_a = np.array([lv.dose_a for lv in members])
        dose_b = np.array([lv.dose_b for lv in members])
        fa = _fraction_affected(np.array([lv.mean for lv in members]), v, direction)
        counts = np.array([lv.n for lv in members])
        if len(members) >= 2:
            total = dose_a + dose_b
            try:
                fit, n_fit, note = _fit_levels(total, fa, counts, "total dose")
            except FitError as err:
                fit, n_fit, note = None, 0, str(err)
            if fit is None:
                note = "; ".join(filter(None, [note, "fewer than two points with fa in (0, 1): not fitted"]))
            if note:
                log.warning("%s: %s: %s: %s", what, _where(keys), agent, note)
            fits.append(_fit_row(base, agent, ratio, fit, n_fit, note))
            if fit is not None:
                share_a = float(np.mean(dose_a / total))
                dx_combo = np.asarray(fit.dose(fa_levels), dtype=float)
                at_levels = combination_index(fit_a, fit_b, dx_combo * share_a, dx_combo * (1.0 - share_a),
                                              fa_levels)
                for level_rec in _records(at_levels):
                    levels_rows.append({**base, **level_rec, "kind": "fa_level", "agent": agent,
                                        "ratio": ratio, "note": ""})
        inside = (fa > 0) & (fa < 1)
        computed = iter(_records(combination_index(fit_a, fit_b, dose_a[inside], dose_b[inside], fa[inside]))
                        if inside.any() else [])
        for i, level in enumerate(members):
            if inside[i]:
                rec = next(computed)
                note = ""
            else:
                rec = {"dose_a": level.dose_a, "dose_b": level.dose_b, "fa": float(fa[i]),
                       "call": ci_call(math.nan)}
                note = f"fa {fa[i]:.3g} outside (0, 1): no CI"
            point_rows.append({**base, **rec, "kind": "point", "agent": agent, "ratio": ratio,
                               "n": level.n, "note": note})
    return fits + levels_rows + point_rows


def dose_series_synergy(
    table: pd.DataFrame,
    measure: str = "total_apoptotic_pct",
    *,
    by: str | Sequence[str] | None = "cell_line",
    vehicle: str = "vehicle",
    drugs: tuple[str, str] | None = None,
    direction: Direction | None = None,
    fa_levels: Sequence[float] = (0.5, 0.75, 0.9),
    role: str | None = "sample",
) -> pd.DataFrame:
    """Chou-Talalay analysis of a dose-series combination experiment, as CompuSyn does it.

    For each group (cell line) the table must hold a vehicle arm, each of two drugs alone at two
    or more doses, and combinations of the two (both doses > 0), ideally at a constant dose
    ratio over several doses (the Chou-Talalay design; Chou 2006, Pharmacol Rev 58:621).
    Doses come from the table's dose columns (``dose_a``, ``dose_b``, ... or ``dose1``, ...; a
    dose of 0 or NaN means not given); each drug is named by the matching drug column
    (``drug_a``, ...), so a drug may sit in any dose column. Drug A is the drug in the earlier
    dose column of the combination rows.

    Per group:

    1. The mean of the usable replicates at each dose level is turned into a fraction affected
       with the group's vehicle mean v, as in :func:`bliss`: fa = (x - v) / (100 - v) for
       ``direction="increase"``, fa = (v - x) / v for ``"decrease"``.
    2. The median-effect equation (:func:`chou_talalay`) is fitted to A alone, to B alone and,
       for every constant-ratio series with two or more doses, to the combination as a function
       of its total dose d_a + d_b. Levels with fa outside (0, 1) cannot enter the median-effect
       plot: they are left out, and the ``note`` of the fit says which.
    3. At each fa in ``fa_levels``, from the fitted combination curve (Chou 2006, CI equation for
       a constant ratio P:Q): the combination dose (Dx)_combo is split into
       d_a = (Dx)_combo P / (P + Q) and d_b = (Dx)_combo Q / (P + Q), and
       CI = d_a / (Dx)_a + d_b / (Dx)_b, DRI_a = (Dx)_a / d_a, DRI_b = (Dx)_b / d_b.
    4. At each combination actually tested, from its observed mean fa
       (:func:`combination_index`). Combinations not at a constant ratio with other doses (a
       ratio tested at one dose only) get only these rows.

    The CI at an effect level relies on the combination following the median-effect equation.
    When the two drugs' slopes m differ, even a Loewe-additive mixture does not, and its CI
    from the fitted line departs from 1 (by up to about 0.13 for slopes 1 and 2.5, see the
    tests); the CI at the tested points has no such bias. No confidence interval is given: CI
    values come from replicate means, as in CompuSyn.

    Parameters
    ----------
    table
        Tidy per-sample table with the ``by`` columns, the measure, dose columns and usually
        ``treatment``, ``drug_a``/``drug_b``, ``role`` and ``status``.
    measure
        Column holding the effect, in percent.
    by
        Column(s) defining independent experiments (e.g. cell lines); None: one experiment.
    vehicle
        Treatment label of the vehicle arm (its rows must give no drug). Without a
        ``treatment`` column, the rows that give no drug are the vehicle.
    drugs
        The two drugs to analyse, as named in the drug columns (A first); rows giving any other
        drug are left out. None: each group must give exactly two drugs.
    direction
        ``"increase"`` or ``"decrease"`` (see above); None: ``"decrease"`` for measures whose
        name starts with ``"viable"``, else ``"increase"``.
    fa_levels
        Effect levels at which to report CI and DRI from the fitted combination curves
        (CompuSyn reports ED50, ED75, ED90), each strictly between 0 and 1.
    role
        If the table has a ``role`` column, only rows with this role (or no role) are used;
        None: all rows. Rows with status error/failed and NaN values are always left out.

    Returns
    -------
    pandas.DataFrame
        One tidy table (:data:`DOSE_SERIES_COLUMNS` after the ``by`` columns); per group, the
        fit rows, then the fa-level rows, then the point rows. ``kind`` is

        * ``"fit"``: one median-effect fit. ``agent`` is drug A's name, drug B's name, or the
          combination label ``"A+B (P:Q)"`` (P:Q = dose_a:dose_b, the smaller part written as 1);
          ``dm`` (for a combination: in total dose d_a + d_b), ``m``, ``r`` (correlation of the
          median-effect plot), ``n_doses`` (dose levels fitted) and ``n`` (replicate values behind
          them). A combination series that cannot be fitted has NaN parameters,
          ``n_doses`` 0 and the reason in ``note``.
        * ``"fa_level"``: CI at one of ``fa_levels`` from a fitted combination series: ``fa``,
          ``dose_a`` and ``dose_b`` (the doses in the combination that give ``fa``), ``dx_a`` and
          ``dx_b`` (the dose of each drug alone that gives ``fa``), ``ci``, ``dri_a``, ``dri_b``
          and ``call``.
        * ``"point"``: one combination tested: ``dose_a``, ``dose_b``, ``n`` replicates, the
          observed mean ``fa`` and the same CI columns. A point with fa outside (0, 1) has NaN
          CI, call ``"undetermined"`` and a ``note``.

        Every row has ``measure``, ``direction``, ``drug_a`` and ``drug_b`` (the pair analysed);
        ``ratio`` is dose_b / dose_a of a combination series (NaN on single-agent fits).
        ``call`` is :func:`ci_call` of ``ci`` (synergy < 0.9 <= additive <= 1.1 < antagonism).
        Fields that do not apply are missing (NaN; ``n`` and ``n_doses`` are nullable
        integers); ``note`` is ``""`` when there is nothing to say.

    Raises
    ------
    DesignError
        A column is missing, doses are not numbers >= 0, or a group lacks the vehicle, two doses
        of either drug alone, or a combination, or gives other than two drugs (the message lists
        the arms found).
    FitError
        A drug alone has fewer than two doses with fa strictly between 0 and 1.
    ValueError
        ``direction`` or ``fa_levels`` is not valid.

    See Also
    --------
    bliss : for designs with one dose of each drug.
    has_dose_series : which of the two a table needs.

    Examples
    --------
    >>> out = stats.dose_series_synergy(table, "viable_pct")  # doctest: +SKIP
    >>> out[out["kind"] == "fa_level"][["cell_line", "agent", "fa", "ci", "call"]]  # doctest: +SKIP
    """
    what = "dose_series_synergy"
    if direction is None:
        direction = "decrease" if measure.startswith("viable") else "increase"
    if direction not in ("increase", "decrease"):
        msg = f"{what}: direction must be 'increase' or 'decrease', got {direction!r}"
        raise ValueError(msg)
    levels = np.atleast_1d(np.asarray(fa_levels, dtype=float))
    if levels.ndim != 1 or not np.all((levels > 0) & (levels < 1)):
        msg = f"{what}: fa_levels must be fractions strictly between 0 and 1, got {list(fa_levels)!r}"
        raise ValueError(msg)
    if drugs is not None and (len(drugs) != 2 or drugs[0] == drugs[1]):
        msg = f"{what}: drugs must name two different drugs, got {drugs!r}"
        raise ValueError(msg)
    by_list = _as_list(by)
    slots = _dose_slots(table)
    if not slots:
        msg = (
            f"{what}: the table has no dose columns (dose_a, dose_b, ...); its columns are "
            f"{', '.join(map(str, table.columns))}; use bliss() for designs with one dose per drug"
        )
        raise DesignError(msg)
    data, failed = _prepare(table, [*by_list, *(c for pair in slots for c in pair if c)], [measure],
                            role=role, what=what)
    given = _doses_given(data, slots, what=what)
    rows: list[dict[str, Any]] = []
    for keys, group in _groups(data, by_list):
        design = _group_design(keys, group, failed, given, measure, vehicle, drugs, what=what)
        base = {**keys, "measure": measure, "direction": direction,
                "drug_a": design.drug_a, "drug_b": design.drug_b}
        rows.extend(_series_rows(keys, design, base, direction, levels, what=what))
    out = pd.DataFrame(rows, columns=[*by_list, *DOSE_SERIES_COLUMNS])
    for column in ("n", "n_doses"):
        out[column] = out[column].astype("Int64")
    out["note"] = out["note"].fillna("")
    return out


def has_dose_series(
    table: pd.DataFrame, *, by: str | Sequence[str] | None = "cell_line", role: str | None = "sample",
) -> bool:
    """Whether some group gives a drug alone at two or more doses (a dose-series design).

    Parameters
    ----------
    table
        Tidy per-sample table with dose columns (``dose_a``, ``dose_b``, ...).
    by
        Column(s) defining independent experiments; None: one experiment.
    role
        If the table has a ``role`` column, only rows with this role (or no role) count;
        None: all rows. Rows with status error/failed never count.

    Returns
    -------
    bool
        True when, within some group, one drug is given alone at two or more distinct positive
        doses; False otherwise, and when the table has no dose columns (then :func:`bliss` is
        the analysis to use).

    Raises
    ------
    DesignError
        A ``by`` column is missing or a dose column holds values that are not numbers >= 0.
    """
    slots = _dose_slots(table)
    if not slots:
        return False
    by_list = _as_list(by)
    data, failed = _prepare(table, by_list, [], role=role, what="has_dose_series")
    given = _doses_given(data, slots, what="has_dose_series")
    for _, group in _groups(data, by_list):
        alone: dict[str, set[float]] = {}
        for position in group.index:
            doses = given[position]
            if len(doses) == 1 and not failed[position]:
                ((name, dose),) = doses.items()
                alone.setdefault(name, set()).add(dose)
        if any(len(d) >= 2 for d in alone.values()):
            return True
    return False


# --------------------------------------------------------------------------- synergy package
#: Columns of :func:`synergy_surface` after the grouping columns.
SURFACE_COLUMNS = (
    "measure", "direction", "model", "drug_a", "drug_b", "dose_a", "dose_b", "n", "fa", "delta", "note",
)


def _synergy_models() -> Any:
    """The ``synergy`` package's combination models, imported only when asked for."""
    try:
        from synergy import combination
    except ImportError as exc:
        msg = (
            "synergy_surface needs the optional 'synergy' package (D. J. Wooten; GPL-3.0), which is "
            "not installed; install it with: pip install 'cytoflow-res[synergy]'"
        )
        raise CytoflowResError(msg) from exc
    return combination


def _require_checkerboard(keys: dict[str, Any], design: _GroupDesign, *, what: str) -> None:
    doses_a = sorted({lv.dose_a for lv in design.combos})
    doses_b = sorted({lv.dose_b for lv in design.combos})
    tested = {(lv.dose_a, lv.dose_b) for lv in design.combos}
    missing = [(da, db) for da in doses_a for db in doses_b if (da, db) not in tested]
    if len(doses_a) < 2 or len(doses_b) < 2 or missing:
        shown = ", ".join(f"({da:g}, {db:g})" for da, db in missing[:5])
        gaps = f"; missing (dose_a, dose_b): {shown}" if missing else ""
        msg = (
            f"{what}: {_where(keys)}: model='zip' needs a checkerboard, every combination of at least "
            f"two doses of each drug; the combinations use {len(doses_a)} dose(s) of {design.drug_a!r} "
            f"and {len(doses_b)} of {design.drug_b!r}{gaps}; use model='loewe' for other designs"
        )
        raise DesignError(msg)


def synergy_surface(
    table: pd.DataFrame,
    measure: str = "total_apoptotic_pct",
    *,
    by: str | Sequence[str] | None = "cell_line",
    vehicle: str = "vehicle",
    drugs: tuple[str, str] | None = None,
    direction: Direction | None = None,
    model: SurfaceModel = "loewe",
    role: str | None = "sample",
) -> pd.DataFrame:
    """Loewe or ZIP excess of each combination tested, with the ``synergy`` package.

    A wrapper of D. J. Wooten's ``synergy`` package (PyPI ``synergy``, GPL-3.0; an optional
    dependency: ``pip install 'cytoflow-res[synergy]'``). The table is read as in
    :func:`dose_series_synergy` (vehicle, each drug alone at two or more doses, combinations;
    fa of each dose level's mean, vehicle-corrected). Then per group, on E = 1 - fa:

    * ``model="loewe"``: four-parameter Hill curves are fitted to each drug alone (so a drug
      may plateau below fa = 1, unlike the median-effect equation) and each combination is
      compared with its Loewe-additive expectation (``synergy``'s ``Loewe(mode="delta_HSA")``:
      where Loewe is undefined because the expected effect is beyond a drug's maximum, the
      highest single agent is the reference). Any design.
    * ``model="zip"``: zero interaction potency (Yadav et al. 2015, Comput Struct Biotechnol J
      13:504). Needs a checkerboard: every pairing of two or more doses of each drug.

    Parameters
    ----------
    table
        Tidy per-sample table, as for :func:`dose_series_synergy`.
    measure
        Column holding the effect, in percent.
    by
        Column(s) defining independent experiments (e.g. cell lines); None: one experiment.
    vehicle
        Treatment label of the vehicle arm (its rows must give no drug).
    drugs
        The two drugs to analyse (A first); None: each group must give exactly two.
    direction
        ``"increase"`` or ``"decrease"`` as in :func:`bliss`; None: ``"decrease"`` for measures
        whose name starts with ``"viable"``, else ``"increase"``.
    model
        ``"loewe"`` or ``"zip"``.
    role
        If the table has a ``role`` column, only rows with this role (or no role) are used;
        None: all rows.

    Returns
    -------
    pandas.DataFrame
        One row per combination tested: the ``by`` columns, then :data:`SURFACE_COLUMNS`:
        ``measure``, ``direction``, ``model``, ``drug_a``, ``drug_b``, ``dose_a``, ``dose_b``,
        ``n`` (replicates), ``fa`` (observed, from the mean), ``delta`` (observed fa minus the
        model's expected fa, a fraction: > 0 synergy, < 0 antagonism) and ``note`` (why
        ``delta`` is NaN, or warnings from the fits; ``""`` otherwise).

    Raises
    ------
    CytoflowResError
        The ``synergy`` package is not installed.
    DesignError
        As for :func:`dose_series_synergy`; and for ``model="zip"`` a design that is not a
        checkerboard.
    ValueError
        ``direction`` or ``model`` is not valid.
    """
    what = "synergy_surface"
    if direction is None:
        direction = "decrease" if measure.startswith("viable") else "increase"
    if direction not in ("increase", "decrease"):
        msg = f"{what}: direction must be 'increase' or 'decrease', got {direction!r}"
        raise ValueError(msg)
    if model not in ("loewe", "zip"):
        msg = f"{what}: model must be 'loewe' or 'zip', got {model!r}"
        raise ValueError(msg)
    models = _synergy_models()
    by_list = _as_list(by)
    slots = _dose_slots(table)
    if not slots:
        msg = (
            f"{what}: the table has no dose columns (dose_a, dose_b, ...); its columns are "
            f"{', '.join(map(str, table.columns))}"
        )
        raise DesignError(msg)
    data, failed = _prepare(table, [*by_list, *(c for pair in slots for c in pair if c)], [measure],
                            role=role, what=what)
    given = _doses_given(data, slots, what=what)
    rows: list[dict[str, Any]] = []
    for keys, group in _groups(data, by_list):
        design = _group_design(keys, group, failed, given, measure, vehicle, drugs, what=what)
        if model == "zip":
            _require_checkerboard(keys, design, what=what)
        v = _vehicle_mean(keys, design.vehicle, measure, direction, what=what)
        levels = [_Level(0.0, 0.0, v, design.vehicle.size),
                  *design.single_a, *design.single_b, *design.combos]
        d1 = np.array([lv.dose_a for lv in levels])
        d2 = np.array([lv.dose_b for lv in levels])
        fa = _fraction_affected(np.array([lv.mean for lv in levels]), v, direction)
        fitter = models.Loewe(mode="delta_hsa") if model == "loewe" else models.ZIP()
        note = ""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                delta = np.asarray(fitter.fit(d1, d2, 1.0 - fa), dtype=float)
            except (ValueError, RuntimeError, ArithmeticError) as exc:
                delta = np.full(d1.size, math.nan)
                note = f"the {model} fit failed: {exc}"
        messages = list(dict.fromkeys(str(w.message) for w in caught))
        if messages:
            note = "; ".join(filter(None, [note, *messages]))
        if note:
            log.warning("%s: %s: %s", what, _where(keys), note)
        first = 1 + len(design.single_a) + len(design.single_b)
        for i, level in enumerate(design.combos, start=first):
            rows.append({
                **keys, "measure": measure, "direction": direction, "model": model,
                "drug_a": design.drug_a, "drug_b": design.drug_b, "dose_a": level.dose_a,
                "dose_b": level.dose_b, "n": level.n, "fa": float(fa[i]), "delta": float(delta[i]),
                "note": note,
            })
    return pd.DataFrame(rows, columns=[*by_list, *SURFACE_COLUMNS])
