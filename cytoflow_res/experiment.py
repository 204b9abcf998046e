"""Whole experiments: a design sheet in, per-sample and per-condition tables out.

:class:`Experiment` reads a design sheet (:func:`cytoflow_res.io.design.read_design`) and
:meth:`Experiment.run` analyses every file in it:

* apoptosis groups first get their thresholds (and compensation) from their controls, once per
  group (:meth:`cytoflow_res.apoptosis.ApoptosisGating.prepare`); every sample of the group is
  then gated with exactly those settings;
* cell-cycle samples are fitted one by one, then the G2/G1 linearity is shared across the run
  where a sample's G2/M is too small to place it
  (:func:`cytoflow_res.cellcycle.batch.share_linearity`), as ``cytoflow-res cellcycle`` does.

Samples run serially, in worker processes, or on a ``dask.distributed`` cluster; the tables
are the same either way and always in sheet order. A file that cannot be read or analysed
never stops the run: its row says why (``status`` ``error`` or ``failed``) and it is listed in
:attr:`ExperimentResult.errors`.

:class:`ExperimentResult` holds the per-sample tables and computes the per-condition
tables on demand (:meth:`~ExperimentResult.summary`, :meth:`~ExperimentResult.comparisons`,
:meth:`~ExperimentResult.synergy`); :meth:`~ExperimentResult.write` exports them all with a
``run.json`` record of versions, settings and input checksums.

Examples
--------
>>> from cytoflow_res import Experiment
>>> result = Experiment.from_design("example_fcs/design.csv").run()  # doctest: +SKIP
>>> result.summary()  # doctest: +SKIP
>>> result.write("results")  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from cytoflow_res import _pickling as _pickling  # results and set-ups must pickle for workers
from cytoflow_res import stats
from cytoflow_res._progress import Progress
from cytoflow_res._version import __version__
from cytoflow_res.apoptosis import APOPTOSIS_COLUMNS, ApoptosisGating
from cytoflow_res.errors import CytoflowResError, DesignError, TemplateError
from cytoflow_res.gating.templates import Template, load_template
from cytoflow_res.io.design import Design, read_design
from cytoflow_res.io.export import (
    environment,
    hash_settings,
    sha256_file,
    write_csv_atomic,
    write_excel_atomic,
    write_json_atomic,
)
from cytoflow_res.io.journal import FitStore, Journal, entry_key

if TYPE_CHECKING:
    from cytoflow_res.sample import Sample

__all__ = [
    "APOPTOSIS_MEASURES",
    "CELLCYCLE_COLUMNS",
    "CELLCYCLE_MEASURES",
    "CellCycleSettings",
    "Experiment",
    "ExperimentResult",
    "analyze_cellcycle_file",
]

log = logging.getLogger(__name__)

Executor = Literal["serial", "process", "dask"]
TemplateArg = str | os.PathLike[str] | Template
EXECUTORS: tuple[str, ...] = ("serial", "process", "dask")

#: Leading columns of ``cellcycle.csv``.
CELLCYCLE_COLUMNS = [
    "sample_id", "file", "events_total", "events_singlets", "g0g1_pct", "s_pct", "g2m_pct",
    "sub_g1_pct", "debris_pct", "aggregates_pct", "g1_mean", "g2_mean", "g1_cv_pct", "g2_cv_pct",
    "linearity", "rcs", "model", "status", "message",
]

#: Measures summarised and compared per condition.
APOPTOSIS_MEASURES = (
    "viable_pct", "early_apoptotic_pct", "late_apoptotic_pct", "necrotic_pct", "total_apoptotic_pct",
)
CELLCYCLE_MEASURES = ("g0g1_pct", "s_pct", "g2m_pct", "sub_g1_pct")

#: Measures whose combination effect is scored (Bliss/HSA or Chou-Talalay).
SYNERGY_MEASURES = {"apoptosis": ("total_apoptotic_pct", "viable_pct"), "cellcycle": ("sub_g1_pct",)}

#: Seed of the Bliss bootstrap and of the Dunnett p-value integration (recorded in run.json).
STATS_SEED = 0


ERROR_COLUMNS = ["assay", "file", "role", "cell_line", "treatment", "replicate", "group", "status",
                 "message"]


# ---------------------------------------------------------------------------- cell cycle settings
@dataclass(frozen=True)
class CellCycleSettings:
    """How every cell-cycle file of a run is turned into a fit.

    Attributes
    ----------
    template
        A cell-cycle template (channel aliases, bins, doublets, model), or None to find the
        DNA channel by its usual names.
    channel
        DNA channel; overrides the template.
    bins, doublets, model
        As :func:`cytoflow_res.cellcycle.dna_histogram` / :func:`~cytoflow_res.cellcycle.fit_cell_cycle`;
        None takes the template's value, else ``min($PnR, 1024)`` bins, ``"auto"`` doublets
        and the ``"auto"`` model.
    linearity
        ``"shared"`` (fit per sample, then fix the batch median where G2/M cannot be placed),
        ``"free"`` or a number fixing the G2/G1 ratio for every sample.
    dataset
        Data set of multi-set files.
    """

    template: Template | None = None
    channel: str | None = None
    bins: int | None = None
    doublets: str | None = None
    model: str | None = None
    linearity: str | float = "shared"
    dataset: int = 0

    def __post_init__(self) -> None:
        if self.template is not None and self.template.cellcycle is None:
            msg = (f"template {self.template.name!r} is an {self.template.assay} template; cell-cycle "
                   "samples need a cell-cycle template such as generic_cellcycle")
            raise TemplateError(msg)
        if isinstance(self.linearity, str):
            valid = self.linearity in ("shared", "free")
        else:
            valid = 1.0 < float(self.linearity) < 3.0
        if not valid:
            msg = f"linearity must be 'shared', 'free' or a number between 1 and 3, not {self.linearity!r}"
            raise ValueError(msg)

    @property
    def resolved_model(self) -> str:
        """The model used: the option, else the template's, else ``"auto"``."""
        if self.model is not None:
            return self.model
        if self.template is not None and self.template.cellcycle:
            return self.template.cellcycle.model
        return "auto"

    @property
    def resolved_bins(self) -> int | None:
        """Histogram bins: the option, else the template's (None: ``min($PnR, 1024)``)."""
        if self.bins is not None:
            return self.bins
        return self.template.cellcycle.bins if self.template is not None and self.template.cellcycle else None

    @property
    def resolved_doublets(self) -> str:
        """Doublet discrimination: the option, else the template's, else ``"auto"``."""
        if self.doublets is not None:
            return self.doublets
        if self.template is not None and self.template.cellcycle:
            return self.template.cellcycle.doublets
        return "auto"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe description (for ``run.json``)."""
        return {
            "template": None if self.template is None else self.template.name,
            "channel": self.channel, "bins": self.resolved_bins, "doublets": self.resolved_doublets,
            "model": self.resolved_model, "linearity": self.linearity, "dataset": self.dataset,
        }


def analyze_cellcycle_file(path: str | os.PathLike[str], settings: CellCycleSettings, *,
                           file: str | None = None) -> tuple[dict[str, Any], Any]:
    """Read one file and fit its DNA histogram; never raises for a bad file.

    Parameters
    ----------
    path
        The FCS file.
    settings
        How to build and fit the histogram.
    file
        What to put in the ``file`` column (default: ``path`` as given).

    Returns
    -------
    row : dict
        ``sample_id`` and ``file``, plus ``status="error"``, ``message`` and ``model`` if the
        file could not be read or fitted (complete it with :func:`cellcycle_row`).
    fit : CellCycleFit, WatsonFit or None
        None when the row is an error.
    """
    from cytoflow_res.cellcycle import dna_histogram, fit_cell_cycle
    from cytoflow_res.cellcycle.histogram import dna_channels
    from cytoflow_res.io.fcs import read_fcs

    path = Path(path)
    row: dict[str, Any] = {"sample_id": path.stem, "file": str(path) if file is None else file}
    fixed = None if isinstance(settings.linearity, str) else float(settings.linearity)
    picked: dict[str, Any] = {}

    def needed(probe: Sample) -> list[int]:
        # Roles and the doublet partner are resolved on every channel of the file (so errors
        # list them all); only the DNA channel and its partner are then decoded.
        channel, partner = settings.channel, None
        if settings.template is not None:
            roles = settings.template.resolve_channels(probe)
            channel = channel or roles["dna"]
            partner = settings.template.doublet_channel(roles) if settings.doublets is None else None
        picked.update(channel=channel, partner=partner)
        return dna_channels(probe, channel=channel, doublets=settings.resolved_doublets,  # type: ignore[arg-type]
                            doublet_channel=partner)

    try:
        sample = read_fcs(path, dataset=settings.dataset, channels=needed)
        row["sample_id"] = sample.sample_id
        hist = dna_histogram(sample, channel=picked["channel"], bins=settings.resolved_bins,
                             doublets=settings.resolved_doublets,  # type: ignore[arg-type]
                             doublet_channel=picked["partner"])
        fit = fit_cell_cycle(hist, model=settings.resolved_model,  # type: ignore[arg-type]
                             linearity=fixed)
    except CytoflowResError as exc:
        row.update(status="error", message=str(exc), model=settings.resolved_model)
        return row, None
    return row, fit


def cellcycle_row(row: dict[str, Any], fit: Any) -> dict[str, Any]:
    """Complete a row of :func:`analyze_cellcycle_file` with its (possibly refitted) fit.

    Parameters
    ----------
    row
        The row (not changed).
    fit
        The fit, or None for an error row.

    Returns
    -------
    dict
        The row with every column of ``cellcycle.csv`` the fit provides.
    """
    out = dict(row)
    if fit is None:
        return out
    if not hasattr(fit, "to_frame"):  # a Watson fit
        summ = fit.summary()
        out.update({k: summ.get(k) for k in CELLCYCLE_COLUMNS if k in summ})
        out.update(events_total=fit.histogram.events_total, events_singlets=fit.histogram.events_singlets)
    else:
        out.update(fit.to_frame().iloc[0].to_dict())
    return out


def _shares_linearity(settings: CellCycleSettings) -> bool:
    """Whether the settings ask for one run-level linearity (Dean-Jett-Fox fits, ``"shared"``)."""
    return settings.resolved_model != "watson" and settings.linearity == "shared"


def share_run_linearity(fits: Sequence[Any], settings: CellCycleSettings) -> list[Any]:
    """Apply the run-level linearity sharing the settings ask for (see :class:`CellCycleSettings`)."""
    if not _shares_linearity(settings):
        return list(fits)
    from cytoflow_res.cellcycle.batch import share_linearity

    return share_linearity(list(fits))


# ---------------------------------------------------------------------------- tasks
@dataclass
class _Outcome:
    """What one task sends back: the result row, the fit (cell cycle) and bookkeeping.

    For cell cycle, ``base`` is the row before the fit's columns were added (to complete it
    again after a refit), ``placed`` the fit's own linearity when its G2/M is well placed, and
    ``needs_shared`` whether the run's linearity is to replace a linearity the data could not
    set (:mod:`cytoflow_res.cellcycle.batch`). ``fit`` is None once the outcome is in the run
    journal: the fit is then read back from the sample's entry.
    """

    row: dict[str, Any]
    fit: Any = None
    seconds: float = 0.0
    base: dict[str, Any] | None = None
    placed: float | None = None
    needs_shared: bool = False


def _checksum(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except OSError:
        return None


def _apoptosis_task(path: Path, file: str, gating: ApoptosisGating | str, dataset: int) -> _Outcome:
    """Gate one apoptosis sample; ``gating`` is the group's set-up or why it could not be made."""
    from cytoflow_res.io.fcs import read_fcs

    start = time.perf_counter()
    row: dict[str, Any] = {"sample_id": path.stem, "file": file}
    if isinstance(gating, str):
        row.update(status="error", message=gating)
    else:
        try:
            sample = read_fcs(path, dataset=dataset, channels=gating.needed_channels)
            result = gating.analyze(sample, file=file)
            row = {str(k): v for k, v in result.to_frame().iloc[0].items()}
        except CytoflowResError as exc:
            row.update(status="error", message=str(exc))
        except Exception as exc:  # a bug on one file must not end the run
            row.update(status="error", message=_internal(exc, path))
    return _Outcome(row, None, seconds=time.perf_counter() - start)


