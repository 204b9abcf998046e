"""FlowJo workspace pre-gates: same membership as flowkit's own gating, template key, errors.

The fixture ``tests/data/apoptosis_pregates.wsp`` is a hand-written FlowJo 10 workspace over
two files of ``example_fcs/apoptosis`` (see its header comment): Cells (polygon FSC-A/SSC-A)
> Singlets (polygon FSC-A/FSC-H) > ``Annexin- PI-`` (rectangle on the compensated,
biex-scaled FITC-A/PE-A), ``Large`` (ellipse) and ``Not Annexin- PI-`` (NOT gate). The
second sample is renamed ``Vehicle 1`` in the workspace (found through its ``$FIL``) and has
its own custom Cells gate.

The reference is flowkit: ``flowkit.Workspace`` parses the file and the sample's
``GatingStrategy.gate_sample`` gates flowkit's own reading of the FCS file; our pre-gate,
applied to our reading of the file, must select the same events, event for event.
"""

from __future__ import annotations

import dataclasses
import logging
import textwrap
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from cytoflow_res import read_fcs
from cytoflow_res import simulate as sim
from cytoflow_res.apoptosis import ApoptosisGating
from cytoflow_res.errors import ChannelError, TemplateError
from cytoflow_res.gating.gates import Gate
from cytoflow_res.gating.templates import FlowJoSpec, load_template, parse_template
from cytoflow_res.gating.workspace import FlowJoPregate, flowjo_pregate, read_flowjo_pregate
from cytoflow_res.sample import Sample
from cytoflow_res.transforms import Compensation
from tests.conftest import REPO_ROOT

fk = pytest.importorskip("flowkit")

WSP = REPO_ROOT / "tests" / "data" / "apoptosis_pregates.wsp"
EXAMPLE = REPO_ROOT / "example_fcs" / "apoptosis"
DRUG = "parental_drugA_r1.fcs"  # workspace sample name = file name
VEHICLE = "Vehicle 1"  # workspace sample name of parental_vehicle_r1.fcs (custom Cells gate)
FILES = {DRUG: EXAMPLE / "parental_drugA_r1.fcs", VEHICLE: EXAMPLE / "parental_vehicle_r1.fcs"}
GATE_PATHS = ("Cells", "Cells/Singlets", "Cells/Singlets/Annexin- PI-", "Cells/Singlets/Large",
              "Cells/Singlets/Not Annexin- PI-")


@cache
def _workspace() -> Any:
    return fk.Workspace(str(WSP), load_missing_file_data=True)


@cache
def _flowkit_results(ws_sample: str, fcs: Path) -> Any:
    """flowkit's gating of ``fcs`` with the gate tree of workspace sample ``ws_sample``."""
    strategy = _workspace().get_gating_strategy(ws_sample)
    return strategy.gate_sample(fk.Sample(str(fcs), sample_id=ws_sample))


def _flowkit_mask(ws_sample: str, fcs: Path, gate_path: str) -> np.ndarray:
    *parents, name = gate_path.split("/")
    results = _flowkit_results(ws_sample, fcs)
    return np.asarray(results.get_gate_membership(name, ("root", *parents)), dtype=bool)


@cache
def _sample(fcs: Path) -> Sample:
    return read_fcs(fcs)


# ------------------------------------------------------------------ same events as flowkit
@pytest.mark.parametrize("ws_sample", [DRUG, VEHICLE])
@pytest.mark.parametrize("gate_path", GATE_PATHS)
def test_same_events_as_flowkit_gating(ws_sample: str, gate_path: str) -> None:
    fcs = FILES[ws_sample]
    pre = read_flowjo_pregate(WSP, gate_path)
    ours = pre.apply(_sample(fcs))
    ref = _flowkit_mask(ws_sample, fcs, gate_path)
    assert ours.dtype == bool and ours.shape == ref.shape
    assert int(ours.sum()) == int(ref.sum())
    np.testing.assert_array_equal(ours, ref)
    assert pre.select(_sample(fcs)) == (ws_sample, "same $FIL")


