"""engine= cross-checks: the same file through flowio / fcsparser behind our Sample."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from cytoflow_res import FCSError, read_fcs
from tests.conftest import shared_file

FORTESSA = (
    "fcsparser__fcsparser__tests__data__FlowCytometers__Fortessa__"
    "FCS_3.0_Fortessa_PBS_Specimen_001_A1_A01.fcs"
)


@pytest.mark.shared
def test_flowio_engine_agrees_on_a_plain_file() -> None:
    path = shared_file("fcs_corpus", FORTESSA)
    ours = read_fcs(path)
    theirs = read_fcs(path, engine="flowio")
    assert theirs.channel_names == ours.channel_names
    np.testing.assert_array_equal(np.asarray(theirs.raw, dtype=np.float32), ours.raw)


def test_fcsparser_engine_missing_is_a_clear_error(tmp_path) -> None:
    if importlib.util.find_spec("fcsparser") is not None:
        pytest.skip("fcsparser is installed here; the missing-package message cannot be shown")
    from cytoflow_res import write_fcs

    path = write_fcs(tmp_path / "a.fcs", np.zeros((3, 2), dtype=np.float32), ["A", "B"])
    with pytest.raises(FCSError, match=r"a\.fcs: engine='fcsparser' needs .*pip install"):
        read_fcs(path, engine="fcsparser")


def test_unknown_engine(tmp_path) -> None:
    from cytoflow_res import write_fcs

    path = write_fcs(tmp_path / "a.fcs", np.zeros((3, 2), dtype=np.float32), ["A", "B"])
    with pytest.raises(FCSError, match="engine must be"):
        read_fcs(path, engine="nope")  # type: ignore[arg-type]
