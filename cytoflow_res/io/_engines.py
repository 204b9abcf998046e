"""Alternative FCS readers (flowio, fcsparser) behind the same Sample, for cross-checking."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from cytoflow_res.errors import FCSError
from cytoflow_res.sample import Channel, Sample

__all__ = ["read_with_engine"]


def read_with_engine(path: Path, *, dataset: int, engine: str) -> Sample:
    """Read ``path`` with another library and wrap the result as a :class:`Sample`.

    Parameters
    ----------
    path
        The FCS file.
    dataset
        Zero-based data set index.
    engine
        ``"flowio"`` or ``"fcsparser"``.

    Returns
    -------
    Sample
        Stored values as that library returns them, with our channel metadata.

    Raises
    ------
    FCSError
        If the engine is unknown, not installed, or fails on the file.
    """
    from cytoflow_res.io.fcs import _plausible_par, read_header

    header = read_header(path, dataset=dataset)
    # Other readers size their arrays from the TEXT: refuse forged sizes before they do.
    npar = _plausible_par(header)
    size = path.stat().st_size
    if header.n_events * npar > 8 * size:
        msg = (
            f"$TOT = {header.n_events} events x $PAR = {npar} values cannot fit in {size} bytes; "
            "the file is truncated or its TEXT is damaged"
        )
        raise FCSError(path, msg)
    if engine == "flowio":
        try:
            import flowio
        except ImportError:
            msg = "engine='flowio' needs the flowio package: pip install flowio"
            raise FCSError(path, msg) from None
        try:
            if dataset == 0:
                fd = flowio.FlowData(str(path), ignore_offset_discrepancy=True)
            else:
                fd = flowio.read_multiple_data_sets(str(path), ignore_offset_discrepancy=True)[dataset]
            raw = np.asarray(fd.as_array(preprocess=False))
        except Exception as exc:
            msg = f"flowio could not read the file: {exc}"
            raise FCSError(path, msg) from exc
    elif engine == "fcsparser":
        try:
            import fcsparser
        except ImportError:
            msg = (
                "engine='fcsparser' needs the optional fcsparser package: "
                "pip install 'cytoflow-res[fcsparser]' (it requires numpy<2)"
            )
            raise FCSError(path, msg) from None
        if dataset != 0:
            msg = "fcsparser reads only the first data set; use engine='flowio' or the default"
            raise FCSError(path, msg)
        try:
            _meta, frame = fcsparser.parse(str(path), reformat_meta=False)
        except Exception as exc:
            msg = f"fcsparser could not read the file: {exc}"
            raise FCSError(path, msg) from exc
        raw = frame.to_numpy()
    else:
        msg = f"engine must be 'cytoflow_res', 'flowio' or 'fcsparser', not {engine!r}"
        raise FCSError(path, msg)
    if raw.ndim != 2:
        msg = f"{engine} returned an array of shape {raw.shape}, not events x channels"
        raise FCSError(path, msg)
    kw = header.keywords
    dtype = kw.get("$DATATYPE", "F").strip().upper()
    channels = []
    for i in range(raw.shape[1]):
        p = i + 1
        channels.append(
            Channel(
                index=i,
                name=kw.get(f"$P{p}N", f"P{p}").strip(),
                label=kw.get(f"$P{p}S", "").strip(),
                range=_range(kw.get(f"$P{p}R", "")),
                datatype=dtype,
            )
        )
    return Sample(raw, channels, kw, path=path, dataset=dataset, version=header.version)


def _range(text: str) -> float:
    """``$PnR`` as a number; 0 when it is missing, not a number or not finite."""
    try:
        value = float(text)
    except ValueError:
        return 0.0
    return value if math.isfinite(value) else 0.0