def _cellcycle_task(path: Path, file: str, settings: CellCycleSettings) -> _Outcome:
    from cytoflow_res.cellcycle.batch import g2_is_placed, needs_shared_linearity
    from cytoflow_res.cellcycle.fit import CellCycleFit

    start = time.perf_counter()
    try:
        base, fit = analyze_cellcycle_file(path, settings, file=file)
        row = cellcycle_row(base, fit)
    except Exception as exc:  # a bug on one file must not end the run
        base = {"sample_id": path.stem, "file": file, "status": "error", "message": _internal(exc, path),
                "model": settings.resolved_model}
        row, fit = dict(base), None
    placed = fit.linearity if isinstance(fit, CellCycleFit) and g2_is_placed(fit) else None
    return _Outcome(row, fit, seconds=time.perf_counter() - start, base=base, placed=placed,
                    needs_shared=needs_shared_linearity(fit))


def _internal(exc: BaseException, path: Path) -> str:
    return (f"{path}: internal error {type(exc).__name__}: {exc}; the other samples were analysed; "
            "please report this with the file")


def _run_task(task: tuple[Callable[..., _Outcome], tuple[Any, ...]]) -> _Outcome:
    func, args = task
    return func(*args)


def _limit_worker_threads() -> None:
    """Worker initializer: one BLAS thread per process (n processes x n BLAS threads thrash)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return
    threadpool_limits(1)


def _execute(
    tasks: list[tuple[Callable[..., _Outcome], tuple[Any, ...]]],
    on_outcome: Callable[[int, _Outcome], None],
    *,
    executor: str,
    n_jobs: int | None,
    scheduler: Any,
    progress: Progress,
) -> None:
    """Run the tasks and hand each outcome, as it comes, to ``on_outcome(task index, outcome)``.

    Nothing is kept here once handed over, so memory does not grow with the number of tasks
    beyond what ``on_outcome`` keeps.
    """

    def record(i: int, outcome: _Outcome | None, exc: BaseException | None) -> None:
        if outcome is None:
            path, file = tasks[i][1][:2]
            row = {"sample_id": Path(path).stem, "file": file, "status": "error",
                   "message": _internal(exc or RuntimeError("no result"), Path(path))}
            outcome = _Outcome(row)
        on_outcome(i, outcome)
        progress.update(note=str(outcome.row.get("file", "")))

    if executor == "serial" or not tasks:
        for i, task in enumerate(tasks):
            record(i, _run_task(task), None)
    elif executor == "process":
        workers = n_jobs or os.cpu_count() or 1
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                 initializer=_limit_worker_threads) as pool:
            futures: dict[Future[_Outcome], int] = {
                pool.submit(_run_task, task): i for i, task in enumerate(tasks)
            }
            for future in as_completed(futures):
                i = futures.pop(future)  # drop the finished future (and its result) once handled
                try:
                    outcome = future.result()
                except Exception as exc:  # e.g. a worker killed by the OS
                    record(i, None, exc)
                else:
                    record(i, outcome, None)
                del future
    else:
        for i, maybe, problem in _dask_map(tasks, n_jobs=n_jobs, scheduler=scheduler):
            record(i, maybe, problem)


def _dask_map(
    tasks: list[tuple[Callable[..., _Outcome], tuple[Any, ...]]], *, n_jobs: int | None, scheduler: Any,
) -> Iterator[tuple[int, _Outcome | None, BaseException | None]]:
    try:
        from dask.distributed import Client, LocalCluster
        from dask.distributed import as_completed as dask_as_completed
    except ImportError as exc:
        msg = ("executor 'dask' needs dask.distributed, which is not installed; "
               "install it with: pip install 'cytoflow-res[dask]'")
        raise CytoflowResError(msg) from exc
    cluster = None
    if isinstance(scheduler, Client):
        client, own_client = scheduler, False
    else:
        if scheduler is None:
            cluster = LocalCluster(n_workers=n_jobs or os.cpu_count() or 1, threads_per_worker=1,
                                   processes=True, dashboard_address=None)
            client = Client(cluster)
        else:
            try:
                client = Client(str(scheduler), timeout=30)
            except OSError as exc:
                msg = (f"cannot reach the dask scheduler at {scheduler!r}: {exc}; start one with "
                       "`dask scheduler` (and `dask worker ADDRESS` on each machine) or leave out "
                       "--scheduler to run a local cluster")
                raise CytoflowResError(msg) from exc
        own_client = True
    try:
        futures = client.map(_run_task, tasks, pure=False)
        index = {future.key: i for i, future in enumerate(futures)}
        pending = dask_as_completed(futures)
        del futures  # as_completed lets go of each future once yielded: results do not pile up
        for future in pending:
            i = index[future.key]
            try:
                result = future.result()
            except Exception as exc:  # a lost worker must not end the run
                yield i, None, exc
            else:
                yield i, result, None
            future.release()
    finally:
        if own_client:
            client.close()
        if cluster is not None:
            cluster.close()


# ---------------------------------------------------------------------------- experiment
@dataclass(frozen=True)
class Experiment:
    """An experiment described by a design sheet, ready to run.

    Parameters
    ----------
    design
        The validated design (:func:`~cytoflow_res.io.design.read_design`).

    See Also
    --------
    Experiment.from_design : Read the sheet.
    """

    design: Design

    @classmethod
    def from_design(cls, path: str | os.PathLike[str], *, worksheet: str | int = 0) -> Experiment:
        """Read and validate a design sheet (CSV, TSV or Excel).

        Files that do not exist are not an error here: the run records them as failed rows,
        so one missing file does not stop the others. Every other problem of the sheet
        raises (see :func:`~cytoflow_res.io.design.read_design`).

        Parameters
        ----------
        path
            The sheet; file paths in it are relative to its folder.
        worksheet
            Excel worksheet (name or 0-based position).

        Returns
        -------
        Experiment

        Raises
        ------
        DesignError
            Listing every problem of the sheet with its row.
        """
        return cls(read_design(path, check_files=False, worksheet=worksheet))

    def __repr__(self) -> str:
        return f"Experiment({self.design!r})"

    def run(
        self,
        *,
        template: TemplateArg | Sequence[TemplateArg] | None = None,
        n_jobs: int | None = None,
        executor: Executor = "serial",
        scheduler: Any = None,
        linearity: str | float = "shared",
        progress: bool | None = None,
        dataset: int = 0,
        journal: str | os.PathLike[str] | None = None,
        resume: bool = False,
    ) -> ExperimentResult:
        """Analyse every sample of the design.

        Parameters
        ----------
        template
            Gating template(s): a name, path or :class:`~cytoflow_res.gating.templates.Template`,
            or several (at most one per assay). Each is used for the samples of its assay.
            Default: ``generic_modern`` for apoptosis; the DNA channel found by name for cell
            cycle.
        n_jobs
            Worker processes (``"process"``; default: all cores) or local dask workers
            (``"dask"`` without ``scheduler``).
        executor
            ``"serial"``, ``"process"`` (a local process pool) or ``"dask"``
            (``dask.distributed``; optional dependency ``cytoflow-res[dask]``).
        scheduler
            For ``"dask"``: a scheduler address such as ``"tcp://10.0.0.5:8786"`` or a
            ``dask.distributed.Client``; None starts a local cluster for the run.
        linearity
            Cell-cycle G2/G1 ratio: ``"shared"`` (default), ``"free"`` or a number.
        progress
            Show a progress bar on stderr; None: only when stderr is a terminal.
        dataset
            Data set of multi-set files.
        journal
            Folder for the run journal (:mod:`cytoflow_res.io.journal`): each sample's outcome
            is written there as soon as it is finished and only its table row stays in memory;
            cell-cycle fits are read back from it when needed. ``cytoflow-res run`` uses
            ``OUT/journal``. At the end of a finished run, entries that no sample of this run
            uses are removed. None: keep everything in memory.
        resume
            Take from ``journal`` every sample already analysed there with the same file bytes
            (SHA-256), file name, settings and package version, instead of analysing it again;
            failed samples are always retried. The tables are the same as those of a fresh run.

        Returns
        -------
        ExperimentResult
            Tables in sheet order; failed samples included with the reason.

        Raises
        ------
        TemplateError
            A template cannot be loaded or two templates are for the same assay.
        ValueError
            An unknown executor, a bad ``n_jobs``, or ``resume`` without a ``journal``.
        """
        if executor not in EXECUTORS:
            msg = f"executor must be one of {', '.join(EXECUTORS)}, not {executor!r}"
            raise ValueError(msg)
        if n_jobs is not None and n_jobs < 1:
            msg = f"n_jobs must be at least 1, not {n_jobs}"
            raise ValueError(msg)
        if resume and journal is None:
            msg = "resume=True needs the journal folder of the run to resume (journal=...)"
            raise ValueError(msg)
        started = _dt.datetime.now(_dt.timezone.utc)
        t0 = time.perf_counter()
        templates = _templates_by_assay(template)
        apo_template = templates.get("apoptosis") or load_template("generic_modern")
        cc_settings = CellCycleSettings(template=templates.get("cellcycle"), linearity=linearity,
                                        dataset=dataset)
        design = self.design
        table = design.table
        samples = table[table["role"] == "sample"]

        # Control-derived settings, once per apoptosis group (in this process: few files).
        gatings: dict[str, ApoptosisGating | str] = {}
        control_errors: list[dict[str, Any]] = []
        for group in design.groups("apoptosis"):
            gatings[group] = _prepare_group(design, group, apo_template, dataset, control_errors)

        store = Journal(journal) if journal is not None else None
        settings_hash: dict[str, str | None] = {}
        cc_hash = None
        if store is not None:  # what decides each sample's result, for its journal key
            apo_identity = _template_identity(apo_template)
            settings_hash = {group: _apoptosis_hash(gating, apo_identity, dataset)
                             for group, gating in gatings.items()}
            cc_hash = hash_settings({"assay": "cellcycle", "settings": cc_settings.to_dict(),
                                     "template": _template_identity(cc_settings.template)})

        # One task per sample row, in sheet order: outcome i belongs to samples.iloc[i].
        tasks: list[tuple[Callable[..., _Outcome], tuple[Any, ...]]] = []
        keys: list[str | None] = []
        checksums: list[str | None] = []
        for _, row in samples.iterrows():
            path = Path(str(row["path"]))
            file = str(row["file"])
            checksum = _checksum(path)
            checksums.append(checksum)
            if row["assay"] == "apoptosis":
                gating = gatings[str(row["group"])]
                tasks.append((_apoptosis_task, (path, file, gating, dataset)))
                task_hash = settings_hash.get(str(row["group"]))
            else:
                tasks.append((_cellcycle_task, (path, file, cc_settings)))
                task_hash = cc_hash
            keys.append(None if store is None or checksum is None or task_hash is None
                        else entry_key(file=file, sha256=checksum, settings=task_hash))

        outcomes: list[_Outcome | None] = [None] * len(tasks)
        if resume and store is not None:
            for i, key in enumerate(keys):
                earlier = store.load(key) if key is not None else None
                if isinstance(earlier, _Outcome) and earlier.row.get("status") not in stats.FAILED_STATUSES:
                    earlier.fit = None
                    outcomes[i] = earlier
        todo = [i for i, o in enumerate(outcomes) if o is None]
        reused = set(range(len(tasks))) - set(todo)
        if resume:
            log.info("resuming: %d of %d samples taken from the journal %s", len(tasks) - len(todo),
                     len(tasks), journal)

        def keep(j: int, outcome: _Outcome) -> None:
            i = todo[j]
            key = keys[i]
            if store is not None and key is not None:
                store.save(key, outcome)  # streamed: from here on only the row stays in memory
                outcome.fit = None
            outcomes[i] = outcome

        log.info("running %d samples (%s executor)", len(todo), executor)
        with Progress(len(tasks), desc="cytoflow-res run", enabled=progress) as bar:
            if len(todo) < len(tasks):
                bar.update(len(tasks) - len(todo), note="from the journal")
            _execute([tasks[i] for i in todo], keep, executor=executor, n_jobs=n_jobs,
                     scheduler=scheduler, progress=bar)
        done = [o for o in outcomes if o is not None]
        if len(done) != len(tasks):  # every task reports, failures included
            msg = f"internal error: {len(tasks) - len(done)} samples did not report; please report this"
            raise RuntimeError(msg)

        cc_refs = _share_linearity(done, list(samples["assay"]), cc_settings, store, keys, resume=resume)
        apo_rows: list[dict[str, Any]] = []
        cc_rows: list[dict[str, Any]] = []
        cc_fits: list[Any] = []
        files: list[dict[str, Any]] = []
        for i, (outcome, (_, design_row)) in enumerate(zip(done, samples.iterrows(), strict=True)):
            files.append({"file": str(design_row["file"]), "assay": design_row["assay"], "role": "sample",
                          "sha256": checksums[i], "seconds": round(outcome.seconds, 4),
                          "from_journal": i in reused})
            if design_row["assay"] == "apoptosis":
                apo_rows.append(outcome.row)
            else:
                cc_rows.append(outcome.row)
                cc_fits.append(cc_refs[i])
        fits: Sequence[Any]
        if store is not None:
            used = {k for k in keys if k is not None} | {k for k in cc_fits if isinstance(k, str)}
            fits = FitStore(store, cc_fits)
            removed = store.prune(used)
            if removed:
                log.info("run journal: removed %d entries no sample of this run uses", removed)
        else:
            fits = cc_fits
        controls = table[table["role"] != "sample"]
        for _, row in controls.iterrows():
            files.append({"file": str(row["file"]), "assay": row["assay"], "role": row["role"],
                          "sha256": _checksum(Path(str(row["path"]))), "seconds": None,
                          "from_journal": False})

        apoptosis = _with_design(design, samples[samples["assay"] == "apoptosis"], apo_rows,
                                 APOPTOSIS_COLUMNS)
        cellcycle = _with_design(design, samples[samples["assay"] == "cellcycle"], cc_rows,
                                 CELLCYCLE_COLUMNS)
        errors = _errors_table(apoptosis, cellcycle, control_errors)
        finished = _dt.datetime.now(_dt.timezone.utc)
        settings = {
            "executor": executor, "n_jobs": n_jobs,
            "scheduler": None if scheduler is None or not isinstance(scheduler, str) else scheduler,
            "dataset": dataset,
            "apoptosis_template": apo_template.name if not samples[samples["assay"] == "apoptosis"].empty
            else None,
            "cellcycle": cc_settings.to_dict(),
            "journal": None if journal is None else str(journal), "resume": resume,
        }
        return ExperimentResult(
            design=design, apoptosis=apoptosis, cellcycle=cellcycle, errors=errors,
            gatings={g: v for g, v in gatings.items()}, templates={"apoptosis": apo_template,
                                                                    "cellcycle": cc_settings.template},
            files=pd.DataFrame(files, columns=["file", "assay", "role", "sha256", "seconds", "from_journal"]),
            settings=settings, cellcycle_fits=fits, started=started.isoformat(timespec="seconds"),
            finished=finished.isoformat(timespec="seconds"), seconds=time.perf_counter() - t0,
        )


def _template_identity(template: Template | None) -> Any:
    """A template's settings and the SHA-256 of the files it reads (for journal keys)."""
    if template is None:
        return None
    doc = template.to_dict()
    pre = template.pregates
    paths = [template.compensation.path,
             None if pre.gatingml is None else pre.gatingml.path,
             None if pre.flowjo is None else pre.flowjo.path]
    files = {str(p): _checksum(Path(str(p))) for p in paths if p}
    return {"settings": doc, "files": files}


