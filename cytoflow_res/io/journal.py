"""A run's journal: each finished sample on disk, so long runs stream and can resume.

:meth:`cytoflow_res.experiment.Experiment.run` given a ``journal`` folder writes every
sample's outcome (its table row and, for cell cycle, the fit) to that folder the moment it is
finished, and keeps only the small row in memory; the fits are read back one at a time when a
figure or the report needs them (:class:`FitStore`). Memory therefore does not grow with the
fits of a thousand-sample run, and a run that is stopped (Ctrl-C, a lost machine) loses only
the samples in flight: with ``resume=True`` every sample whose entry is there is taken from the
journal instead of being analysed again.

An entry is keyed by :func:`entry_key`: the sample's file name in the design, the SHA-256 of
the file's bytes and the hash of everything that decides its result (package version,
template, thresholds and compensation of its group, fit settings). Change any of them and the
key changes, so a stale entry is never used. Entries are written atomically (a temporary file
renamed into place), so a half-written entry cannot exist.

Entries are pickles, read back by an unpickler that only accepts the package's own result
dataclasses, numpy arrays and plain Python values; any other content (a corrupt or foreign
file) is ignored with a warning and the sample is analysed again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
import pickle
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, overload

from cytoflow_res._version import __version__
from cytoflow_res.errors import CytoflowResError
from cytoflow_res.io.export import atomic_open, hash_settings

__all__ = ["FitStore", "Journal", "entry_key"]

log = logging.getLogger(__name__)

#: Bumped when the layout of an entry changes; older entries are then ignored.
JOURNAL_FORMAT = 1
_SUFFIX = ".pickle"
_MAGIC = "cytoflow_res journal entry"

# What an entry may refer to besides the package's own dataclasses.
_ALLOWED: dict[str, frozenset[str]] = {
    "builtins": frozenset({"set", "frozenset", "complex", "slice", "range", "bytearray"}),
    "copyreg": frozenset({"_reconstructor"}),
    "collections": frozenset({"OrderedDict"}),
    "pathlib": frozenset({"Path", "PosixPath", "WindowsPath", "PurePath", "PurePosixPath",
                          "PureWindowsPath"}),
    "numpy": frozenset({"dtype", "ndarray"}),
    "numpy.core.multiarray": frozenset({"_reconstruct", "scalar"}),
    "numpy._core.multiarray": frozenset({"_reconstruct", "scalar"}),
    "numpy.core.numeric": frozenset({"_frombuffer"}),
    "numpy._core.numeric": frozenset({"_frombuffer"}),
}


class _EntryUnpickler(pickle.Unpickler):
    """Only the package's result dataclasses, numpy arrays/dtypes and plain values."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "cytoflow_res._pickling" and name == "_mapping_proxy":
            return super().find_class(module, name)
        if module == "numpy.dtypes" and name.endswith("DType"):
            return super().find_class(module, name)
        if name in _ALLOWED.get(module, ()):
            return super().find_class(module, name)
        if module == "cytoflow_res" or module.startswith("cytoflow_res."):
            obj = super().find_class(module, name)
            if isinstance(obj, type) and dataclasses.is_dataclass(obj):
                return obj
        msg = f"journal entry refers to {module}.{name}, which an entry never holds"
        raise pickle.UnpicklingError(msg)


def entry_key(*, file: str, sha256: str, settings: str) -> str:
    """The key of one sample's entry.

    Parameters
    ----------
    file
        The sample's file as named in the design sheet.
    sha256
        SHA-256 of the file's bytes.
    settings
        Hash of the settings that decide the sample's result (see
        :func:`cytoflow_res.io.export.hash_settings`).

    Returns
    -------
    str
        64 hex digits.
    """
    return hash_settings({"format": JOURNAL_FORMAT, "version": __version__, "file": file,
                          "sha256": sha256, "settings": settings})