def test_counts_of_the_fixture_are_what_flowkit_counts() -> None:
    """The numbers behind the report (ours == flowkit), and a sanity check on the fixture."""
    counts = {
        (ws, path): int(read_flowjo_pregate(WSP, path).apply(_sample(FILES[ws])).sum())
        for ws in FILES for path in GATE_PATHS
    }
    for (ws, path), n in counts.items():
        assert n == int(_flowkit_mask(ws, FILES[ws], path).sum()), (ws, path)
    for ws in FILES:
        n_total = _sample(FILES[ws]).n_events
        cells, singlets = counts[ws, "Cells"], counts[ws, "Cells/Singlets"]
        live, not_live = counts[ws, GATE_PATHS[2]], counts[ws, GATE_PATHS[4]]
        assert 0.9 * n_total < cells < n_total  # debris removed
        assert 0.9 * cells < singlets < cells  # doublets removed
        assert live + not_live == singlets  # NOT gate is the complement within its parent
    # vehicle cells are mostly viable, drug A-treated ones less so (planted 90% vs 72%)
    assert counts[VEHICLE, GATE_PATHS[2]] / counts[VEHICLE, "Cells/Singlets"] > 0.85
    assert counts[DRUG, GATE_PATHS[2]] / counts[DRUG, "Cells/Singlets"] < 0.80


def test_gate_by_name_or_path_is_the_same_gate() -> None:
    sample = _sample(FILES[DRUG])
    masks = [
        read_flowjo_pregate(WSP, g).apply(sample)
        for g in ("Singlets", "Cells/Singlets", "/Cells/Singlets/", "root/Cells/Singlets")
    ]
    for mask in masks[1:]:
        np.testing.assert_array_equal(mask, masks[0])
    assert read_flowjo_pregate(WSP, "Singlets").gate_path == "Cells/Singlets"


def test_custom_sample_gate_is_used_for_the_sample_with_that_fil() -> None:
    vehicle = _sample(FILES[VEHICLE])
    pre = read_flowjo_pregate(WSP, "Cells")
    own = pre.apply(vehicle)
    # the group's Cells gate (as drawn on the drug A sample) selects other events in this file
    group_gate = _flowkit_mask(DRUG, FILES[VEHICLE], "Cells")
    assert int(own.sum()) != int(group_gate.sum())
    np.testing.assert_array_equal(own, _flowkit_mask(VEHICLE, FILES[VEHICLE], "Cells"))
    assert "workspace sample 'Vehicle 1' (same $FIL)" in pre.describe(vehicle)


def test_fixed_sample_applies_its_gates_to_every_file() -> None:
    pre = read_flowjo_pregate(WSP, "Cells/Singlets", sample=VEHICLE)
    drug = _sample(FILES[DRUG])
    assert pre.select(drug) == (VEHICLE, "fixed by pregates.flowjo.sample")
    assert pre.samples == (VEHICLE,)
    np.testing.assert_array_equal(pre.apply(drug), _flowkit_mask(VEHICLE, FILES[DRUG], "Cells/Singlets"))


def test_unknown_file_uses_the_first_sample_of_the_group_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    fresh = tmp_path / "fresh_drugC_r1.fcs"
    sim.write_apoptosis_sample(fresh, seed=7)
    sample = read_fcs(fresh)
    pre = read_flowjo_pregate(WSP, "Cells/Singlets")
    name, how = pre.select(sample)
    assert name == DRUG
    assert how.startswith("no workspace sample of group 'All Samples' matches $FIL 'fresh_drugC_r1.fcs'")
    assert f"using the gates of {DRUG!r}, the group's first sample" in how
    with caplog.at_level(logging.WARNING, logger="cytoflow_res.gating.workspace"):
        mask = pre.apply(sample)
    assert "no workspace sample of group 'All Samples' matches" in caplog.text
    np.testing.assert_array_equal(mask, _flowkit_mask(DRUG, fresh, "Cells/Singlets"))
    assert 0 < mask.sum() < mask.size


def test_group_restricts_the_samples() -> None:
    pre = read_flowjo_pregate(WSP, "Singlets", group="Treated")
    assert pre.samples == (DRUG,)
    assert pre.select(_sample(FILES[VEHICLE]))[0] == DRUG  # not in the group: first sample