def _apoptosis_hash(gating: ApoptosisGating | str, template: Any, dataset: int) -> str | None:
    """Hash of what decides a group's apoptosis results; None when the group has no set-up.

    ``template`` is the template's :func:`_template_identity`.
    """
    if isinstance(gating, str):
        return None
    return hash_settings({
        "assay": "apoptosis", "dataset": dataset, "template": template,
        "thresholds": gating.thresholds.to_dict(),
        "compensation": _describe_compensation(gating.compensation),
    })


def _share_linearity(outcomes: list[_Outcome], assays: list[str], settings: CellCycleSettings,
                     store: Journal | None, keys: list[str | None], *, resume: bool) -> list[Any]:
    """Per task, its cell-cycle fit after the run's linearity sharing (see ``share_run_linearity``).

    Each item is the fit itself, the journal key of the entry holding it, or None. Fits whose
    G2/M could not be placed are refitted with the median linearity of the placed ones, their
    rows completed again, and (with a journal) written to it under their own key.
    """
    from cytoflow_res.cellcycle.batch import batch_linearity, refit_with_linearity

    # With a journal every outcome that has a key is in it (fit None in memory).
    refs: list[Any] = [key if store is not None and key is not None else o.fit
                       for o, key in zip(outcomes, keys, strict=True)]
    if not _shares_linearity(settings):
        return refs
    cc = [i for i, assay in enumerate(assays) if assay == "cellcycle"]
    placed = [p for p in (outcomes[i].placed for i in cc) if p is not None]
    shared = batch_linearity(placed)
    if shared is None:
        return refs
    for i in cc:
        outcome = outcomes[i]
        if not outcome.needs_shared:
            continue
        key = keys[i]
        refit_key = None
        if store is not None and key is not None:
            refit_key = hash_settings({"refit_of": key, "linearity": shared, "n_placed": len(placed)})
            earlier = store.load(refit_key) if resume else None
            if isinstance(earlier, _Outcome):
                outcome.row, refs[i] = earlier.row, refit_key
                continue
        own = outcome.fit
        if own is None and store is not None and key is not None:
            own = getattr(store.load(key), "fit", None)
        if own is None:
            continue
        fit = refit_with_linearity(own, shared, n_placed=len(placed))
        if fit is own:
            continue
        outcome.row = cellcycle_row(outcome.base or {}, fit)
        if store is not None and refit_key is not None:
            store.save(refit_key, _Outcome(outcome.row, fit))
            refs[i] = refit_key
        else:
            refs[i] = fit
    return refs


