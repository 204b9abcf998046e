"""Writing results: atomically, so an interrupted run never leaves a half-written file.

Every writer here goes through a temporary file in the destination's folder, flushed to disk
and then renamed over the destination with :func:`os.replace` (atomic on POSIX and Windows).
An error or a Ctrl-C part-way through leaves the previous file, if any, untouched, and no
temporary file behind.

Beside the writers are the helpers that make a run reproducible: :func:`sha256_file` (input
checksums), :func:`hash_settings` (a template or settings fingerprint) and :func:`environment`
(interpreter and package versions), all meant for a ``run.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import enum
import hashlib
import importlib.metadata
import json
import logging
import math
import os
import platform
import re
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePath
from typing import IO, Any, BinaryIO, cast

import numpy as np
import pandas as pd

__all__ = [
    "atomic_open",
    "environment",
    "hash_settings",
    "sha256_file",
    "write_csv_atomic",
    "write_excel_atomic",
    "write_json_atomic",
    "write_text_atomic",
]

logger = logging.getLogger(__name__)

#: Distributions whose versions :func:`environment` reports, by their PyPI names.
ENVIRONMENT_PACKAGES = (
    "cytoflow-res",
    "numpy",
    "scipy",
    "pandas",
    "matplotlib",
    "scikit-learn",
    "flowkit",
    "flowio",
    "openpyxl",
    "pyyaml",
    "dask",
    "distributed",
)


# ---------------------------------------------------------------------------- atomic replacement


@contextlib.contextmanager
def atomic_open(path: Path, mode: str, **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path``; on success fsync it and rename it over ``path``.

    On any exception (KeyboardInterrupt included) the temporary file is removed and the
    destination is left as it was.

    Parameters
    ----------
    path
        The destination.
    mode
        ``"x"`` (text) or ``"xb"`` (bytes): the temporary file is always new.
    **kwargs
        Passed to :func:`open` (``encoding``, ``newline``).

    Yields
    ------
    file object
        The open temporary file.
    """
    # Same folder, so os.replace never crosses file systems; the random part keeps two writers
    # of one path (threads, or processes sharing a pid namespace) off each other's file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, mode, **kwargs) as fh:  # "x" mode: never follow or clobber an existing file
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.replace(tmp, path)
        except PermissionError as exc:
            # Windows refuses to replace a file another program holds open, typically Excel.
            msg = (f"cannot replace {path}: {exc.strerror}; if it is open in another program "
                   "(Excel, for instance), close it and write again")
            raise PermissionError(exc.errno, msg) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX only; a no-op where folders cannot be opened)."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_csv_atomic(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a DataFrame as CSV through a temporary file renamed into place.

    Parameters
    ----------
    frame
        The table (its index is not written).
    path
        Destination; its folder must exist.

    Returns
    -------
    pathlib.Path
        The written path.
    """
    path = Path(path)
    with atomic_open(path, "x", encoding="utf-8", newline="") as fh:
        frame.to_csv(fh, index=False)
    return path


# ---------------------------------------------------------------------------- JSON


def _json_key(key: Any, where: str) -> str:
    """A JSON object key from a mapping key, following :mod:`json`'s spelling of scalars."""
    if isinstance(key, np.generic):
        key = key.item()
    if isinstance(key, str):
        return key
    if isinstance(key, PurePath):
        return str(key)
    if key is None or isinstance(key, bool | int | float):
        return json.dumps(key)
    msg = (f"key {key!r} at {where} is a {type(key).__name__}; JSON object keys must be strings "
           "(or numbers, booleans, None or paths, which are converted)")
    raise TypeError(msg)


