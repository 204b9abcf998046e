"""Gating templates: the shipped YAML files, channel-role resolution and schema validation."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from cytoflow_res import ChannelError, TemplateError, read_fcs
from cytoflow_res.gating.templates import (
    CHANNEL_ROLES,
    Template,
    list_templates,
    load_template,
    parse_template,
    validate_transform_spec,
)
from cytoflow_res.sample import Channel, Sample
from cytoflow_res.simulate import dialect_channels
from tests.conftest import REPO_ROOT, shared_file

SHIPPED = ("accuri_c6", "facscalibur", "generic_cellcycle", "generic_modern")


def _sample(pairs: list[tuple[str, str]], path: str = "sim.fcs") -> Sample:
    raw = np.zeros((3, len(pairs)), dtype=np.float32)
    chans = [Channel(i, n, s, range=262144.0, datatype="F") for i, (n, s) in enumerate(pairs)]
    return Sample(raw, chans, path=path)


def _doc(name: str = "generic_modern") -> dict[str, Any]:
    return copy.deepcopy(load_template(name).to_dict())


# ------------------------------------------------------------------ shipped templates

def test_list_templates_names_the_shipped_ones() -> None:
    assert set(SHIPPED) <= set(list_templates())
    assert list_templates() == sorted(list_templates())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_templates_load_and_round_trip(name: str) -> None:
    tpl = load_template(name)
    assert tpl.name == name
    assert tpl.schema == 1
    assert tpl.source is not None and Path(tpl.source).name == f"{name}.yaml"
    doc = tpl.to_dict()
    json.dumps(doc)  # JSON-safe
    again = parse_template(yaml.safe_load(yaml.safe_dump(doc)))
    assert again.to_dict() == doc
    assert set(tpl.channels) <= set(CHANNEL_ROLES)
    assert set(tpl.required_roles) <= set(tpl.channels)


def test_shipped_templates_are_documented_beside_them() -> None:
    for name in SHIPPED:
        source = load_template(name).source
        assert source is not None
        readme = (Path(source).parent / "README.md").read_text(encoding="utf-8")
        assert f"`{name}`" in readme
    assert (REPO_ROOT / "gating_templates" / "README.md").is_file()


def test_templates_are_hashable_by_content() -> None:
    a, b = load_template("generic_modern"), load_template("generic_modern")
    assert a == b and hash(a) == hash(b)
    assert a != load_template("accuri_c6")


def test_generic_modern_settings() -> None:
    tpl = load_template("generic_modern")
    assert tpl.assay == "apoptosis"
    assert tpl.compensation.source == "file"
    assert tpl.pregates.debris.method == "auto"
    assert (tpl.pregates.singlets.x, tpl.pregates.singlets.y) == ("fsc_a", "fsc_h")
    assert tpl.thresholds is not None
    assert (tpl.thresholds.method, tpl.thresholds.percentile, tpl.thresholds.control) == (
        "percentile", 99.5, "unstained")
    assert tpl.transforms["annexin"] == {"type": "logicle", "t": 262144.0, "w": 0.5, "m": 4.5, "a": 0.0}
    assert tpl.cellcycle is None
    assert tpl.required_roles == ("annexin", "pi", "fsc_a", "ssc_a", "fsc_h")


def test_facscalibur_is_hardware_compensated_and_has_no_singlet_gate() -> None:
    tpl = load_template("facscalibur")
    assert tpl.compensation.source == "none"
    assert tpl.pregates.singlets.method == "none"
    assert "fsc_a" not in tpl.channels
    assert (tpl.pregates.debris.x, tpl.pregates.debris.y) == ("fsc_h", "ssc_h")
    assert tpl.transforms["annexin"] == {"type": "log", "decades": 4.0, "t": 10000.0}


def test_generic_cellcycle_settings() -> None:
    tpl = load_template("generic_cellcycle")
    assert tpl.assay == "cellcycle"
    assert tpl.thresholds is None
    assert tpl.cellcycle is not None
    assert (tpl.cellcycle.bins, tpl.cellcycle.doublets, tpl.cellcycle.model) == (None, "auto", "auto")
    assert tpl.channels["dna"][:4] == ("PI-A", "PI", "Propidium Iodide", "FL2-A")
    assert "FL3 INT LIN" in tpl.channels["dna"]
    assert tpl.required_roles == ("dna",)


# ------------------------------------------------------------------ channel resolution

@pytest.mark.parametrize(
    ("template", "dialect", "expected"),
    [
        ("generic_modern", "modern",
         {"annexin": "FITC-A", "pi": "PE-A", "fsc_a": "FSC-A", "fsc_h": "FSC-H", "ssc_a": "SSC-A"}),
        ("facscalibur", "facscalibur",
         {"annexin": "FL1-H", "pi": "FL2-H", "fsc_h": "FSC-H", "ssc_h": "SSC-H"}),
        ("accuri_c6", "accuri",
         {"annexin": "FL1-A", "pi": "FL2-A", "fsc_a": "FSC-A", "fsc_h": "FSC-H", "ssc_a": "SSC-A"}),
    ],
)
def test_apoptosis_templates_resolve_their_simulated_dialect(
    template: str, dialect: str, expected: dict[str, str]
) -> None:
    sample = _sample(dialect_channels("apoptosis", dialect))  # type: ignore[arg-type]
    assert load_template(template).resolve_channels(sample) == expected


@pytest.mark.parametrize(
    ("dialect", "dna", "width", "height"),
    [("modern", "PI-A", "PI-W", "PI-H"), ("facscalibur", "FL2-A", "FL2-W", "FL2-H"),
     ("accuri", "FL2-A", None, "FL2-H")],
)
def test_cellcycle_template_resolves_every_dialect(
    dialect: str, dna: str, width: str | None, height: str
) -> None:
    sample = _sample(dialect_channels("cellcycle", dialect))  # type: ignore[arg-type]
    roles = load_template("generic_cellcycle").resolve_channels(sample)
    assert roles["dna"] == dna
    assert roles.get("dna_width") == width
    assert roles["dna_height"] == height


@pytest.mark.parametrize(
    ("doublets", "roles", "expected"),
    [("auto", {"dna_width": "PI-W", "dna_height": "PI-H"}, "PI-W"),
     ("auto", {"dna_height": "FL2-H"}, "FL2-H"),
     ("auto", {}, None),
     ("height", {"dna_width": "PI-W", "dna_height": "PI-H"}, "PI-H"),
     ("none", {"dna_width": "PI-W"}, None)],
)
def test_doublet_channel(doublets: str, roles: dict[str, str], expected: str | None) -> None:
    doc = _doc("generic_cellcycle")
    doc["cellcycle"]["doublets"] = doublets
    assert parse_template(doc).doublet_channel({"dna": "PI-A", **roles}) == expected
    assert load_template("generic_modern").doublet_channel(roles) is None


def test_labels_win_over_detector_names() -> None:
    # PI recorded in FL3 and labelled so: the label beats the FL2-H default.
    sample = _sample([("FSC-H", ""), ("SSC-H", ""), ("FL1-H", "Annexin V-FITC"), ("FL2-H", ""),
                      ("FL3-H", "PI")])
    roles = load_template("facscalibur").resolve_channels(sample)
    assert (roles["annexin"], roles["pi"]) == ("FL1-H", "FL3-H")


def test_missing_role_names_role_file_channels_and_fix() -> None:
    sample = _sample([("FSC-A", ""), ("FSC-H", ""), ("SSC-A", ""), ("PE-A", "")], path="plate/A1.fcs")
    with pytest.raises(ChannelError, match=r"role 'annexin'") as info:
        load_template("generic_modern").resolve_channels(sample)
    text = str(info.value)
    assert "plate/A1.fcs" in text
    assert "channels are FSC-A, FSC-H, SSC-A, PE-A" in text
    assert "add an alias in the template (channels.annexin)" in text
    assert "FITC-A" in text  # the aliases tried


def test_optional_role_may_be_missing() -> None:
    # generic_modern lists ssc_h, but nothing needs it
    sample = _sample(dialect_channels("apoptosis", "modern"))
    roles = load_template("generic_modern").resolve_channels(sample)
    assert "ssc_h" not in roles


def test_two_roles_on_one_channel_is_an_error() -> None:
    doc = _doc()
    doc["channels"]["pi"] = ["FITC-A"]
    sample = _sample(dialect_channels("apoptosis", "modern"))
    with pytest.raises(ChannelError, match=r"roles 'annexin' and 'pi' .* both match channel 'FITC-A'"):
        parse_template(doc).resolve_channels(sample)


def test_ambiguous_alias_is_quoted() -> None:
    doc = _doc()
    doc["channels"]["pi"] = ["PE"]
    sample = _sample([("FSC-A", ""), ("FSC-H", ""), ("SSC-A", ""), ("FITC-A", ""), ("PE-A", ""),
                      ("PE-Cy7-A", "")])
    with pytest.raises(ChannelError, match=r"role 'pi'.*ambiguous"):
        parse_template(doc).resolve_channels(sample)


def test_example_experiment_resolves_with_generic_modern(example_dir: Path) -> None:
    sample = read_fcs(example_dir / "apoptosis" / "parental_vehicle_r1.fcs")
    roles = load_template("generic_modern").resolve_channels(sample)
    assert (roles["annexin"], roles["pi"]) == ("FITC-A", "PE-A")


# ------------------------------------------------------------------ real files

@pytest.mark.shared
def test_real_facscan_file_resolves_with_facscalibur() -> None:
    sample = read_fcs(shared_file("stains", "FlowIO_3FITC_4PE_004.fcs"))
    roles = load_template("facscalibur").resolve_channels(sample)
    assert roles == {"annexin": "FL1-H", "pi": "FL2-H", "fsc_h": "FSC-H", "ssc_h": "SSC-H"}
    with pytest.raises(ChannelError, match=r"role 'annexin' .*channels are FSC-H, SSC-H, FL1-H, FL2-H"):
        load_template("generic_modern").resolve_channels(sample)


@pytest.mark.shared
def test_real_lsr_ii_control_resolves_with_generic_modern() -> None:
    sample = read_fcs(shared_file("stains", "CytoExploreRData_Compensation-Unstained.fcs"))
    roles = load_template("generic_modern").resolve_channels(sample)
    assert (roles["annexin"], roles["pi"], roles["fsc_h"]) == ("Alexa Fluor 488-A", "PE-A", "FSC-H")


@pytest.mark.shared
def test_real_accuri_and_facscalibur_cellcycle_files_resolve() -> None:
    accuri = read_fcs(shared_file("fcs_corpus", "fcsexamples__Accuri_-_C6.fcs"))
    roles = load_template("accuri_c6").resolve_channels(accuri)
    assert (roles["annexin"], roles["pi"], roles["fsc_a"], roles["fsc_h"]) == (
        "FL1-A", "FL2-A", "FSC-A", "FSC-H")
    calibur_file = "fcsparser__fcsparser__tests__data__FlowCytometers__FACSCaliburHTS__Sample_Well_A02.fcs"
    calibur = read_fcs(shared_file("fcs_corpus", calibur_file))
    cc = load_template("generic_cellcycle").resolve_channels(calibur)
    assert (cc["dna"], cc["dna_width"], cc["dna_height"]) == ("FL2-A", "FL2-W", "FL2-H")


# ------------------------------------------------------------------ validation

def _set(doc: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    *parents, last = dotted.split(".")
    node = doc
    for p in parents:
        node = node[p]
    node[last] = value
    return doc


@pytest.mark.parametrize(
    ("key", "value", "pattern"),
    [
        ("colour", "red", r"unknown key 'colour'; allowed keys are schema, name"),
        ("pregates.debris.size", 3, r"unknown key 'pregates.debris.size'"),
        ("channels.annexn", ["FITC-A"], r"unknown key 'channels.annexn'; allowed keys are annexin, pi"),
        ("channels.annexin", "FITC-A", r"channels.annexin = 'FITC-A': must be a non-empty list"),
        ("channels.annexin", [], r"channels.annexin = \[\]: must be a non-empty list"),
        ("channels.pi", ["PE-A", 7], r"channels.pi\[1\] = 7: must be a non-empty string"),
        ("thresholds.method", "quantile",
         r"thresholds.method = 'quantile': is not allowed; use one of fixed, percentile, valley"),
        ("thresholds.percentile", "99.5", r"thresholds.percentile = '99.5': must be a number"),
        ("thresholds.percentile", 100, r"thresholds.percentile = 100.0: must lie in \[50, 100\)"),
        ("thresholds.control", "fmo", r"thresholds.control = 'fmo': .*unstained, single_stains"),
        ("thresholds.annexin", 1000,
         r"thresholds.annexin = 1000.0: fixed values are only used with method: fixed"),
        ("pregates.debris.method", "gmm",
         r"pregates.debris.method = 'gmm': .*auto, rectangle, polygon, none"),
        ("pregates.singlets.method", True, r"pregates.singlets.method = True: must be a non-empty string"),
        ("pregates.debris.x", "fsc", r"pregates.debris.x = 'fsc': is not allowed; use one of annexin"),
        ("pregates.debris.x", "fsc_w", r"pregates.debris.x = 'fsc_w': is not a role under channels"),
        ("pregates.debris.k", -1, r"pregates.debris.k = -1: must be positive"),
        ("compensation.source", "spill", r"compensation.source = 'spill': .*file, matrix, controls, none"),
        ("compensation.path", "s.csv", r"compensation.path = 's.csv': is only used with source: matrix"),
        ("transforms.annexin", {"type": "biexp"},
         r"transforms.annexin.type = 'biexp': is not allowed; use one of logicle, asinh, linear, log"),
        ("transforms.annexin", {"type": "asinh", "cofactor": 0},
         r"transforms.annexin.cofactor = 0: must be positive"),
        ("transforms.annexin", {"type": "asinh", "t": 5},
         r"unknown key 'transforms.annexin.t'; allowed keys are type, cofactor"),
        ("transforms.annexin", {"type": "logicle", "w": 3.0},
         r"transforms.annexin.w = 3.0: logicle needs 0 <= w <= m/2"),
        ("transforms.dna", {"type": "linear"}, r"transforms.dna = .*names a role that is not under channels"),
        ("schema", 2, r"schema = 2: is newer than this cytoflow_res reads \(1\); upgrade"),
        ("schema", "1", r"schema = '1': must be the integer 1"),
        ("assay", "viability", r"assay = 'viability': is not allowed; use one of apoptosis, cellcycle"),
        ("cellcycle", {"bins": 256}, r"cellcycle = .*only applies to assay: cellcycle"),
        ("description", 5, r"description = 5: must be a string"),
    ],
)
def test_validation_names_key_value_and_allowed(key: str, value: Any, pattern: str) -> None:
    doc = _set(_doc(), key, value)
    with pytest.raises(TemplateError, match=pattern):
        parse_template(doc, source="my.yaml")


@pytest.mark.parametrize(
    ("changes", "pattern"),
    [
        ({"thresholds": {"method": "fixed", "annexin": 1e3}},
         r"thresholds.pi = None: is required with method: fixed"),
        ({"thresholds": {"method": "valley"}},
         r"thresholds.control = 'unstained': method: valley needs control: single_stains"),
        ({"pregates": {"debris": {"method": "rectangle"}}},
         r"pregates.debris = .*a rectangle needs at least one of x_min"),
        ({"pregates": {"debris": {"method": "rectangle", "x_min": 5, "x_max": 1}}},
         r"pregates.debris.x_min = 5.0: must be below x_max = 1.0"),
        ({"pregates": {"debris": {"method": "polygon", "vertices": [[0, 0], [1, 1]]}}},
         r"pregates.debris.vertices = .*at least 3"),
        ({"pregates": {"debris": {"method": "polygon", "vertices": [[0, 0], [1, 1], [2]]}}},
         r"pregates.debris.vertices\[2\] = \[2\]: must be an \[x, y\] pair"),
        ({"pregates": {"debris": {"method": "auto", "vertices": [[0, 0], [1, 1], [2, 0]]}}},
         r"pregates.debris.vertices = .*does not apply to method auto; that method takes k"),
        ({"pregates": {"gatingml": {"path": "g.xml"}}}, r"pregates.gatingml.gate = None: is required"),
        ({"compensation": {"source": "matrix"}},
         r"compensation.path = None: is required with source: matrix"),
    ],
)
def test_validation_of_method_specific_options(changes: dict[str, Any], pattern: str) -> None:
    doc = _doc()
    doc.update(changes)
    with pytest.raises(TemplateError, match=pattern):
        parse_template(doc)


def test_missing_required_keys() -> None:
    doc = _doc()
    del doc["name"]
    with pytest.raises(TemplateError, match=r"the required key 'name' is missing"):
        parse_template(doc)
    doc = _doc()
    del doc["channels"]["pi"]
    with pytest.raises(TemplateError, match=r"channels.pi = None: is required for assay: apoptosis"):
        parse_template(doc)
    with pytest.raises(TemplateError, match=r"must be a mapping \(a list given\)"):
        parse_template([1, 2])  # type: ignore[arg-type]


def test_cellcycle_validation() -> None:
    doc = _doc("generic_cellcycle")
    doc["thresholds"] = {"method": "percentile"}
    with pytest.raises(TemplateError, match=r"thresholds = .*only applies to assay: apoptosis"):
        parse_template(doc)
    doc = _doc("generic_cellcycle")
    doc["cellcycle"]["bins"] = 8
    with pytest.raises(TemplateError, match=r"cellcycle.bins = 8: must be null or an integer >= 16"):
        parse_template(doc)
    doc = _doc("generic_cellcycle")
    del doc["channels"]["dna_width"]
    del doc["transforms"]["dna_width"]
    doc["cellcycle"]["doublets"] = "width"
    with pytest.raises(TemplateError, match=r"cellcycle.doublets = 'width': needs channels.dna_width"):
        parse_template(doc)
    doc["cellcycle"]["doublets"] = "height"
    assert parse_template(doc).required_roles == ("dna", "dna_height")


def test_minimal_template_gets_documented_defaults() -> None:
    tpl = parse_template({"schema": 1, "name": "mini", "assay": "apoptosis",
                          "channels": {"annexin": ["FITC-A"], "pi": ["PE-A"]}})
    assert tpl.compensation.source == "file"
    assert tpl.pregates.debris.method == "none"
    assert tpl.pregates.singlets.method == "none"
    assert tpl.pregates.gatingml is None
    assert tpl.thresholds is not None and tpl.thresholds.method == "percentile"
    assert tpl.required_roles == ("annexin", "pi")
    assert isinstance(tpl, Template)


def test_fixed_gates_and_relative_paths_resolve_against_the_template(tmp_path: Path) -> None:
    doc = _doc()
    doc["compensation"] = {"source": "matrix", "path": "spill.csv"}
    doc["pregates"]["debris"] = {"method": "rectangle", "x": "fsc_a", "y": "ssc_a",
                                 "x_min": 2e4, "x_max": None, "y_min": None, "y_max": 2.5e5}
    doc["pregates"]["singlets"] = {"method": "polygon", "area": "fsc_a", "height": "fsc_h",
                                   "vertices": [[0, 0], [3e5, 2e5], [3e5, 3e5]]}
    doc["pregates"]["gatingml"] = {"path": "gates/cells.xml", "gate": "Cells"}
    path = tmp_path / "lab" / "mine.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    tpl = load_template(path)
    assert tpl.compensation.path == str((tmp_path / "lab" / "spill.csv").resolve())
    assert tpl.pregates.gatingml is not None
    assert tpl.pregates.gatingml.path == str((tmp_path / "lab" / "gates" / "cells.xml").resolve())
    assert tpl.pregates.debris.ranges == ((2e4, None), (None, 2.5e5))
    assert tpl.pregates.singlets.vertices == ((0.0, 0.0), (3e5, 2e5), (3e5, 3e5))
    assert load_template(str(path)).to_dict() == tpl.to_dict()


def test_load_template_errors(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"no shipped template named .nope.; shipped templates are"):
        load_template("nope")
    with pytest.raises(TemplateError, match=r"missing.yaml: template file not found"):
        load_template(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema: 1\nname: [unclosed\n", encoding="utf-8")
    with pytest.raises(TemplateError, match=r"bad.yaml line 3, column 1: not valid YAML: expected ',' or "
                                            r"'\]', but got '<stream end>' \(while parsing a flow sequence "
                                            r"that starts on line 2\)"):
        load_template(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(TemplateError, match=r"empty.yaml: the template file is empty"):
        load_template(empty)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("schema: 1\nname: w\nassay: apoptosis\nchannels: {annexin: [A], pi: [B]}\n"
                     "thresholds: {method: median}\n", encoding="utf-8")
    with pytest.raises(TemplateError, match=r"wrong.yaml line 5: thresholds.method = 'median'"):
        load_template(wrong)


def test_validate_transform_spec_fills_defaults() -> None:
    assert validate_transform_spec({"type": "logicle"}) == {
        "type": "logicle", "t": 262144.0, "w": 0.5, "m": 4.5, "a": 0.0}
    assert validate_transform_spec({"type": "asinh"}) == {"type": "asinh", "cofactor": 150.0}
    assert validate_transform_spec({"type": "linear"}) == {"type": "linear"}
    assert validate_transform_spec({"type": "log", "decades": 5}) == {
        "type": "log", "decades": 5.0, "t": 10000.0}
    with pytest.raises(TemplateError, match=r"transform.type = None: must be a non-empty string"):
        validate_transform_spec({"cofactor": 5})
    with pytest.raises(TemplateError, match=r"transform.a = 5.0: logicle needs -w <= a <= m - 2w"):
        validate_transform_spec({"type": "logicle", "a": 5})
