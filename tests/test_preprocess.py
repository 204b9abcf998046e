"""Pre-gates (debris, singlets, fixed and Gating-ML gates) against the simulator's ground truth."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from cytoflow_res import ChannelError, TemplateError, read_fcs
from cytoflow_res.gating import PolygonGate, RangeGate, RectangleGate
from cytoflow_res.gating.preprocess import (
    AutoGate,
    auto_debris_gate,
    auto_singlet_gate,
    gate_from_spec,
    pregate,
)
from cytoflow_res.gating.templates import GateSpec, load_template, parse_template
from cytoflow_res.sample import Sample
from cytoflow_res.simulate import ApoptosisSpec, planted_arms, write_apoptosis_sample
from tests.conftest import shared_file

QUADRANTS = ("viable", "early_apoptotic", "late_apoptotic", "necrotic")
TEMPLATE_OF = {"modern": "generic_modern", "facscalibur": "facscalibur", "accuri": "accuri_c6"}


def arm_composition(line: str, treatment: str) -> dict[str, float]:
    """Planted quadrant fractions of one arm of the example experiment."""
    arm = planted_arms()["apoptosis"][line][treatment]
    return {q: arm[f"{q}_pct"] / 100.0 for q in QUADRANTS}


# Arms from 90% to 38% viable (parental vehicle, drugA, drugB, combination).
ARMS = {t: arm_composition("parental", t) for t in ("vehicle", "drugA", "drugB", "drugA+drugB")}

SimulatedFile = tuple[Sample, pd.DataFrame, dict[str, Any]]


def make_simulator(folder: Path) -> Callable[..., SimulatedFile]:
    """A cached maker of simulated apoptosis files: (spec, dialect, seed) -> (sample, events, truth).

    Each file is written once (as the dialect's FCS file) and read back with ``read_fcs``;
    ``events`` are the model-scale events with the true ``population`` of every event.
    """
    cache: dict[tuple[Any, ...], SimulatedFile] = {}

    def make(spec: ApoptosisSpec, dialect: str, seed: int) -> SimulatedFile:
        key = (spec, dialect, seed)
        if key not in cache:
            path = folder / f"{dialect}_{seed}_{len(cache)}.fcs"
            events, truth = write_apoptosis_sample(path, spec, seed=seed, dialect=dialect)  # type: ignore[arg-type]
            cache[key] = (read_fcs(path), events, truth)
        return cache[key]

    return make


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., SimulatedFile]:
    """Simulated files shared by the tests of this module."""
    return make_simulator(tmp_path_factory.mktemp("simulated"))


def arm_spec(composition: dict[str, float], *, n_events: int = 10_000, **changes: Any) -> ApoptosisSpec:
    """An arm's spec with the example experiment's debris rule (more debris when more cells die)."""
    debris = 0.03 + 0.08 * (1.0 - composition["viable"])
    fields: dict[str, Any] = {**composition, "debris_fraction": debris, **changes}
    return ApoptosisSpec(n_events=n_events, **fields)


def compensate(sample: Sample) -> Sample:
    """Apply the file's spillover: true = observed @ inv(S) (no-op without a matrix)."""
    spill = sample.spillover
    if spill is None:
        return sample
    idx = [sample.channel(name).index for name in spill.channels]
    events = np.array(sample.events, dtype=float)
    events[:, idx] = events[:, idx] @ np.linalg.inv(spill.matrix)
    return sample.with_events(events, note="compensated in test")


def kept_pct(
    mask: np.ndarray, population: np.ndarray, name: str, within: np.ndarray | None = None
) -> float:
    sel = population == name
    if within is not None:
        sel &= within
    return 100.0 * float(mask[sel].mean())


# ------------------------------------------------------------------ debris on ground truth

@pytest.mark.parametrize("dialect", ["modern", "facscalibur", "accuri"])
def test_auto_debris_keeps_every_population_and_removes_debris(
    dialect: str, simulated: Callable[..., SimulatedFile]
) -> None:
    template = load_template(TEMPLATE_OF[dialect])
    rows = []
    for treatment, comp in ARMS.items():
        for seed in (1, 2):
            sample, events, _ = simulated(arm_spec(comp), dialect, seed)
            result = pregate(sample, template)
            pop = events["population"].to_numpy()
            kept = {q: kept_pct(result.cells, pop, q) for q in QUADRANTS}
            removed = 100.0 - kept_pct(result.cells, pop, "debris")
            rows.append((treatment, seed, kept, removed, result.steps[0].note))
    for treatment, seed, kept, removed, note in rows:
        where = f"{dialect} {treatment} seed {seed}: {note}"
        assert min(kept.values()) >= 98.0, f"{where}: cells kept {kept}"
        assert removed >= 90.0, f"{where}: debris removed {removed:.1f}%"


def test_auto_debris_extremes(simulated: Callable[..., SimulatedFile]) -> None:
    heavy = {"viable": 0.4, "early_apoptotic": 0.2, "late_apoptotic": 0.3, "necrotic": 0.1}
    for debris in (0.0, 0.5):
        sample, events, _ = simulated(arm_spec(heavy, debris_fraction=debris), "modern", 5)
        gate = auto_debris_gate(np.asarray(sample.column("FSC-A")))
        pop = events["population"].to_numpy()
        for q in QUADRANTS:
            assert kept_pct(gate.mask, pop, q) >= 98.0, (debris, q, gate.note)
        if debris:
            assert 100.0 - kept_pct(gate.mask, pop, "debris") >= 90.0, gate.note
            assert gate.rule in ("valley", "guard")
        else:
            assert gate.rule == "no_valley"
            assert gate.n_removed <= 0.005 * gate.n_events


def test_auto_debris_result_object() -> None:
    rng = np.random.default_rng(0)
    cells = 90_000 * np.exp(0.1 * rng.standard_normal(5_000))
    fsc = np.concatenate([2_000 + rng.exponential(6_000, 500), cells])
    gate = auto_debris_gate(fsc, channel="FSC-A")
    assert isinstance(gate, AutoGate)
    assert isinstance(gate.gate, RangeGate)
    assert gate.gate.dimension == "FSC-A"
    assert gate.gate.min == pytest.approx(gate.details["threshold"])
    np.testing.assert_array_equal(gate.mask, gate.gate.apply({"FSC-A": fsc}))
    assert gate.rule == "valley"
    assert 20_000 < gate.details["threshold"] < 60_000
    assert gate.n_kept + gate.n_removed == fsc.size
    assert "removed" in gate.note
    json.dumps(dict(gate.details))


def test_auto_debris_debris_dominated_sample_finds_the_cells() -> None:
    rng = np.random.default_rng(3)
    cells = 90_000 * np.exp(0.1 * rng.standard_normal(2_000))
    fsc = np.concatenate([1_500 + rng.exponential(5_000, 8_000), cells])
    gate = auto_debris_gate(fsc)
    assert gate.details["cell_mode"] > 50_000
    assert gate.mask[8_000:].mean() >= 0.99
    assert gate.mask[:8_000].mean() <= 0.05


def test_auto_debris_with_too_few_events_keeps_everything() -> None:
    gate = auto_debris_gate(np.array([1.0, 2.0, np.nan]))
    assert gate.gate is None
    assert gate.rule == "too_few_events"
    np.testing.assert_array_equal(gate.mask, [True, True, False])


# ------------------------------------------------------------------ singlets on ground truth

@pytest.mark.parametrize("dialect", ["modern", "accuri"])
def test_auto_singlets_remove_doublets_and_keep_singlets(
    dialect: str, simulated: Callable[..., SimulatedFile]
) -> None:
    template = load_template(TEMPLATE_OF[dialect])
    for treatment, comp in ARMS.items():
        for seed in (1, 2):
            sample, events, _ = simulated(arm_spec(comp), dialect, seed)
            result = pregate(sample, template)
            pop = events["population"].to_numpy()
            where = f"{dialect} {treatment} seed {seed}: {result.steps[2].note}"
            for q in QUADRANTS:
                assert kept_pct(result.singlets, pop, q, within=result.cells) >= 97.0, (where, q)
            assert kept_pct(result.singlets, pop, "doublet", within=result.cells) <= 10.0, where
            assert result.events_singlets == int(result.singlets.sum())


def test_auto_singlets_with_many_doublets(simulated: Callable[..., SimulatedFile]) -> None:
    sample, events, _ = simulated(arm_spec(ARMS["drugA+drugB"], doublet_fraction=0.2), "modern", 7)
    gate = auto_singlet_gate(np.asarray(sample.column("FSC-A")), np.asarray(sample.column("FSC-H")))
    pop = events["population"].to_numpy()
    assert isinstance(gate.gate, PolygonGate)
    assert gate.gate.dimensions == ("FSC-A", "FSC-H")
    for q in QUADRANTS:
        assert kept_pct(gate.mask, pop, q) >= 97.0
    assert kept_pct(gate.mask, pop, "doublet") <= 5.0
    assert gate.details["ratio"] == pytest.approx(1.18, abs=0.03)
    np.testing.assert_array_equal(gate.mask, gate.gate.apply(sample))


def test_auto_singlets_validation_and_too_few_events() -> None:
    with pytest.raises(ValueError, match="same shape"):
        auto_singlet_gate(np.ones(3), np.ones(4))
    gate = auto_singlet_gate(np.ones(10), np.ones(10))
    assert gate.gate is None and gate.rule == "too_few_events"


# ------------------------------------------------------------------ pregate step

def test_pregate_counts_and_summary(simulated: Callable[..., SimulatedFile]) -> None:
    sample, _, truth = simulated(arm_spec(ARMS["vehicle"]), "modern", 1)
    result = pregate(sample, load_template("generic_modern"))
    assert result.events_total == sample.n_events == truth["n_events"]
    assert result.events_total >= result.events_cells >= result.events_singlets
    one_pct = 0.01 * sample.n_events
    assert result.events_cells == pytest.approx(truth["n_events"] - truth["n_debris"], abs=one_pct)
    assert result.events_singlets == pytest.approx(truth["n_single_cells"], abs=one_pct)
    assert [s.name for s in result.steps] == ["debris", "gatingml", "singlets"]
    assert [s.method for s in result.steps] == ["auto", "none", "auto"]
    assert result.warnings == ()
    assert not np.any(result.singlets & ~result.cells)
    assert result.mask is result.singlets
    assert set(result.gates) == {"debris", "gatingml", "singlets"}
    assert result.channels["fsc_a"] == "FSC-A"
    doc = result.summary()
    json.dumps(doc)
    assert doc["events_singlets"] == result.events_singlets


def test_pregate_checks_the_channels_it_is_given(simulated: Callable[..., SimulatedFile]) -> None:
    sample, _, _ = simulated(arm_spec(ARMS["vehicle"]), "modern", 1)
    with pytest.raises(ChannelError, match=r"read role\(s\) fsc_h, ssc_a, which are not among the channels"):
        pregate(sample, load_template("generic_modern"), {"annexin": "FITC-A", "fsc_a": "FSC-A"})


def test_pregate_facscalibur_has_no_singlet_step(simulated: Callable[..., SimulatedFile]) -> None:
    sample, _, _ = simulated(arm_spec(ARMS["vehicle"]), "facscalibur", 1)
    result = pregate(sample, load_template("facscalibur"))
    assert result.steps[2].method == "none"
    assert result.events_singlets == result.events_cells
    assert result.gates["debris"] is not None and result.gates["debris"].dimensions == ("FSC-H",)


def test_pregate_warns_when_a_step_removes_over_30_percent(simulated: Callable[..., SimulatedFile]) -> None:
    sample, _, _ = simulated(arm_spec(ARMS["drugA+drugB"], debris_fraction=0.45), "modern", 4)
    result = pregate(sample, load_template("generic_modern"))
    assert len(result.warnings) == 1
    assert "the debris gate removed" in result.warnings[0]
    assert "more than 30%" in result.warnings[0]
    quiet = pregate(sample, load_template("generic_modern"), max_removed=0.6)
    assert quiet.warnings == ()


def test_fixed_gates_from_spec() -> None:
    channels = {"fsc_a": "FSC-A", "ssc_a": "SSC-A", "fsc_h": "FSC-H"}
    rect = gate_from_spec(GateSpec("rectangle", "fsc_a", "ssc_a", ((2e4, None), (None, None))), channels)
    assert isinstance(rect, RectangleGate)
    assert rect.dimensions == ("FSC-A",)
    both = gate_from_spec(GateSpec("rectangle", "fsc_a", "ssc_a", ((2e4, 2e5), (1e3, None))), channels,
                          name="cells")
    assert isinstance(both, RectangleGate) and both.name == "cells"
    assert both.dimensions == ("FSC-A", "SSC-A")
    poly = gate_from_spec(GateSpec("polygon", "fsc_a", "fsc_h", vertices=((0, 0), (1, 0), (1, 1))), channels)
    assert isinstance(poly, PolygonGate) and poly.dimensions == ("FSC-A", "FSC-H")
    assert gate_from_spec(GateSpec("auto"), channels) is None
    assert gate_from_spec(GateSpec("none"), channels) is None
    with pytest.raises(TemplateError, match="reads role 'ssc_h'"):
        gate_from_spec(GateSpec("rectangle", "fsc_a", "ssc_h", ((1, 2), (None, None))), channels)


def test_pregate_with_fixed_gates_matches_the_gates(simulated: Callable[..., SimulatedFile]) -> None:
    doc = load_template("generic_modern").to_dict()
    doc["pregates"]["debris"] = {"method": "rectangle", "x": "fsc_a", "y": "ssc_a", "x_min": 25_000}
    doc["pregates"]["singlets"] = {"method": "polygon", "area": "fsc_a", "height": "fsc_h",
                                   "vertices": [[0, 0], [262_144, 262_144 / 1.35], [262_144, 262_144 / 1.0]]}
    template = parse_template(doc)
    sample, events, _ = simulated(arm_spec(ARMS["drugB"]), "modern", 2)
    result = pregate(sample, template)
    fsc, fsch = np.asarray(sample.column("FSC-A")), np.asarray(sample.column("FSC-H"))
    np.testing.assert_array_equal(result.cells, fsc >= 25_000)
    ratio = fsc / fsch
    expected = (fsc >= 25_000) & (ratio > 1.0) & (ratio < 1.35)
    assert np.mean(result.singlets == expected) > 0.999
    pop = events["population"].to_numpy()
    assert kept_pct(result.singlets, pop, "doublet") < 5.0


GML = """<?xml version="1.0" encoding="UTF-8"?>
<gating:Gating-ML xmlns:gating="http://www.isac-net.org/std/Gating-ML/v2.0/gating"
    xmlns:data-type="http://www.isac-net.org/std/Gating-ML/v2.0/datatypes">
  <gating:RectangleGate gating:id="Cells">
    <gating:dimension gating:compensation-ref="uncompensated" gating:min="20000">
      <data-type:fcs-dimension data-type:name="FSC-A"/>
    </gating:dimension>
  </gating:RectangleGate>
  <gating:RectangleGate gating:id="LowSSC" gating:parent_id="Cells">
    <gating:dimension gating:compensation-ref="uncompensated" gating:max="60000">
      <data-type:fcs-dimension data-type:name="SSC-A"/>
    </gating:dimension>
  </gating:RectangleGate>
</gating:Gating-ML>
"""


def test_pregate_with_a_gatingml_cell_gate(tmp_path: Path, simulated: Callable[..., SimulatedFile]) -> None:
    (tmp_path / "cells.xml").write_text(GML, encoding="utf-8")
    doc = load_template("generic_modern").to_dict()
    doc["pregates"]["debris"] = {"method": "none"}
    doc["pregates"]["gatingml"] = {"path": "cells.xml", "gate": "LowSSC"}
    template_path = tmp_path / "t.yaml"
    template_path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    template = load_template(template_path)
    sample, _, _ = simulated(arm_spec(ARMS["vehicle"]), "modern", 1)
    result = pregate(sample, template)
    fsc, ssc = np.asarray(sample.column("FSC-A")), np.asarray(sample.column("SSC-A"))
    np.testing.assert_array_equal(result.cells, (fsc >= 20_000) & (ssc < 60_000))  # the parent too
    assert result.steps[1].method == "gatingml"
    assert template.pregates.gatingml is not None
    moved = dataclasses.replace(template.pregates.gatingml, path=str(tmp_path / "x.xml"))
    bad = dataclasses.replace(template, pregates=dataclasses.replace(template.pregates, gatingml=moved))
    with pytest.raises(TemplateError, match=r"pregates.gatingml.path .*x.xml.* cannot be read"):
        pregate(sample, bad)


# ------------------------------------------------------------------ real data

@pytest.mark.shared
def test_real_controls_pregate_conservatively() -> None:
    unstained = read_fcs(shared_file("stains", "CytoExploreRData_Compensation-Unstained.fcs"))
    result = pregate(unstained, load_template("generic_modern"))
    # no debris valley on these lymphocytes: only the lowest events go; singlet gate ~7%
    assert result.steps[0].removed_pct < 2.0
    assert 3.0 < result.steps[2].removed_pct < 12.0
    assert result.warnings == ()
    facscan = read_fcs(shared_file("stains", "FlowIO_3FITC_4PE_004.fcs"))
    result = pregate(facscan, load_template("facscalibur"))
    assert result.events_total == 94_569
    assert result.steps[0].removed_pct < 5.0