def test_mask_ignores_compensation_already_applied_to_the_sample() -> None:
    """Gates on Comp- channels use the workspace's matrix on the values as read."""
    sample = _sample(FILES[DRUG])
    compensated = Compensation.from_sample(sample).apply(sample)
    pre = read_flowjo_pregate(WSP, "Cells/Singlets/Annexin- PI-")
    np.testing.assert_array_equal(pre.apply(compensated), pre.apply(sample))
    names = {d if isinstance(d, str) else d.name for d in pre.dimensions}
    assert {"biex(FITC-A[Acquisition-defined])", "biex(PE-A[Acquisition-defined])",
            "linear(FSC-A)", "linear(FSC-H)", "linear(SSC-A)"} <= names


def test_columns_are_taken_as_given() -> None:
    sample = _sample(FILES[DRUG])
    frame = sample.to_dataframe()
    pre = read_flowjo_pregate(WSP, "Cells/Singlets/Annexin- PI-", sample=DRUG)
    np.testing.assert_array_equal(pre.apply(frame), pre.apply(sample))


def test_pregate_is_a_gate_with_a_description() -> None:
    pre = read_flowjo_pregate(WSP, "Singlets")
    assert isinstance(pre, (Gate, FlowJoPregate))
    assert pre.name == "Cells/Singlets" and pre.parent_id is None
    assert pre.description == (
        "FlowJo gate 'Cells/Singlets' of the sample with the same $FIL or file name in "
        "apoptosis_pregates.wsp (group 'All Samples')"
    )
    assert pre.describe() == pre.description
    assert pre.path == str(WSP) and pre.group == "All Samples" and pre.sample is None


# ------------------------------------------------------------------ analysis with the pre-gate
def _fixed_template(**pregates: Any) -> dict[str, Any]:
    return {
        "schema": 1, "name": "flowjo_pregated", "assay": "apoptosis",
        "channels": {"annexin": ["Annexin V", "FITC-A"], "pi": ["PI", "PE-A"],
                     "fsc_a": ["FSC-A"], "fsc_h": ["FSC-H"], "ssc_a": ["SSC-A"]},
        "compensation": {"source": "file"},
        "pregates": {"debris": {"method": "none"}, "singlets": {"method": "none"}, **pregates},
        "thresholds": {"method": "fixed", "annexin": 2500.0, "pi": 2500.0},
    }


def test_analyze_on_the_pregated_events() -> None:
    """Today's route: subset the sample with the FlowJo mask, then analyse it."""
    sample = _sample(FILES[DRUG])
    pre = read_flowjo_pregate(WSP, "Cells/Singlets")
    gating = ApoptosisGating.prepare(parse_template(_fixed_template()))
    result = gating.analyze(sample.subset(pre.apply(sample)), file=FILES[DRUG])
    assert result.n_cells == int(_flowkit_mask(DRUG, FILES[DRUG], "Cells/Singlets").sum())
    # the workspace's Annexin- PI- rectangle is [-5000, 2500) on both compensated channels, with
    # the file's own spillover: it holds exactly our viable quadrant at thresholds 2500 / 2500
    assert result.counts["viable"] == int(_flowkit_mask(DRUG, FILES[DRUG], GATE_PATHS[2]).sum())


def test_analyze_applies_the_template_flowjo_pregate(tmp_path: Path) -> None:
    doc = _fixed_template(flowjo={"path": str(WSP), "gate": "Cells/Singlets"})
    sample = _sample(FILES[DRUG])
    result = ApoptosisGating.prepare(parse_template(doc)).analyze(sample)
    assert result.pregate.events_cells == int(_flowkit_mask(DRUG, FILES[DRUG], "Cells/Singlets").sum())
    assert result.pregate.steps[1].method == "flowjo"


# ------------------------------------------------------------------ template key
def _template_doc() -> dict[str, Any]:
    return load_template("generic_modern").to_dict()


