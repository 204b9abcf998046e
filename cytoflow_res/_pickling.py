"""Make the package's read-only mappings picklable, so results travel between processes.

Templates, thresholds and pre-gate results keep their settings in
:class:`types.MappingProxyType` views (read-only dicts). The standard library cannot pickle
those, and the process and dask executors of :mod:`cytoflow_res.experiment` must send gating
set-ups to workers and results back. Importing this module registers a reducer with
:mod:`copyreg` that pickles a mapping proxy as a fresh proxy over a copy of its dict. The
registration is process-wide; it only adds pickling where there was none (a ``TypeError``).
"""

from __future__ import annotations

import copyreg
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

__all__: list[str] = []


def _mapping_proxy(content: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    return MappingProxyType(content)


def _reduce_mapping_proxy(proxy: Mapping[Any, Any]) -> tuple[Any, tuple[dict[Any, Any]]]:
    return _mapping_proxy, (dict(proxy),)


copyreg.pickle(MappingProxyType, _reduce_mapping_proxy)