def _templates_by_assay(template: TemplateArg | Sequence[TemplateArg] | None) -> dict[str, Template]:
    if template is None:
        return {}
    items = [template] if isinstance(template, (str, os.PathLike, Template)) else list(template)
    out: dict[str, Template] = {}
    for item in items:
        tpl = item if isinstance(item, Template) else load_template(item)
        if tpl.assay in out:
            msg = (f"two {tpl.assay} templates given ({out[tpl.assay].name!r} and {tpl.name!r}); "
                   "give at most one per assay")
            raise TemplateError(msg)
        out[tpl.assay] = tpl
    return out


def _prepare_group(design: Design, group: str, template: Template, dataset: int,
                   control_errors: list[dict[str, Any]]) -> ApoptosisGating | str:
    """The group's gating set-up, or a sentence saying why there is none (for its samples' rows)."""
    from cytoflow_res.io.fcs import read_fcs

    table = design.table
    rows = table[(table["assay"] == "apoptosis") & (table["group"] == group) & (table["role"] != "sample")]
    controls: dict[str, Any] = {}
    for _, row in rows.iterrows():
        try:
            controls[str(row["role"])] = read_fcs(Path(str(row["path"])), dataset=dataset)
        except CytoflowResError as exc:
            control_errors.append({**_error_design(row), "status": "error", "message": str(exc)})
            return (f"group {group!r} has no thresholds because its {row['role']} control "
                    f"{row['file']} could not be read: {exc}")
    try:
        gating = ApoptosisGating.prepare(
            template, unstained=controls.get("unstained"), annexin_only=controls.get("annexin_only"),
            pi_only=controls.get("pi_only"),
        )
    except CytoflowResError as exc:
        files = ", ".join(str(f) for f in rows["file"]) or "no control files"
        control_errors.append({"assay": "apoptosis", "file": files, "role": "control", "group": group,
                               "status": "error", "message": str(exc)})
        return f"group {group!r} has no thresholds: {exc}"
    thr = gating.thresholds
    log.info("group %s: thresholds Annexin V %.6g, PI %.6g (%s)", group, thr.annexin, thr.pi, thr.source)
    return gating


