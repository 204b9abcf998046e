"""Write FCS files (3.1 float32 by default; 3.0/2.0 and integer data for instrument dialects)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from cytoflow_res._version import __version__
from cytoflow_res.errors import FCSError
from cytoflow_res.sample import Sample, Spillover

__all__ = ["write_fcs"]

_DELIM = "|"
_HEADER_LEN = 58
_MAX_HEADER_OFFSET = 99_999_999


def _escape(value: str) -> str:
    # FCS 3.1 forbids empty values and escapes the delimiter by doubling it.
    value = value if value != "" else " "
    return value.replace(_DELIM, _DELIM + _DELIM)


def _spill_text(spill: Spillover | tuple[Sequence[str], np.ndarray]) -> str:
    if isinstance(spill, Spillover):
        names, matrix = list(spill.channels), spill.matrix
    else:
        names, matrix = list(spill[0]), np.asarray(spill[1], dtype=float)
    n = len(names)
    if matrix.shape != (n, n):
        msg = f"spillover matrix shape {matrix.shape} does not match {n} channel names"
        raise ValueError(msg)
    return ",".join([str(n), *names, *(repr(float(v)) for v in matrix.ravel())])


def write_fcs(
    path: str | os.PathLike[str],
    data: Sample | pd.DataFrame | np.ndarray,
    channels: Sequence[str] | None = None,
    *,
    labels: Sequence[str] | None = None,
    ranges: Sequence[float] | None = None,
    keywords: Mapping[str, str] | None = None,
    spillover: Spillover | tuple[Sequence[str], np.ndarray] | None = None,
    datatype: Literal["F", "D", "I"] = "F",
    bits: int | Sequence[int] | None = None,
    log_decades: Sequence[float] | None = None,
    byteorder: Literal["<", ">"] = "<",
    version: Literal["3.1", "3.0", "2.0"] = "3.1",
) -> Path:
    """Write events to an FCS file.

    Parameters
    ----------
    path
        Output file (parent directories must exist). Written atomically.
    data
        A :class:`Sample` (its stored ``raw`` values, channels and keywords are written),
        a DataFrame (columns are channel names) or a 2-D array.
    channels
        ``$PnN`` names; required for an array, taken from the columns of a DataFrame.
    labels
        ``$PnS`` labels (empty strings for none).
    ranges
        ``$PnR``; default: ``2**bits`` for integers, ``max(data) + 1`` rounded up for floats.
    keywords
        Further TEXT keywords (e.g. ``{"$CYT": "FACSCalibur"}``); cannot override the
        structural keywords this function writes.
    spillover
        Spillover matrix, written as ``$SPILLOVER`` (FCS 3.x) or ``SPILL`` (FCS 2.0).
    datatype
        ``"F"`` float32, ``"D"`` float64, ``"I"`` unsigned integers (values are rounded
        and must lie in ``[0, $PnR)``).
    bits
        Bits per integer value (8, 16, 32 or 64), one for all channels or one each.
    log_decades
        ``$PnE`` decades per channel for log-amplified integer channels (0 = linear).
    byteorder
        ``"<"`` little-endian (``$BYTEORD 1,2,3,4``) or ``">"`` big-endian.
    version
        FCS version written in the HEADER.

    Returns
    -------
    pathlib.Path
        The written path.
    """
    path = Path(path)
    base_keywords: dict[str, str] = {}
    if isinstance(data, Sample):
        sample = data
        arr = np.asarray(sample.raw)
        channels = channels or sample.channel_names
        labels = labels or sample.channel_labels
        if ranges is None:
            ranges = [ch.range for ch in sample.channels]
        if sample.datatype in ("I", "F", "D") and datatype == "F" and sample.datatype != "F":
            datatype = sample.datatype  # type: ignore[assignment]
            if datatype == "I":
                bits = bits or [ch.bits if ch.bits in (8, 16, 32, 64) else 16 for ch in sample.channels]
                log_decades = log_decades or [ch.log_decades for ch in sample.channels]
        skip = {"$BEGINDATA", "$ENDDATA", "$BEGINANALYSIS", "$ENDANALYSIS", "$BEGINSTEXT",
                "$ENDSTEXT", "$NEXTDATA", "$PAR", "$TOT", "$DATATYPE", "$BYTEORD", "$MODE"}
        base_keywords = {
            k: v for k, v in sample.keywords.items()
            if k not in skip and not (k.startswith("$P") and k[2:3].isdigit())
        }
        if spillover is not None:
            # a new matrix replaces the sample's; otherwise its keyword is copied verbatim
            for spill_key in ("$SPILLOVER", "SPILL", "$SPILL", "SPILLOVER"):
                base_keywords.pop(spill_key, None)
    elif isinstance(data, pd.DataFrame):
        arr = data.to_numpy()
        channels = channels or [str(c) for c in data.columns]
    else:
        arr = np.asarray(data)
    if arr.ndim != 2:
        msg = f"data must be 2-D (events x channels); got shape {arr.shape}"
        raise ValueError(msg)
    n_events, n_par = arr.shape
    if channels is None or len(channels) != n_par:
        msg = f"need {n_par} channel names, got {0 if channels is None else len(channels)}"
        raise ValueError(msg)
    labels = list(labels) if labels is not None else [""] * n_par

    if datatype == "F":
        dtype = np.dtype(byteorder + "f4")
        bits_list = [32] * n_par
        packed = np.ascontiguousarray(arr, dtype=dtype)
    elif datatype == "D":
        dtype = np.dtype(byteorder + "f8")
        bits_list = [64] * n_par
        packed = np.ascontiguousarray(arr, dtype=dtype)
    elif datatype == "I":
        bits_list = [int(bits or 16)] * n_par if not isinstance(bits, Sequence) else [int(b) for b in bits]
        if len(set(bits_list)) != 1 or bits_list[0] not in (8, 16, 32, 64):
            msg = f"integer data needs one width of 8, 16, 32 or 64 bits for all channels; got {bits_list}"
            raise ValueError(msg)
        dtype = np.dtype(f"{byteorder}u{bits_list[0] // 8}")
        rounded = np.rint(np.asarray(arr, dtype=np.float64))
        limit = np.asarray(ranges, dtype=float) if ranges is not None else 2.0 ** bits_list[0]
        if np.any(rounded < 0) or np.any(rounded >= limit):
            msg = "integer data must lie in [0, $PnR); clip it first"
            raise ValueError(msg)
        packed = np.ascontiguousarray(rounded.astype(dtype))
    else:
        msg = f"datatype must be 'F', 'D' or 'I', not {datatype!r}"
        raise ValueError(msg)

    if ranges is None:
        if datatype == "I":
            ranges = [2.0 ** b for b in bits_list]
        else:
            finite = arr[np.isfinite(arr)] if arr.size else np.array([0.0])
            top = float(finite.max()) if finite.size else 0.0
            ranges = [float(2 ** max(10, math.ceil(math.log2(max(top, 1.0) + 1))))] * n_par
    decades = list(log_decades) if log_decades is not None else [0.0] * n_par

    kw: dict[str, str] = {}
    kw["$BYTEORD"] = "1,2,3,4" if byteorder == "<" else "4,3,2,1"
    kw["$DATATYPE"] = datatype
    kw["$MODE"] = "L"
    kw["$NEXTDATA"] = "0"
    kw["$PAR"] = str(n_par)
    kw["$TOT"] = str(n_events)
    for i in range(n_par):
        p = i + 1
        kw[f"$P{p}N"] = str(channels[i])
        if labels[i]:
            kw[f"$P{p}S"] = str(labels[i])
        kw[f"$P{p}B"] = str(bits_list[i])
        rng = float(ranges[i])
        kw[f"$P{p}R"] = str(int(rng)) if rng.is_integer() else repr(rng)
        dec = float(decades[i]) if datatype == "I" else 0.0
        kw[f"$P{p}E"] = f"{dec:g},1" if dec > 0 else "0,0"
    if spillover is not None:
        kw["$SPILLOVER" if version != "2.0" else "SPILL"] = _spill_text(spillover)
    extra = dict(base_keywords)
    extra.update({str(k).strip().upper() if str(k).startswith("$") else str(k): str(v)
                  for k, v in (keywords or {}).items()})
    extra.setdefault("CREATOR", f"cytoflow_res {__version__}")
    extra.setdefault("$FIL", path.name)
    for key, value in extra.items():
        if key.upper() in kw or key.upper() in {"$BEGINDATA", "$ENDDATA"}:
            continue
        kw[key] = value

    data_bytes = packed.tobytes()
    data_len = len(data_bytes)
    # TEXT carries its own data offsets; iterate until their widths stop changing.
    begin = end = 0
    for _ in range(5):
        items = dict(kw)
        if version != "2.0":
            items["$BEGINANALYSIS"] = "0"
            items["$ENDANALYSIS"] = "0"
            items["$BEGINSTEXT"] = "0"
            items["$ENDSTEXT"] = "0"
            items["$BEGINDATA"] = str(begin)
            items["$ENDDATA"] = str(end)
        text = _DELIM + "".join(f"{_escape(k)}{_DELIM}{_escape(v)}{_DELIM}" for k, v in items.items())
        text_bytes = text.encode("utf-8")
        text_start = _HEADER_LEN
        text_end = text_start + len(text_bytes) - 1
        new_begin = text_end + 1
        new_end = new_begin + data_len - 1 if data_len else 0
        if (new_begin, new_end) == (begin, end):
            break
        begin, end = new_begin, new_end
    if version == "2.0" and end > _MAX_HEADER_OFFSET:
        msg = f"FCS 2.0 cannot address {end} bytes; write FCS 3.1 instead"
        raise FCSError(path, msg)

    def off(v: int) -> str:
        return f"{v if v <= _MAX_HEADER_OFFSET else 0:>8d}"

    header = f"FCS{version}    " + off(text_start) + off(text_end) + off(begin) + off(end) + off(0) + off(0)
    assert len(header) == _HEADER_LEN
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(header.encode("ascii"))
        fh.write(text_bytes)
        fh.write(data_bytes)
        if version != "2.0":
            fh.write(b"00000000")  # FCS 3.x CRC field: zeros mean "not computed"
    os.replace(tmp, path)
    return path