def _jsonable(obj: Any, where: str = "top level", _active: frozenset[int] = frozenset()) -> Any:
    """Convert ``obj`` to plain JSON types (dict, list, str, int, float, bool, None).

    Numpy scalars and arrays, paths, dates and times (ISO 8601), pandas Series and DataFrames
    (a list of row records), enums and dataclasses are converted; NaN and ±inf become None
    (strict JSON has no spelling for them).
    """
    if obj is None or isinstance(obj, str | bool):
        return obj
    if isinstance(obj, np.datetime64 | np.timedelta64):
        # .item() would give bare integers for nanosecond units; pandas keeps them times
        obj = pd.Timestamp(obj) if isinstance(obj, np.datetime64) else pd.Timedelta(obj)
    elif isinstance(obj, np.generic):
        obj = obj.item()  # numpy scalar -> Python scalar, then treated as one below
    if isinstance(obj, int | float):
        if isinstance(obj, float) and not math.isfinite(obj):
            return None
        return obj
    if obj is pd.NaT or obj is pd.NA:
        return None
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, pd.Timedelta):
        return obj.isoformat()
    if isinstance(obj, dt.timedelta):
        return pd.Timedelta(obj).isoformat()
    if isinstance(obj, dt.date | dt.time):  # datetime and pd.Timestamp are dates too
        return obj.isoformat()
    if isinstance(obj, enum.Enum):
        return _jsonable(obj.value, where, _active)

    # Containers from here on: guard against a container that holds itself.
    if id(obj) in _active:
        msg = f"circular reference at {where}: a container holds itself; JSON cannot represent that"
        raise ValueError(msg)
    active = _active | {id(obj)}
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            name = _json_key(key, where)
            if name in out:
                msg = f"two keys at {where} both become {name!r} in JSON; rename one of them"
                raise ValueError(msg)
            out[name] = _jsonable(value, f"{where}[{name!r}]", active)
        return out
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind == "c":
            msg = f"array at {where} is complex; JSON has no complex numbers, store real and imag apart"
            raise TypeError(msg)
        if obj.dtype.kind in "mM":  # element by element, as .tolist() gives integers for ns units
            return _jsonable(obj[()] if obj.ndim == 0 else list(obj), where, active)
        return _jsonable(obj.tolist(), where, active)
    if isinstance(obj, pd.DataFrame):
        return _jsonable(obj.to_dict(orient="records"), where, active)
    if isinstance(obj, pd.Series):
        return _jsonable(obj.to_dict(), where, active)
    if isinstance(obj, list | tuple):
        return [_jsonable(item, f"{where}[{i}]", active) for i, item in enumerate(obj)]
    if isinstance(obj, set | frozenset):
        items = [_jsonable(item, where, active) for item in obj]
        with contextlib.suppress(TypeError):  # mixed types cannot be ordered; keep them as they come
            items.sort()
        return items
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {field.name: getattr(obj, field.name) for field in dataclasses.fields(obj)}
        return _jsonable(fields, where, active)
    msg = (f"value at {where} is a {type(obj).__module__}.{type(obj).__qualname__}, which cannot be "
           "written as JSON; convert it to a dict, list, string or number first")
    raise TypeError(msg)


def write_json_atomic(
    obj: Any,
    path: str | os.PathLike[str],
    *,
    indent: int | None = 2,
    sort_keys: bool = False,
) -> Path:
    """Write ``obj`` as strict JSON (UTF-8, final newline) through a temporary file.

    Parameters
    ----------
    obj
        Dicts, lists and scalars, which may include numpy scalars and arrays, :class:`pathlib.Path`
        (written as strings), dates, times and :class:`pandas.Timestamp` (ISO 8601 strings),
        timedeltas (ISO 8601 durations), pandas Series (an object) and DataFrames (a list of row
        objects), enums (their values) and dataclasses (objects of their fields).
        NaN, ±inf, ``pd.NA`` and ``pd.NaT`` are written as ``null``.
    path
        Destination; its folder must exist.
    indent
        Spaces per nesting level; None writes everything on one line.
    sort_keys
        Whether to sort the keys of every object.

    Returns
    -------
    pathlib.Path
        The written path.

    Raises
    ------
    TypeError
        A value (named by its position in ``obj``) has no JSON form.
    ValueError
        ``obj`` contains itself, or two keys of one mapping become the same string.
    """
    path = Path(path)
    text = json.dumps(_jsonable(obj), indent=indent, sort_keys=sort_keys, ensure_ascii=False,
                      allow_nan=False)
    return write_text_atomic(text + "\n", path)


def write_text_atomic(text: str, path: str | os.PathLike[str]) -> Path:
    """Write text as UTF-8 through a temporary file renamed into place.

    Line endings are written as given (bytes, not text mode), so the file and its checksum
    are the same on every platform.

    Parameters
    ----------
    text
        The content.
    path
        Destination; its folder must exist.

    Returns
    -------
    pathlib.Path
        The written path.
    """
    path = Path(path)
    with atomic_open(path, "xb") as fh:
        fh.write(text.encode("utf-8"))
    return path