def _error_design(row: pd.Series) -> dict[str, Any]:
    return {k: row.get(k) for k in ERROR_COLUMNS if k not in ("status", "message")}


def _with_design(design: Design, rows: pd.DataFrame, results: list[dict[str, Any]],
                 leading: Sequence[str]) -> pd.DataFrame:
    """Design columns first, then the assay's columns in the order of its command's CSV."""
    design_cols = design.design_columns
    frame = pd.DataFrame(results)
    for col in leading:
        if col not in frame.columns:
            frame[col] = None
    frame = frame[[*leading, *(c for c in frame.columns if c not in leading)]]
    left = rows[design_cols].reset_index(drop=True)
    clash = [c for c in design_cols if c in frame.columns]
    if clash:
        left = left.rename(columns={c: f"design_{c}" for c in clash})
        log.warning("design columns %s are also result columns; they are named design_<name> in the "
                    "tables", ", ".join(clash))
    return pd.concat([left, frame.reset_index(drop=True)], axis=1)


def _errors_table(apoptosis: pd.DataFrame, cellcycle: pd.DataFrame,
                  control_errors: list[dict[str, Any]]) -> pd.DataFrame:
    rows: list[dict[str, Any]] = list(control_errors)
    for assay, frame in (("apoptosis", apoptosis), ("cellcycle", cellcycle)):
        if frame.empty:
            continue
        bad = frame[frame["status"].isin(stats.FAILED_STATUSES)]
        for _, row in bad.iterrows():
            rows.append({**{k: row.get(k) for k in ERROR_COLUMNS}, "assay": assay, "role": "sample"})
    return pd.DataFrame(rows, columns=ERROR_COLUMNS)