class Journal:
    """A folder of finished samples' outcomes (see the module docstring).

    Parameters
    ----------
    folder
        Created if needed.

    Raises
    ------
    CytoflowResError
        The folder cannot be created or is a file.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            msg = f"cannot create the run journal folder {self.folder}: {exc}; choose another --out"
            raise CytoflowResError(msg) from exc

    def __repr__(self) -> str:
        return f"Journal({str(self.folder)!r})"

    def path(self, key: str) -> Path:
        """Where the entry of ``key`` lives."""
        return self.folder / f"{key}{_SUFFIX}"

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.path(key).is_file()

    def keys(self) -> Iterator[str]:
        """Keys of the entries on disk."""
        for p in sorted(self.folder.glob(f"*{_SUFFIX}")):
            yield p.name[: -len(_SUFFIX)]

    def save(self, key: str, payload: Any) -> Path:
        """Write one entry atomically (replacing an older one of the same key).

        Parameters
        ----------
        key
            From :func:`entry_key`.
        payload
            What to keep (picklable).

        Returns
        -------
        pathlib.Path
        """
        path = self.path(key)
        doc = {"magic": _MAGIC, "format": JOURNAL_FORMAT, "key": key, "payload": payload}
        with atomic_open(path, "xb") as fh:
            pickle.dump(doc, fh, protocol=pickle.HIGHEST_PROTOCOL)
        return path

    def load(self, key: str) -> Any | None:
        """The payload of an entry, or None when there is none or it cannot be used.

        A corrupt, foreign or older-format entry is logged and treated as missing, so the
        sample is analysed again.
        """
        path = self.path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("run journal: cannot read %s (%s); the sample is analysed again", path, exc)
            return None
        try:
            doc = _EntryUnpickler(io.BytesIO(data)).load()
        except Exception as exc:  # any malformed content: recompute rather than fail the run
            log.warning("run journal: ignoring %s (%s: %s); the sample is analysed again",
                        path, type(exc).__name__, exc)
            return None
        if not (isinstance(doc, dict) and doc.get("magic") == _MAGIC and doc.get("format") == JOURNAL_FORMAT
                and doc.get("key") == key):
            log.warning("run journal: ignoring %s (not an entry of this format); the sample is analysed "
                        "again", path)
            return None
        return doc.get("payload")

    def prune(self, keep: Iterable[str]) -> int:
        """Delete entries whose key is not in ``keep`` and leftover temporaries.

        Returns
        -------
        int
            Number of files removed.
        """
        wanted = set(keep)
        removed = 0
        for p in self.folder.iterdir():
            stale_tmp = p.name.startswith(".") and p.name.endswith(".tmp")
            stale_entry = p.name.endswith(_SUFFIX) and p.name[: -len(_SUFFIX)] not in wanted
            if (stale_tmp or stale_entry) and p.is_file():
                with contextlib.suppress(OSError):
                    p.unlink()
                    removed += 1
        return removed


class FitStore(Sequence[Any]):
    """Cell-cycle fits kept in a :class:`Journal`, read from disk each time one is asked for.

    Behaves like the list of fits of a run (one item per row of the cell-cycle table, None
    where there is no fit) without holding them in memory.

    Parameters
    ----------
    journal
        Where the entries are.
    keys
        Per row: the key (a string) of the entry whose payload has a ``fit`` attribute, or
        the fit itself where it was not written to the journal, or None.
    """

    def __init__(self, journal: Journal, keys: Sequence[Any]) -> None:
        self.journal = journal
        self.keys = list(keys)

    def __len__(self) -> int:
        return len(self.keys)

    def __repr__(self) -> str:
        return f"FitStore({len(self)} fits in {str(self.journal.folder)!r})"

    @overload
    def __getitem__(self, index: int) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        key = self.keys[index]
        if not isinstance(key, str):
            return key
        payload = self.journal.load(key)
        if payload is None:
            msg = (f"the fit of cell-cycle row {index} is no longer in the run journal "
                   f"{self.journal.folder} (entry {key}); rerun the analysis")
            raise CytoflowResError(msg)
        return getattr(payload, "fit", None)