def test_template_key_parses_with_defaults_and_relative_path(tmp_path: Path) -> None:
    doc = _template_doc()
    doc["pregates"]["flowjo"] = {"path": "gates/experiment.wsp", "gate": "Cells/Singlets"}
    path = tmp_path / "lab" / "mine.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    tpl = load_template(path)
    assert tpl.pregates.flowjo == FlowJoSpec(
        str((tmp_path / "lab" / "gates" / "experiment.wsp").resolve()), "Cells/Singlets", "All Samples", None,
    )
    assert tpl.pregates.gatingml is None
    assert load_template(path).to_dict() == tpl.to_dict()
    assert tpl.to_dict()["pregates"]["flowjo"]["group"] == "All Samples"


def test_template_key_with_group_and_sample() -> None:
    doc = _template_doc()
    doc["pregates"]["flowjo"] = {"path": str(WSP), "gate": "Singlets", "group": "Treated",
                                 "sample": DRUG}
    spec = parse_template(doc).pregates.flowjo
    assert spec == FlowJoSpec(str(WSP), "Singlets", "Treated", DRUG)
    doc["pregates"]["flowjo"].update(group=None, sample=None)  # null: the defaults
    assert parse_template(doc).pregates.flowjo == FlowJoSpec(str(WSP), "Singlets")
    pre = flowjo_pregate(spec)
    assert pre is flowjo_pregate(spec)  # read once per workspace version
    assert pre.samples == (DRUG,) and pre.gate_path == "Cells/Singlets"


@pytest.mark.parametrize(
    ("flowjo", "pattern"),
    [
        ({"gate": "Singlets"}, r"mine.yaml: pregates.flowjo.path = None: is required"),
        ({"path": "x.wsp"}, r"mine.yaml: pregates.flowjo.gate = None: is required"),
        ({"path": "x.wsp", "gate": ""}, r"pregates.flowjo.gate = '': must be a non-empty string"),
        ({"path": "x.wsp", "gate": "Cells//Singlets"},
         r"pregates.flowjo.gate = 'Cells//Singlets': has an empty step"),
        ({"path": "x.wsp", "gate": "Singlets", "group": 3},
         r"pregates.flowjo.group = 3: must be a non-empty"),
        ({"path": "x.wsp", "gate": "Singlets", "sample": ["a"]}, r"pregates.flowjo.sample = \['a'\]"),
        ({"path": "x.wsp", "gate": "Singlets", "groups": "All"},
         r"unknown key 'pregates.flowjo.groups'; allowed keys are path, gate, group, sample"),
        ("x.wsp", r"pregates.flowjo = 'x.wsp': must be a mapping"),
    ],
)
def test_template_key_validation(flowjo: Any, pattern: str) -> None:
    doc = _template_doc()
    doc["pregates"]["flowjo"] = flowjo
    with pytest.raises(TemplateError, match=pattern):
        parse_template(doc, source="lab/mine.yaml")


def test_template_takes_one_imported_cell_gate() -> None:
    doc = _template_doc()
    doc["pregates"]["gatingml"] = {"path": "cells.xml", "gate": "Cells"}
    doc["pregates"]["flowjo"] = {"path": "x.wsp", "gate": "Cells"}
    with pytest.raises(TemplateError, match=r"give pregates.gatingml or pregates.flowjo, not both"):
        parse_template(doc)


# ------------------------------------------------------------------ errors
def _variant(tmp_path: Path, old: str, new: str) -> Path:
    text = WSP.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "variant.wsp"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"nope.wsp: FlowJo workspace file not found; check the path"):
        read_flowjo_pregate(tmp_path / "nope.wsp", "Cells")


def test_not_xml(tmp_path: Path) -> None:
    path = tmp_path / "notes.wsp"
    path.write_text("FSC-A > 20000\n", encoding="utf-8")
    with pytest.raises(TemplateError, match=r"notes.wsp: not a FlowJo workspace: not well-formed XML"):
        read_flowjo_pregate(path, "Cells")


def test_gatingml_file_is_not_a_workspace(tmp_path: Path) -> None:
    path = tmp_path / "gates.xml"
    path.write_text(textwrap.dedent("""\
        <?xml version="1.0" encoding="UTF-8"?>
        <gating:Gating-ML xmlns:gating="http://www.isac-net.org/std/Gating-ML/v2.0/gating" />
        """), encoding="utf-8")
    with pytest.raises(TemplateError, match=(
        r"gates.xml: not a FlowJo workspace: the root element is <Gating-ML>, not "
        r"<Workspace flowJoVersion=...> .*use pregates.gatingml")):
        read_flowjo_pregate(path, "Cells")