# ---------------------------------------------------------------------------- result
@dataclass
class ExperimentResult:
    """Everything a run produced.

    Attributes
    ----------
    design
        The design that was run.
    apoptosis, cellcycle
        One row per sample (sheet order): the design columns, then the columns of
        ``apoptosis.csv`` / ``cellcycle.csv`` of the assay commands. Failed samples have
        ``status`` ``error`` (could not be read or gated) or ``failed`` (the fit failed) and
        a ``message``.
    errors
        One row per failure: failed samples and controls that could not be used.
    gatings
        Apoptosis group -> its :class:`~cytoflow_res.apoptosis.ApoptosisGating` (thresholds,
        compensation) or the reason it could not be set up.
    templates
        Assay -> template used (None: channels found by name).
    files
        Every input file with its SHA-256 (None if unreadable) and analysis time.
    settings
        Run settings (executor, templates, cell-cycle fit settings).
    cellcycle_fits
        The fit of each row of :attr:`cellcycle` (None where it is an error), for figures: a
        list, or with a run journal a :class:`~cytoflow_res.io.journal.FitStore` that reads
        each fit from disk when indexed.
    started, finished
        UTC timestamps (ISO 8601).
    seconds
        Wall time of the run.
    notes
        Why a table lacks a test or a metric (e.g. a cell line without a combination arm).
    """

    design: Design
    apoptosis: pd.DataFrame
    cellcycle: pd.DataFrame
    errors: pd.DataFrame
    gatings: dict[str, ApoptosisGating | str]
    templates: dict[str, Template | None]
    files: pd.DataFrame
    settings: dict[str, Any]
    cellcycle_fits: Sequence[Any]
    started: str
    finished: str
    seconds: float
    notes: list[str] = field(default_factory=list)
    _cache: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        parts = []
        for assay in ("apoptosis", "cellcycle"):
            frame = getattr(self, assay)
            if not frame.empty:
                n_bad = int(frame["status"].isin(stats.FAILED_STATUSES).sum())
                parts.append(f"{assay}: {len(frame)} samples, {n_bad} failed")
        return f"ExperimentResult({self.design.sheet.name!r}; {'; '.join(parts)}; {self.seconds:.1f} s)"

    @property
    def ok(self) -> bool:
        """True when every sample and control was analysed (no row in :attr:`errors`)."""
        return self.errors.empty

    def _measures(self, assay: str) -> tuple[pd.DataFrame, tuple[str, ...]]:
        frame = self.apoptosis if assay == "apoptosis" else self.cellcycle
        measures = APOPTOSIS_MEASURES if assay == "apoptosis" else CELLCYCLE_MEASURES
        usable = frame[~frame["status"].isin(stats.FAILED_STATUSES)] if not frame.empty else frame
        if usable.empty:
            return frame, ()
        return frame, tuple(m for m in measures if m in frame.columns)

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)
            log.info("%s", text)

    def summary(self) -> pd.DataFrame:
        """Mean, SD, SEM, n and 95% CI of every measure per cell line x arm (both assays).

        Returns
        -------
        pandas.DataFrame
            ``assay``, ``cell_line``, ``treatment``, then the columns of
            :func:`cytoflow_res.stats.summarize`.
        """
        if "summary" not in self._cache:
            frames = []
            for assay in ("apoptosis", "cellcycle"):
                frame, measures = self._measures(assay)
                if not measures:
                    continue
                part = stats.summarize(frame, list(measures))
                part.insert(0, "assay", assay)
                frames.append(part)
            self._cache["summary"] = _concat(frames, ["assay", "cell_line", "treatment", "measure", "n"])
        return self._cache["summary"]

    def comparisons(self) -> pd.DataFrame:
        """Every test of the experiment, one row per comparison.

        Per cell line and measure: each arm vs vehicle (Dunnett), all pairs (Tukey HSD), the
        combination vs each single agent (Welch, Holm); with two or more cell lines, the
        cell line x treatment two-way ANOVA (Type II; rows carry ``term``, ``df``, ``F``).
        ``comparison`` names the family, ``test`` and ``correction`` the method.

        Returns
        -------
        pandas.DataFrame
        """
        if "comparisons" not in self._cache:
            frames: list[pd.DataFrame] = []
            for assay in ("apoptosis", "cellcycle"):
                frame, measures = self._measures(assay)
                for measure in measures:
                    frames += self._comparisons_of(assay, frame, measure)
            self._cache["comparisons"] = _concat(
                frames, ["assay", "comparison", "cell_line", *stats.COMPARISON_COLUMNS])
        return self._cache["comparisons"]

    def _comparisons_of(self, assay: str, frame: pd.DataFrame, measure: str) -> list[pd.DataFrame]:
        out: list[pd.DataFrame] = []
        lines = list(dict.fromkeys(frame["cell_line"].dropna().astype(str)))
        families: list[tuple[str, Callable[..., pd.DataFrame], dict[str, Any]]] = [
            ("vs vehicle", stats.compare_to_vehicle, {"seed": STATS_SEED}),
            ("pairwise", stats.pairwise_tukey, {}),
            ("combination vs single agents", stats.combination_vs_singles, {}),
        ]
        for line in lines:
            sub = frame[frame["cell_line"].astype(str) == line]
            for name, func, kwargs in families:
                try:
                    part = func(sub, measure, **kwargs)
                except DesignError as exc:
                    self._note(f"{assay} {measure}, {name}: {exc}")
                    continue
                if not part.empty:
                    part.insert(0, "comparison", name)
                    part.insert(0, "assay", assay)
                    out.append(part)
        if len(lines) > 1:
            try:
                part = stats.two_way_anova(frame, measure)
            except DesignError as exc:
                self._note(f"{assay} {measure}, two-way ANOVA: {exc}")
            else:
                part = part.rename(columns={"F": "statistic"})
                part.insert(0, "correction", "none")
                part.insert(0, "test", "two-way ANOVA (Type II)")
                part.insert(0, "comparison", "cell line x treatment")
                part.insert(0, "assay", assay)
                out.append(part)
        return out

    def synergy(self) -> pd.DataFrame:
        """Combination metrics per cell line.

        Single-dose designs: Bliss independence and highest-single-agent excess on the
        vehicle-corrected fraction affected (:func:`cytoflow_res.stats.bliss`) of total
        apoptosis, viability and sub-G1. Dose series: Chou-Talalay combination indices
        (:func:`cytoflow_res.stats.dose_series_synergy`).

        Returns
        -------
        pandas.DataFrame
            ``assay``, ``metric`` (``"Bliss/HSA"`` or ``"Chou-Talalay"``), then the columns of
            the function used.
        """
        if "synergy" not in self._cache:
            frames: list[pd.DataFrame] = []
            for assay in ("apoptosis", "cellcycle"):
                frame, measures = self._measures(assay)
                for measure in (m for m in SYNERGY_MEASURES[assay] if m in measures):
                    frames += self._synergy_of(assay, frame, measure)
            self._cache["synergy"] = _concat(frames, ["assay", "metric", "cell_line", "measure"])
        return self._cache["synergy"]

    def _synergy_of(self, assay: str, frame: pd.DataFrame, measure: str) -> list[pd.DataFrame]:
        out: list[pd.DataFrame] = []
        for line in dict.fromkeys(frame["cell_line"].dropna().astype(str)):
            sub = frame[frame["cell_line"].astype(str) == line]
            try:
                if stats.has_dose_series(sub):
                    part, metric = stats.dose_series_synergy(sub, measure), "Chou-Talalay"
                else:
                    part, metric = stats.bliss(sub, measure, seed=STATS_SEED), "Bliss/HSA"
            except CytoflowResError as exc:
                self._note(f"{assay} {measure}, combination metrics: {exc}")
                continue
            part.insert(0, "metric", metric)
            part.insert(0, "assay", assay)
            out.append(part)
        return out

    def tables(self) -> dict[str, pd.DataFrame]:
        """All tables by name (the CSV files and Excel sheets of :meth:`write`)."""
        return {
            "apoptosis": self.apoptosis, "cellcycle": self.cellcycle, "summary": self.summary(),
            "comparisons": self.comparisons(), "synergy": self.synergy(), "errors": self.errors,
        }

    def run_record(self) -> dict[str, Any]:
        """What ``run.json`` holds: versions, settings, thresholds, inputs and failures."""
        tables = self.tables()  # computes the notes
        thresholds: dict[str, Any] = {}
        for group, gating in self.gatings.items():
            if isinstance(gating, str):
                thresholds[group] = {"error": gating}
            else:
                comp = gating.compensation
                thresholds[group] = {
                    **gating.thresholds.to_dict(),
                    "notes": list(gating.thresholds.notes),
                    "compensation": _describe_compensation(comp),
                }
        templates = {}
        for assay, tpl in self.templates.items():
            if tpl is None:
                continue
            spec = tpl.to_dict()
            templates[assay] = {"name": tpl.name, "source": tpl.source, "sha256": hash_settings(spec),
                                "settings": spec}
        files = self.files.replace({np.nan: None}).to_dict(orient="records")
        return {
            "cytoflow_res_version": __version__,
            "started": self.started, "finished": self.finished, "seconds": round(self.seconds, 3),
            "design": {"sheet": str(self.design.sheet), "sha256": _checksum(self.design.sheet),
                       "warnings": list(self.design.warnings)},
            "environment": environment(),
            "settings": {**self.settings, "stats_seed": STATS_SEED},
            "templates": templates,
            "thresholds": thresholds,
            "files": files,
            "tables": {name: {"rows": len(frame), "columns": list(frame.columns)}
                       for name, frame in tables.items()},
            "errors": self.errors.replace({np.nan: None}).to_dict(orient="records"),
            "notes": list(self.notes),
        }

    def write(self, out: str | os.PathLike[str]) -> dict[str, Path]:
        """Write every table as CSV, all of them as ``results.xlsx``, and ``run.json``.

        Each file is written to a temporary name and renamed into place, so an interrupted
        run leaves either the previous file or the new one, never half of one. ``run.json``
        is written last.

        Parameters
        ----------
        out
            Output folder (created if needed).

        Returns
        -------
        dict
            Name -> path written (``apoptosis``, ``cellcycle``, ``summary``, ``comparisons``,
            ``synergy``, ``errors``, ``xlsx``, ``run``).
        """
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        tables = self.tables()
        written: dict[str, Path] = {}
        for name, frame in tables.items():
            written[name] = write_csv_atomic(frame, folder / f"{name}.csv")
        written["xlsx"] = write_excel_atomic(tables, folder / "results.xlsx")
        written["run"] = write_json_atomic(self.run_record(), folder / "run.json")
        return written


def _describe_compensation(comp: Any) -> Any:
    """JSON-safe compensation of a group: none, each file's own spillover, or the matrix used."""
    if comp is None:
        return "none"
    if isinstance(comp, str):
        return "each file's own spillover keyword" if comp == "file" else comp
    return {"source": comp.source, "matrix": comp.to_frame().reset_index().to_dict(orient="list")}


def _concat(frames: list[pd.DataFrame], columns: Sequence[str]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=list(columns))
    return pd.concat(frames, ignore_index=True)
