"""The one error hierarchy of cytoflow_res.

Every error a user can trigger with bad input derives from :class:`CytoflowResError`,
so a batch runner can catch exactly that and record the message while it goes on.
Messages name the file or value at fault, the problem, and what would be valid.
"""

from __future__ import annotations

from os import PathLike

__all__ = [
    "ChannelError",
    "CytoflowResError",
    "DesignError",
    "FCSError",
    "FitError",
    "TemplateError",
]


class CytoflowResError(Exception):
    """Base class of every error raised on purpose by cytoflow_res."""


class FCSError(CytoflowResError):
    """A file cannot be read as FCS, or its content contradicts itself.

    Parameters
    ----------
    path
        The file at fault (included at the start of the message), or None.
    problem
        What is wrong and, where possible, what would fix it.
    """

    def __init__(self, path: str | PathLike[str] | None, problem: str) -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        message = problem if path is None else f"{path}: {problem}"
        super().__init__(message)


class ChannelError(CytoflowResError, KeyError):
    """No channel (or more than one) matches a requested name, label or role."""

    def __str__(self) -> str:
        # KeyError would repr() the message; show it as written.
        return str(self.args[0]) if self.args else ""


class TemplateError(CytoflowResError):
    """A gating template is malformed: names the key, the value and what is allowed."""


class DesignError(CytoflowResError):
    """An experiment design sheet is malformed or points at missing files."""


class FitError(CytoflowResError):
    """A model cannot be fitted at all (not a poor fit: that is a status flag)."""
