"""Alternative FCS readers (flowio, fcsparser) behind the same Sample, for cross-checking."""

from __future__ import annotations

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
    from cytoflow_res.io.fcs import read_header

    header = read_header(path, dataset=dataset)
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
                range=float(kw.get(f"$P{p}R", "0") or 0),
                datatype=dtype,
            )
        )
    return Sample(raw, channels, kw, path=path, dataset=dataset, version=header.version)