def hash_settings(obj: Any) -> str:
    """SHA-256 of the canonical JSON form of a settings object (a template, options, ...).

    The canonical form sorts keys at every level and has no whitespace, so two settings that
    differ only in key order have the same hash. Values are converted as in
    :func:`write_json_atomic`; note that ``1`` and ``1.0`` stay different, as do a list and a
    string.

    Parameters
    ----------
    obj
        A JSON-able object.

    Returns
    -------
    str
        64 lowercase hex digits.
    """
    canonical = json.dumps(_jsonable(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                           allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------- checksums, environment


def sha256_file(path: str | os.PathLike[str], *, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, read in chunks so large files need little memory.

    Parameters
    ----------
    path
        The file.
    chunk
        Bytes read at a time (positive).

    Returns
    -------
    str
        64 lowercase hex digits.
    """
    if chunk < 1:
        msg = f"chunk must be a positive number of bytes, not {chunk}"
        raise ValueError(msg)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def environment() -> dict[str, Any]:
    """The interpreter, platform and package versions a run used, for a ``run.json``.

    Returns
    -------
    dict
        ``python`` (version), ``implementation`` (e.g. CPython), ``platform``, ``machine``
        (e.g. x86_64) and ``packages``: a dict from each distribution name of
        :data:`ENVIRONMENT_PACKAGES` to its installed version, or None when it is not installed.
    """
    packages: dict[str, str | None] = {}
    for name in ENVIRONMENT_PACKAGES:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = None
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "packages": packages,
    }


# ---------------------------------------------------------------------------- Excel

_EXCEL_MAX_ROWS = 1_048_576
_EXCEL_MAX_COLUMNS = 16_384
_EXCEL_MAX_TEXT = 32_767
_SHEET_NAME_MAX = 31
_SHEET_NAME_BAD = re.compile(r"[\[\]:*?/\\\x00-\x1f]")
# Control characters the XML of a workbook cannot hold (tab, newline and return are fine).
_CELL_TEXT_BAD = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
# Strings openpyxl would store as formulas or error values rather than as text.
_EXCEL_ERROR_CODES = frozenset({"#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A"})
_MAX_WIDTH = 60


def _sheet_names(names: list[str]) -> list[str]:
    r"""Excel-valid, case-insensitively unique worksheet names, one per table name, in order.

    Excel's rules: 1 to 31 characters, none of ``[]:*?/\\``, no apostrophe at either end, and
    not ``History`` (reserved).
    """
    out: list[str] = []
    taken: set[str] = set()
    for name in names:
        clean = _SHEET_NAME_BAD.sub("_", name).strip("'")
        if not clean:
            clean = "Sheet"
        if clean.casefold() == "history":
            clean += "_"
        clean = clean[:_SHEET_NAME_MAX].rstrip("'")
        candidate, k = clean, 2
        while candidate.casefold() in taken:
            suffix = f"~{k}"
            candidate = clean[: _SHEET_NAME_MAX - len(suffix)].rstrip("'") + suffix
            k += 1
        taken.add(candidate.casefold())
        out.append(candidate)
        if candidate != name:
            logger.info("table %r is written to the worksheet %r (Excel's naming rules)", name, candidate)
    return out


def _excel_text(text: str) -> str:
    if len(text) > _EXCEL_MAX_TEXT:
        logger.warning("a cell of %d characters is cut to Excel's limit of %d", len(text), _EXCEL_MAX_TEXT)
        text = text[:_EXCEL_MAX_TEXT]
    return _CELL_TEXT_BAD.sub("\N{REPLACEMENT CHARACTER}", text)


def _excel_cell(value: Any) -> Any:
    """One value of an object column as something openpyxl stores faithfully."""
    if isinstance(value, str):
        return _excel_text(value)
    if value is None or isinstance(value, bool | int | float | np.bool_ | np.integer | np.floating):
        return value  # NaN and inf are spelled by to_excel's na_rep and inf_rep
    if value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, dt.datetime | dt.time):
        # Excel has no time zones: an aware time is written as ISO text, which keeps the offset.
        return value if value.tzinfo is None else value.isoformat()
    if isinstance(value, dt.date | dt.timedelta | np.datetime64 | np.timedelta64):
        return value
    if isinstance(value, Mapping | list | tuple | set | frozenset | np.ndarray):
        try:
            text = json.dumps(_jsonable(value), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError):
            text = str(value)
        return _excel_text(text)
    return _excel_text(str(value))


def _excel_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose every cell openpyxl can store (see :func:`write_excel_atomic`)."""
    out = frame.copy()
    if isinstance(out.columns, pd.MultiIndex):
        out.columns = [" / ".join(str(level) for level in col) for col in out.columns]
    for j in range(out.shape[1]):
        col = out.iloc[:, j]
        if isinstance(col.dtype, pd.DatetimeTZDtype):
            text = col.map(lambda t: None if pd.isna(t) else t.isoformat())
            out.isetitem(j, text.astype(object))
        elif not (pd.api.types.is_numeric_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype)
                  or pd.api.types.is_datetime64_dtype(col.dtype)
                  or pd.api.types.is_timedelta64_dtype(col.dtype)):
            out.isetitem(j, col.astype(object).map(_excel_cell))
    return out


def _keep_as_text(worksheet: Any, frame: pd.DataFrame) -> None:
    """Store strings that look like formulas (``=...``) or error codes (``#N/A``) as text."""

    def literal(value: Any) -> bool:
        if not isinstance(value, str):
            return False
        return (len(value) > 1 and value[0] == "=") or value in _EXCEL_ERROR_CODES

    for j, name in enumerate(frame.columns, start=1):
        if literal(name):
            worksheet.cell(row=1, column=j).data_type = "s"
        col = frame.iloc[:, j - 1]
        if col.dtype != object:
            continue
        for i in np.flatnonzero(col.map(literal).to_numpy(dtype=bool)):
            worksheet.cell(row=int(i) + 2, column=j).data_type = "s"


def _fit_columns(worksheet: Any, frame: pd.DataFrame, *, sample: int = 200) -> None:
    """Widen each column to its header or its widest value among the first ``sample`` rows."""
    from openpyxl.utils import get_column_letter

    head = frame.head(sample)
    for j, name in enumerate(frame.columns, start=1):
        values = head.iloc[:, j - 1]
        longest = max([len(str(name)), *(len(str(v)) for v in values if not pd.isna(v))], default=0)
        worksheet.column_dimensions[get_column_letter(j)].width = min(longest + 2, _MAX_WIDTH)


def write_excel_atomic(tables: Mapping[str, pd.DataFrame], path: str | os.PathLike[str]) -> Path:
    r"""Write tables to one Excel workbook, a worksheet per table, through a temporary file.

    Each worksheet has a bold, frozen header row and columns sized to their content; the
    frames' indexes are not written (``reset_index()`` first to keep one).

    Parameters
    ----------
    tables
        Worksheet name to table, in the order the worksheets should appear. Names are made
        valid for Excel: at most 31 characters, ``[]:*?/\\`` replaced by ``_``, no apostrophe
        at either end, and unique regardless of case (``~2``, ``~3``, ... appended).
    path
        Destination, usually ending in ``.xlsx``; its folder must exist.

    Returns
    -------
    pathlib.Path
        The written path.

    Raises
    ------
    ImportError
        openpyxl is not installed.
    ValueError
        ``tables`` is empty, or a table is larger than a worksheet can hold.

    Notes
    -----
    Missing values (NaN, None, NaT) are written as empty cells and ±inf as the text ``inf`` /
    ``-inf`` (which :func:`pandas.read_excel` reads back as floats). In text and object columns,
    lists, dicts, sets and arrays are written as their JSON text, other objects as ``str()``,
    time-zone-aware times as ISO 8601 text; strings starting with ``=`` stay text (never
    formulas); control characters Excel cannot hold become U+FFFD and text beyond Excel's
    32,767 characters per cell is cut off.
    """
    try:
        import openpyxl  # noqa: F401
    except ImportError:
        msg = ("writing an Excel workbook needs openpyxl, which is not installed; "
               "`pip install openpyxl`, or write CSV files with write_csv_atomic")
        raise ImportError(msg) from None
    path = Path(path)
    if not tables:
        msg = f"no tables to write to {path}; an Excel workbook needs at least one worksheet"
        raise ValueError(msg)
    for name, frame in tables.items():
        rows, cols = frame.shape
        if rows + 1 > _EXCEL_MAX_ROWS or cols > _EXCEL_MAX_COLUMNS:
            msg = (f"table {name!r} has {rows} rows and {cols} columns; an Excel worksheet holds at "
                   f"most {_EXCEL_MAX_ROWS - 1} rows below its header and {_EXCEL_MAX_COLUMNS} columns; "
                   "write it as CSV instead")
            raise ValueError(msg)

    names = _sheet_names([str(name) for name in tables])
    with atomic_open(path, "xb") as fh, pd.ExcelWriter(cast(BinaryIO, fh), engine="openpyxl") as writer:
        for sheet, frame in zip(names, tables.values(), strict=True):
            clean = _excel_frame(frame)
            clean.to_excel(writer, sheet_name=sheet, index=False, na_rep="", inf_rep="inf",
                           freeze_panes=(1, 0))
            worksheet = writer.sheets[sheet]
            _keep_as_text(worksheet, clean)
            _fit_columns(worksheet, clean)
    return path