def test_old_flowjo_version(tmp_path: Path) -> None:
    path = _variant(tmp_path, 'flowJoVersion="10.8.1"', 'flowJoVersion="9.9.6"')
    with pytest.raises(TemplateError, match=r"a FlowJo 9.9.6 workspace; only FlowJo 10 .* save it again"):
        read_flowjo_pregate(path, "Cells")


def test_transform_flowkit_does_not_read(tmp_path: Path) -> None:
    path = _variant(tmp_path, "transforms:biex", "transforms:hyperlog")
    with pytest.raises(TemplateError, match=(
        r"variant.wsp: flowkit cannot read this FlowJo workspace \(ValueError: FlowJo transform "
        r"type 'hyperlog'.*supported are FlowJo 10 workspaces with linear, log, logicle, biex")):
        read_flowjo_pregate(path, "Cells")


def test_gate_not_found_lists_the_gate_paths() -> None:
    with pytest.raises(TemplateError, match=(
        r"apoptosis_pregates.wsp \(workspace sample 'parental_drugA_r1.fcs', group 'All Samples'\): "
        r"no gate 'Lymphocytes'; gate paths are Cells, Cells/Singlets, Cells/Singlets/Annexin- PI-, "
        r"Cells/Singlets/Large, Cells/Singlets/Not Annexin- PI-; give a gate name or a path")):
        read_flowjo_pregate(WSP, "Lymphocytes")
    with pytest.raises(TemplateError, match=r"no gate 'Singlets/Cells'; gate paths are Cells,"):
        read_flowjo_pregate(WSP, "Singlets/Cells")


def test_ambiguous_gate_name(tmp_path: Path) -> None:
    path = _variant(tmp_path, 'Population name="Large"', 'Population name="Cells"')
    with pytest.raises(TemplateError, match=(
        r"gate name 'Cells' is ambiguous: it is at Cells, Cells/Singlets/Cells; give the gate's path")):
        read_flowjo_pregate(path, "Cells")
    assert read_flowjo_pregate(path, "Cells/Singlets/Cells").gate_path == "Cells/Singlets/Cells"


def test_group_not_found_lists_the_groups() -> None:
    with pytest.raises(TemplateError, match=(
        r"apoptosis_pregates.wsp: no sample group 'Controls'; groups \(with samples or gates\) are "
        r"'All Samples', 'Treated'")):
        read_flowjo_pregate(WSP, "Cells", group="Controls")


def test_sample_not_found_lists_the_samples() -> None:
    with pytest.raises(TemplateError, match=(
        r"no sample 'parental_vehicle_r1.fcs' in group 'All Samples'; its samples are "
        r"'parental_drugA_r1.fcs', 'Vehicle 1'")):
        read_flowjo_pregate(WSP, "Cells", sample="parental_vehicle_r1.fcs")


def test_channel_missing_from_the_sample() -> None:
    full = _sample(FILES[DRUG])
    keep = [ch for ch in full.channels if ch.name != "FSC-H"]
    no_height = Sample(
        full.raw[:, [ch.index for ch in keep]],
        [dataclasses.replace(ch, index=i) for i, ch in enumerate(keep)],
        full.keywords, path=full.path,
    )
    pre = read_flowjo_pregate(WSP, "Cells/Singlets")
    assert int(read_flowjo_pregate(WSP, "Cells").apply(no_height).sum()) > 0  # Cells needs no FSC-H
    with pytest.raises(ChannelError, match=(
        r"apoptosis_pregates.wsp: FlowJo gate 'Cells/Singlets' of workspace sample "
        r"'parental_drugA_r1.fcs' reads channel 'FSC-H', which .*parental_drugA_r1.fcs does not "
        r"have; its channels are FSC-A, SSC-A, FITC-A \(Annexin V\), PE-A \(PI\)")):
        pre.apply(no_height)
    with pytest.raises(ChannelError, match=r"reads channel 'FSC-H', which is not among the events' columns"):
        pre.apply(pd.DataFrame({"FSC-A": [1.0], "SSC-A": [1.0]}))
