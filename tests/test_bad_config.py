"""Hostile and mistaken templates and design sheets: each is answered by the right error.

Every bad template raises :class:`TemplateError` and every bad design sheet
:class:`DesignError`, never a raw ``KeyError``/``TypeError``/``yaml`` error, and the message
names the file, where in it the problem is (template line and key path; sheet row, column or
cell) and what to do. Hostile inputs (alias bombs, deep nesting, huge files, stray cells at
XFD1048576) are refused within bounded time. The README's "Bad input" table for templates and
design sheets summarises these cases.
"""

from __future__ import annotations

import codecs
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cytoflow_res.errors import DesignError, TemplateError
from cytoflow_res.gating.templates import load_template
from cytoflow_res.io.design import read_design
from tests.conftest import REPO_ROOT

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# ------------------------------------------------------------------ templates

# Line numbers below count from this header: schema is line 1, channels.fsc_h line 9, and
# whatever a case appends starts on line 10.
TEMPLATE = """\
schema: 1
name: mine
assay: apoptosis
channels:
  annexin: [FITC-A]
  pi: [PE-A]
  fsc_a: [FSC-A]
  ssc_a: [SSC-A]
  fsc_h: [FSC-H]
"""
CELLCYCLE = """\
schema: 1
name: mine
assay: cellcycle
channels:
  dna: [FL2-A]
"""


def _bomb() -> str:
    """A "billion laughs" document: 9**9 strings once the aliases are expanded."""
    levels = ["&l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    levels += [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9)]
    return TEMPLATE + "description: [" + ", ".join(levels) + "]\n"


TEMPLATE_CASES: list[tuple[str, str | bytes, str, str]] = [
    # (id, file content, location in the message, hint in the message)
    # ---- YAML itself
    ("python-tag", TEMPLATE + 'description: !!python/object/apply:os.system ["touch PWNED"]\n',
     r"line 10, column 14: not valid YAML: could not determine a constructor for the tag",
     r"tags such as !!python/object are not allowed.*remove the tag"),
    ("custom-tag", TEMPLATE + "description: !include other.yaml\n",
     r"line 10, column 14: not valid YAML", r"remove the tag"),
    ("undefined-alias", TEMPLATE + "description: *nope\n",
     r"line 10, column 14: not valid YAML: found undefined alias 'nope'", r"needs an anchor &name"),
    ("recursive-alias", TEMPLATE + "description: &a [1, *a]\n",
     r"line 10: description\[1\] refers to itself through an alias", r"write the values out"),
    ("duplicate-key", TEMPLATE + "name: other\n",
     r"line 10: key 'name' is given twice \(first on line 2\)", r"keep one"),
    ("duplicate-nested-key", TEMPLATE.replace("  pi: [PE-A]\n", "  pi: [PE-A]\n  pi: [PI]\n"),
     r"line 7: key 'channels.pi' is given twice \(first on line 6\)", r"keep one"),
    ("top-level-list", "- schema: 1\n- name: mine\n",
     r"line 1: the document = \[.*\]: must be a mapping \(a list given\)",
     r"starting schema: 1, name: \.\.\., assay"),
    ("top-level-scalar", "just some text\n",
     r"line 1: the document = 'just some text': must be a mapping \(a string given\)",
     r"a template is keys and values"),
    ("empty", "", r"yaml: the template file is empty", r"start from a shipped template"),
    ("only-comments", "# nothing yet\n\n", r"yaml: the template file is empty", r"templates --show"),
    ("binary", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", r"yaml: is a binary file, not YAML text",
     r"a template is a text file"),
    ("latin-1", TEMPLATE.encode() + "description: caf\u00e9\n".encode("latin-1"),
     r"line 10: is not UTF-8 text \(byte 0xe9", r"save the template as UTF-8"),
    ("control-character", TEMPLATE + "description: a\x07b\n",
     r"line 10: not valid YAML: the control character U\+0007", r"delete it"),
    ("tab-indent", TEMPLATE + "pregates:\n\tdebris: {method: auto}\n",
     r"line 11, column 1: not valid YAML: found character '\\t'", r"indent with spaces, not tabs"),
    ("unclosed-bracket", TEMPLATE + "description: [a, b\n",
     r"line 11, column 1: not valid YAML: expected ',' or '\]'.*starts on line 10",
     r"close every bracket and quote"),
    ("two-documents", TEMPLATE + "---\nname: again\n",
     r"line 10, column 1: not valid YAML: a second YAML document starts here",
     r"remove the extra '---'"),
    ("deep-flow-nesting", TEMPLATE + "description: " + "[" * 5000 + "]" * 5000 + "\n",
     r"line 10, column 46: not valid YAML: more than 32 nested \[ \] or \{ \}",
     r"a template is a few levels deep"),
    ("deep-block-nesting", TEMPLATE + "description:\n" + "- " * 20000 + "x\n",
     r"line 11, column \d+: not valid YAML: more than 32 levels of indentation",
     r"a template is a few levels deep"),
    ("billion-laughs", _bomb(), r"line 10: description\[5\] expands to more than 100,000 values",
     r"write the values out"),
    ("huge-file", TEMPLATE + "description: '" + "x" * 70_000 + "'\n", r"yaml: is larger than 64 KiB",
     r"check that this is the template file"),
    ("bad-timestamp", TEMPLATE.replace("name: mine", "name: 2024-13-45"),
     r"line 2, column 7: not valid YAML: '2024-13-45' cannot be read as a timestamp",
     r"put the value in quotes"),
    # ---- keys
    ("unknown-top-key", TEMPLATE + "pregate: {}\n",
     r"line 10: unknown key 'pregate'; allowed keys are schema, name", r"did you mean 'pregates'\?"),
    ("unknown-nested-key", TEMPLATE + "pregates:\n  debris:\n    method: auto\n    threshold: 5\n",
     r"line 13: unknown key 'pregates.debris.threshold'", r"allowed keys are method, x, y, x_min"),
    ("misspelt-key", TEMPLATE + "pregates:\n  debris:\n    methd: auto\n",
     r"line 12: unknown key 'pregates.debris.methd'", r"did you mean 'method'\?"),
    ("misspelt-flowjo-key", TEMPLATE + "pregates:\n  flowjo: {path: x.wsp, gate: Cells, groups: All}\n",
     r"line 11: unknown key 'pregates.flowjo.groups'", r"did you mean 'group'\?"),
    ("unknown-role", TEMPLATE + "transforms:\n  dna: {type: linear}\n",
     r"line 11: transforms.dna = \{'type': 'linear'\}: names a role that is not under channels",
     r"roles are annexin, pi"),
    ("number-key", TEMPLATE + "1: x\n", r"line 10: 1 = 'x': keys must be text \(a number 1 given\)",
     r"put it in quotes"),
    ("boolean-key", TEMPLATE + "on: x\n", r"line 10: True = 'x': keys must be text",
     r"YAML reads yes, no, on, off, true and false as booleans"),
    ("missing-required-key", TEMPLATE.replace("name: mine\n", ""),
     r"yaml: the required key 'name' is missing", r"a template needs schema, name, assay, channels"),
    # ---- wrong types and values
    ("schema-string", TEMPLATE.replace("schema: 1", "schema: '1'"),
     r"line 1: schema = '1'", r"must be the integer 1"),
    ("schema-newer", TEMPLATE.replace("schema: 1", "schema: 2"),
     r"line 1: schema = 2: is newer than this cytoflow_res reads", r"upgrade cytoflow_res"),
    ("name-date", TEMPLATE.replace("name: mine", "name: 2024-01-01"),
     r"line 2: name = datetime.date\(2024, 1, 1\): must be a non-empty string \(a date given\)",
     r"put it in quotes"),
    ("name-boolean", TEMPLATE.replace("name: mine", "name: yes"),
     r"line 2: name = True: must be a non-empty string \(a boolean given\)", r"put the text in quotes"),
    ("name-bomb-repr-is-short", TEMPLATE.replace("name: mine", "name: [" + ", ".join(["x"] * 5000) + "]"),
     r"line 2: name = \['x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', \.\.\.\]: must be a non-empty string",
     r"\(a list given\)"),
    ("assay-case", TEMPLATE.replace("assay: apoptosis", "assay: Apoptosis"),
     r"line 3: assay = 'Apoptosis': is not allowed; use one of apoptosis, cellcycle",
     r"did you mean 'apoptosis'\?"),
    ("channels-list", TEMPLATE.split("channels:")[0] + "channels: [FITC-A, PE-A]\n",
     r"line 4: channels = \['FITC-A', 'PE-A'\]: must be a mapping \(a list given\)", r"mapping"),
    ("aliases-string", TEMPLATE.replace("pi: [PE-A]", "pi: PE-A"),
     r"line 6: channels.pi = 'PE-A': must be a non-empty list", r"list of channel names or labels"),
    ("aliases-null", TEMPLATE.replace("pi: [PE-A]", "pi:"),
     r"line 6: channels.pi = None: must be a non-empty list", r"list of channel names or labels"),
    ("alias-number", TEMPLATE.replace("pi: [PE-A]", "pi: [PE-A, 585]"),
     r"line 6: channels.pi\[1\] = 585: must be a non-empty string \(a number given\)",
     r"put it in quotes"),
    ("missing-assay-role", TEMPLATE.replace("  pi: [PE-A]\n", ""),
     r"line 4: channels.pi = None: is required for assay: apoptosis", r"required"),
    ("description-list", TEMPLATE + "description: [a, b]\n",
     r"line 10: description = \['a', 'b'\]: must be a string \(a list given\)", r"string"),
    ("pregates-zero", TEMPLATE + "pregates: 0\n",
     r"line 10: pregates = 0: must be a mapping \(a number given\)", r"mapping"),
    ("pregates-false", TEMPLATE + "pregates: false\n",
     r"line 10: pregates = False: must be a mapping \(a boolean given\)", r"mapping"),
    ("debris-list", TEMPLATE + "pregates:\n  debris: [auto]\n",
     r"line 11: pregates.debris = \['auto'\]: must be a mapping \(a list given\)", r"mapping"),
    ("debris-method", TEMPLATE + "pregates:\n  debris: {method: gmm}\n",
     r"line 11: pregates.debris.method = 'gmm': is not allowed", r"use one of auto, rectangle, polygon"),
    ("debris-axis-role", TEMPLATE + "pregates:\n  debris: {method: auto, x: fsc}\n",
     r"line 11: pregates.debris.x = 'fsc': is not allowed", r"did you mean 'fsc_.'\?"),
    ("debris-axis-not-in-channels", TEMPLATE + "pregates:\n  debris: {method: auto, x: fsc_w}\n",
     r"line 11: pregates.debris.x = 'fsc_w': is not a role under channels", r"add channels.fsc_w"),
    ("k-negative", TEMPLATE + "pregates:\n  debris:\n    method: auto\n    k: -1\n",
     r"line 13: pregates.debris.k = -1: must be positive", r"positive"),
    ("k-quoted", TEMPLATE + "pregates:\n  debris:\n    method: auto\n    k: '2.5'\n",
     r"line 13: pregates.debris.k = '2.5': must be a number \(a string given\)",
     r"write it without quotes"),
    ("k-for-rectangle", TEMPLATE + "pregates:\n  debris: {method: rectangle, x_min: 1, k: 2}\n",
     r"line 11: pregates.debris.k = 2: does not apply to method rectangle",
     r"that method takes x_max, x_min, y_max, y_min"),
    ("bound-nan", TEMPLATE + "pregates:\n  debris:\n    method: rectangle\n    x_min: .nan\n",
     r"line 13: pregates.debris.x_min = nan: must be a finite number", r"finite"),
    ("bound-inf", TEMPLATE + "pregates:\n  debris:\n    method: rectangle\n    x_max: .inf\n",
     r"line 13: pregates.debris.x_max = inf: must be a finite number", r"finite"),
    ("bounds-reversed", TEMPLATE + "pregates:\n  debris: {method: rectangle, x_min: 5, x_max: 1}\n",
     r"line 11: pregates.debris.x_min = 5.0", r"must be below x_max = 1.0"),
    ("polygon-no-area", TEMPLATE + "pregates:\n  debris:\n    method: polygon\n"
                                   "    vertices: [[0, 0], [1, 1], [2, 2]]\n",
     r"line 13: pregates.debris.vertices = .*: the polygon has no area",
     r"give at least 3 points that enclose the cells"),
    ("polygon-bad-vertex", TEMPLATE + "pregates:\n  debris:\n    method: polygon\n"
                                      "    vertices:\n    - [0, 0]\n    - [1, 1]\n    - [2]\n",
     r"line 16: pregates.debris.vertices\[2\] = \[2\]", r"must be an \[x, y\] pair"),
    ("singlets-area-role", TEMPLATE + "pregates:\n  singlets: {method: auto, area: fsc}\n",
     r"line 11: pregates.singlets.area = 'fsc': is not allowed", r"did you mean 'fsc_.'\?"),
    ("gatingml-string", TEMPLATE + "pregates:\n  gatingml: cells.xml\n",
     r"line 11: pregates.gatingml = 'cells.xml': must be a mapping \(a string given\)", r"mapping"),
    ("gatingml-no-gate", TEMPLATE + "pregates:\n  gatingml: {path: cells.xml}\n",
     r"line 11: pregates.gatingml.gate = None: is required", r"the file and the gate id"),
    ("gatingml-gate-number", TEMPLATE + "pregates:\n  gatingml: {path: cells.xml, gate: 5}\n",
     r"line 11: pregates.gatingml.gate = 5: must be a non-empty string", r"put it in quotes"),
    ("flowjo-empty-step", TEMPLATE + "pregates:\n  flowjo: {path: x.wsp, gate: Cells//Singlets}\n",
     r"line 11: pregates.flowjo.gate = 'Cells//Singlets': has an empty step",
     r"write a gate name or a path like Cells/Singlets"),
    ("flowjo-nul-path", TEMPLATE + 'pregates:\n  flowjo: {path: "x\\0.wsp", gate: Cells}\n',
     r"line 11: pregates.flowjo.path = 'x\\x00.wsp': contains a NUL character", r"write the file's path"),
    ("flowjo-and-gatingml", TEMPLATE + "pregates:\n  gatingml: {path: c.xml, gate: Cells}\n"
                                       "  flowjo: {path: x.wsp, gate: Cells}\n",
     r"line 12: pregates.flowjo = ", r"give pregates.gatingml or pregates.flowjo, not both"),
    ("percentile-quoted", TEMPLATE + "thresholds: {percentile: '99.5'}\n",
     r"line 10: thresholds.percentile = '99.5': must be a number", r"write it without quotes"),
    ("percentile-range", TEMPLATE + "thresholds: {percentile: 100}\n",
     r"line 10: thresholds.percentile = 100.0", r"must lie in \[50, 100\)"),
    ("percentile-nan", TEMPLATE + "thresholds: {percentile: .nan}\n",
     r"line 10: thresholds.percentile = nan: must be a finite number", r"finite"),
    ("fixed-without-values", TEMPLATE + "thresholds: {method: fixed, annexin: 1000}\n",
     r"line 10: thresholds.pi = None", r"is required with method: fixed"),
    ("control-boolean", TEMPLATE + "thresholds: {control: no}\n",
     r"line 10: thresholds.control = False: must be a non-empty string \(a boolean given\)",
     r"put the text in quotes"),
    ("thresholds-list", TEMPLATE + "thresholds: []\n",
     r"line 10: thresholds = \[\]: must be a mapping \(a list given\)", r"mapping"),
    ("thresholds-in-cellcycle", CELLCYCLE + "thresholds: {method: percentile}\n",
     r"line 6: thresholds = ", r"only applies to assay: apoptosis"),
    ("transform-type", TEMPLATE + "transforms:\n  annexin: {type: biexp}\n",
     r"line 11: transforms.annexin.type = 'biexp': is not allowed", r"use one of logicle, asinh, linear"),
    ("transform-logicle-w", TEMPLATE + "transforms:\n  annexin: {type: logicle, w: 3}\n",
     r"line 11: transforms.annexin.w = 3.0", r"logicle needs 0 <= w <= m/2"),
    ("transform-negative", TEMPLATE + "transforms:\n  annexin: {type: asinh, cofactor: -5}\n",
     r"line 11: transforms.annexin.cofactor = -5: must be positive", r"positive"),
    ("transform-null-spec", TEMPLATE + "transforms:\n  annexin:\n",
     r"line 11: transforms.annexin = None: must be a mapping \(null given\)", r"mapping"),
    ("compensation-string", TEMPLATE + "compensation: file\n",
     r"line 10: compensation = 'file': must be a mapping \(a string given\)", r"mapping"),
    ("compensation-matrix-no-path", TEMPLATE + "compensation: {source: matrix}\n",
     r"line 10: compensation.path = None", r"is required with source: matrix"),
    ("compensation-source", TEMPLATE + "compensation: {source: spillover}\n",
     r"line 10: compensation.source = 'spillover': is not allowed", r"use one of file, matrix, controls"),
    ("bins-huge", CELLCYCLE + "cellcycle: {bins: 1000000000000}\n",
     r"line 6: cellcycle.bins = 1000000000000", r"an integer >= 16 and <= 65536"),
    ("bins-float", CELLCYCLE + "cellcycle: {bins: 512.0}\n",
     r"line 6: cellcycle.bins = 512.0", r"an integer >= 16"),
    ("bins-negative", CELLCYCLE + "cellcycle: {bins: -256}\n",
     r"line 6: cellcycle.bins = -256", r"an integer >= 16"),
    ("model-case", CELLCYCLE + "cellcycle: {model: DJF}\n",
     r"line 6: cellcycle.model = 'DJF': is not allowed", r"did you mean 'djf'\?"),
    ("doublets-without-role", CELLCYCLE + "cellcycle: {doublets: width}\n",
     r"line 6: cellcycle.doublets = 'width'", r"needs channels.dna_width"),
    ("cellcycle-in-apoptosis", TEMPLATE + "cellcycle: {bins: 256}\n",
     r"line 10: cellcycle = ", r"only applies to assay: cellcycle"),
]


@pytest.mark.parametrize(("content", "location", "hint"), [c[1:] for c in TEMPLATE_CASES],
                         ids=[c[0] for c in TEMPLATE_CASES])
def test_bad_template(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str | bytes,
                      location: str, hint: str) -> None:
    monkeypatch.chdir(tmp_path)  # where `touch PWNED` would land
    path = tmp_path / "bad_template.yaml"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    start = time.perf_counter()
    with pytest.raises(TemplateError) as exc:
        load_template(path)
    assert time.perf_counter() - start < 2.0
    message = str(exc.value)
    assert message.startswith(str(path))
    assert re.search(location, message), message
    assert re.search(hint, message), message
    assert len(message) < 1000  # values are quoted cut short, whatever the file holds
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize(
    ("content", "check"),
    [
        (codecs.BOM_UTF8 + TEMPLATE.encode(), lambda t: t.name == "mine"),
        (TEMPLATE.encode("utf-16"), lambda t: t.name == "mine"),
        # anchors, aliases and merge keys within bounds are fine
        ((TEMPLATE + "pregates:\n  debris: &gate {method: auto, k: 3}\n  singlets:\n"
                     "    <<: *gate\n    area: fsc_a\n    height: fsc_h\n").encode(),
         lambda t: t.pregates.singlets.k == 3.0 and t.pregates.singlets.method == "auto"),
        # null sections mean the defaults
        ((TEMPLATE + "pregates:\ntransforms:\nthresholds:\ncompensation:\ndescription:\n").encode(),
         lambda t: t.pregates.debris.method == "none" and t.thresholds.percentile == 99.5),
    ],
    ids=["utf8-bom", "utf16-bom", "anchors-and-merge", "null-sections"],
)
def test_template_inputs_that_are_fine(tmp_path: Path, content: bytes, check: Callable[..., bool]) -> None:
    path = tmp_path / "ok.yaml"
    path.write_bytes(content)
    assert check(load_template(path))


def test_template_file_problems(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"missing\.yaml: template file not found; give a YAML file"):
        load_template(tmp_path / "missing.yaml")
    (tmp_path / "folder.yaml").mkdir()
    with pytest.raises(TemplateError, match=r"folder\.yaml: is a folder, not a template file"):
        load_template(tmp_path / "folder.yaml")


# ------------------------------------------------------------------ design sheets

HEADER = "file,assay,cell_line,treatment,replicate,role,group"
ROWS = [
    "a1.fcs,apoptosis,p,vehicle,1,sample,p",
    "a2.fcs,apoptosis,p,vehicle,2,sample,p",
    "u.fcs,apoptosis,p,none,,unstained,p",
]
FILES = ("a1.fcs", "a2.fcs", "u.fcs", "b.fcs", "c.fcs")


def _csv(*extra: str, header: str = HEADER, rows: list[str] | None = None) -> str:
    """The good sheet (three rows 2-4) plus ``extra`` rows from row 5."""
    return "\n".join([header, *(ROWS if rows is None else rows), *extra]) + "\n"


def _xlsx(cells: dict[str, object], *, merge: str | None = None, header: str = HEADER,
          rows: list[str] | None = None) -> Callable[[Path], None]:
    """A workbook of the good sheet with some cells overwritten."""

    def write(path: Path) -> None:
        openpyxl = pytest.importorskip("openpyxl")
        book = openpyxl.Workbook()
        ws = book.active
        for line in [header, *(ROWS if rows is None else rows)]:
            ws.append([int(v) if v.isdigit() else (v or None) for v in line.split(",")])
        for ref, value in cells.items():
            ws[ref] = value
        if merge:
            ws.merge_cells(merge)
        book.save(path)

    return write


DESIGN_CASES: list[tuple[str, str, str | bytes | Callable[[Path], None], str, str]] = [
    # (id, sheet file name, content, location in the message, hint in the message)
    # ---- columns
    ("no-assay-column", "s.csv", "file,cell_line\na1.fcs,p\n",
     r"s\.csv: no 'assay' column \(columns are file, cell_line\)", r"add one"),
    ("misspelt-column", "s.csv", _csv(header=HEADER.replace("cell_line", "Cel line")),
     r"s\.csv row 1: column 'Cel line' is not a known column", r"if it is meant as 'cell_line', rename it"),
    ("misspelt-role-column", "s.csv", _csv(header=HEADER.replace("role", "Rol")),
     r"s\.csv row 1: column 'Rol' is not a known column", r"if it is meant as 'role', rename it"),
    ("glued-drug-column", "s.csv", "file,assay,cell_line,drugA,doseA\na1.fcs,cellcycle,p,x,1\n",
     r"s\.csv row 1: column 'drugA' is not a known column", r"if it is meant as 'drug_a', rename it"),
    ("duplicate-column", "s.csv", _csv(header=HEADER + ",Cell Line", rows=[r + ",p" for r in ROWS]),
     r"s\.csv row 1: columns C \('cell_line'\) and H \('Cell Line'\) both mean 'cell_line'", r"keep one"),
    ("reserved-column", "s.csv", _csv(header=HEADER.replace("group", "sheet_row")),
     r"s\.csv row 1: column 'sheet_row' is reserved", r"rename it"),
    ("unnamed-column", "s.csv", _csv("b.fcs,apoptosis,p,vehicle,3,sample,p,extra"),
     r"s\.csv row 1: column H has values but no name", r"give it a header"),
    ("drug-without-dose", "s.csv", "file,assay,cell_line,drug_a\na1.fcs,cellcycle,p,x\n",
     r"s\.csv row 1: drug column 'drug_a' has no dose column 'dose_a'", r"add it \(0 = not given\)"),
    ("title-above-header", "s.csv", "Experiment 12,,\nrun by AB,,\n" + _csv(),
     r"s\.csv row 1: the header \(file, assay, \.\.\.\) is in row 3", r"delete the rows above it"),
    # ---- cells
    ("replicate-word", "s.csv", _csv("b.fcs,apoptosis,p,vehicle,two,sample,p"),
     r"s\.csv row 5: replicate 'two' is not a whole number", r"number the replicates of each arm 1, 2"),
    ("replicate-negative", "s.csv", _csv("b.fcs,apoptosis,p,vehicle,-1,sample,p"),
     r"s\.csv row 5: replicate '-1' is not a whole number", r"number the replicates"),
    ("replicate-fraction", "s.csv", _csv("b.fcs,apoptosis,p,vehicle,1.5,sample,p"),
     r"s\.csv row 5: replicate '1\.5' is not a whole number", r"number the replicates"),
    ("replicate-huge", "s.csv", _csv("b.fcs,apoptosis,p,vehicle,1e20,sample,p"),
     r"s\.csv row 5: replicate '1e20' is not a plausible replicate number", r"number the replicates"),
    ("replicate-empty", "s.csv", _csv("b.fcs,apoptosis,p,vehicle,,sample,p"),
     r"s\.csv row 5: replicate is empty", r"delete the replicate column to number replicates"),
    ("dose-negative", "s.csv", "file,assay,cell_line,drug_a,dose_a\na1.fcs,cellcycle,p,x,-1\n",
     r"s\.csv row 2: dose_a -1 is negative", r"doses are >= 0"),
    ("dose-word", "s.csv", "file,assay,cell_line,drug_a,dose_a\na1.fcs,cellcycle,p,x,abc\n",
     r"s\.csv row 2: dose_a 'abc' is not a number", r"write the number only"),
    ("dose-with-unit", "s.csv", "file,assay,cell_line,drug_a,dose_a\na1.fcs,cellcycle,p,x,10 nM\n",
     r"s\.csv row 2: dose_a '10 nM' is not a number", r"put the unit in a free column"),
    ("dose-infinite", "s.csv", "file,assay,cell_line,drug_a,dose_a\na1.fcs,cellcycle,p,x,inf\n",
     r"s\.csv row 2: dose_a 'inf' is not a number", r"write the number only"),
    ("dose-without-drug", "s.csv", "file,assay,cell_line,drug_a,dose_a\na1.fcs,cellcycle,p,,5\n",
     r"s\.csv row 2: dose_a is 5 but drug_a is empty", r"name the drug or set dose_a to 0"),
    ("unknown-role", "s.csv", _csv("b.fcs,apoptosis,p,vehicle,3,unstaned,p"),
     r"s\.csv row 5: role 'unstaned' is not known", r"did you mean 'unstained'\?.*use one of sample"),
    ("unknown-assay", "s.csv", _csv("b.fcs,apoptosys,p,vehicle,3,sample,p"),
     r"s\.csv row 5: assay 'apoptosys' is not known", r"did you mean 'apoptosis'\?"),
    ("empty-file-cell", "s.csv", _csv(",apoptosis,p,vehicle,3,sample,p"),
     r"s\.csv row 5: file is empty", r"give the FCS file's path relative to the sheet's folder"),
    ("empty-cell-line", "s.csv", _csv("b.fcs,apoptosis,,vehicle,3,sample,p"),
     r"s\.csv row 5: cell_line is empty", r"every sample needs its cell line"),
    # ---- rows together
    ("duplicate-file", "s.csv", _csv("a1.fcs,apoptosis,p,vehicle,3,sample,p"),
     r"s\.csv rows 2 and 5: the same file 'a1\.fcs' is listed twice", r"delete the extra row"),
    ("duplicate-file-via-dotdot", "s.csv", _csv("sub/../a1.fcs,apoptosis,p,vehicle,3,sample,p"),
     r"s\.csv rows 2 and 5: the same file 'sub/\.\./a1\.fcs' is listed twice", r"delete the extra row"),
    ("duplicate-replicate", "s.csv", _csv("b.fcs,apoptosis,p,vehicle,1,sample,p"),
     r"s\.csv rows 2 and 5: apoptosis 'p' vehicle replicate 1 appears 2 times",
     r"give each replicate its own number"),
    ("group-without-controls", "s.csv", _csv("b.fcs,apoptosis,q,vehicle,1,sample,q"),
     r"s\.csv row 5: apoptosis group 'q' \(1 sample\) has no unstained control",
     r"add a row with role unstained and group 'q'"),
    ("two-unstained", "s.csv", _csv("b.fcs,apoptosis,p,none,,unstained,p"),
     r"s\.csv rows 4 and 5: group 'p' has 2 unstained controls", r"keep one"),
    ("control-in-cellcycle", "s.csv", _csv("b.fcs,cellcycle,p,none,,pi_only,p"),
     r"s\.csv row 5: role 'pi_only' is an apoptosis control but the assay is cellcycle",
     r"set role to sample, or assay to apoptosis"),
    ("control-without-group", "s.csv", _csv("b.fcs,apoptosis,,none,,pi_only,"),
     r"s\.csv row 5: pi_only control has neither group nor cell_line", r"fill in group"),
    ("missing-file", "s.csv", _csv("nope.fcs,apoptosis,p,vehicle,3,sample,p"),
     r"s\.csv row 5: file 'nope\.fcs' does not exist", r"fix the path or remove the row"),
    ("file-is-folder", "s.csv", _csv("sub,apoptosis,p,vehicle,3,sample,p"),
     r"s\.csv row 5: file 'sub' is a folder", r"fix the path or remove the row"),
    # ---- the sheet as a file
    ("empty-sheet", "s.csv", "", r"s\.csv: the sheet is empty", r"it needs a header row"),
    ("blank-sheet", "s.csv", "\n,,,\n\n", r"s\.csv: the sheet is empty", r"it needs a header row"),
    ("header-only", "s.csv", HEADER + "\n", r"s\.csv: the sheet has a header but no rows",
     r"add one row per FCS file"),
    ("unclosed-quote", "s.csv", _csv('b.fcs,apoptosis,p,"vehicle,3,sample,p'),
     r"s\.csv cannot be read as comma-separated text: row 5: a cell opens a quote",
     r"close it, or delete the stray quote"),
    ("text-after-quote", "s.csv", _csv('b.fcs,apoptosis,p,"vehicle"x,3,sample,p'),
     r"s\.csv cannot be read as comma-separated text: row 5: a cell has text after its closing quote",
     r"quote the whole cell"),
    ("huge-cell", "s.csv", _csv("b.fcs,apoptosis,p," + "x" * 200_000 + ",3,sample,p"),
     r"s\.csv cannot be read as comma-separated text: row 5: a cell is longer than", r"check the file"),
    ("too-many-columns", "s.csv", _csv("b.fcs" + "," * 600),
     r"s\.csv has 5 rows and 601 columns", r"delete the stray cells below or right of the table"),
    ("too-many-rows", "s.csv", _csv() + "\n" * 100_001,
     r"s\.csv has 100,001 rows", r"delete the stray cells below or right of the table"),
    ("utf16-without-bom", "s.csv", _csv().encode("utf-16-le"),
     r"s\.csv is not text: it looks like UTF-16 text without a byte-order mark", r"save it as CSV UTF-8"),
    ("binary", "s.csv", bytes(range(256)) * 4, r"s\.csv is not text: it looks like a binary file",
     r"a design sheet is CSV, TSV or \.xlsx"),
    ("workbook-named-csv", "s.csv", b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + b"\x00" * 40,
     r"s\.csv is not text: it looks like an Excel workbook", r"rename it to \.xlsx"),
    ("text-named-xlsx", "s.xlsx", _csv(), r"s\.xlsx cannot be read as an Excel workbook: it is text",
     r"give it a \.csv or \.tsv name"),
    ("encrypted-xlsx", "s.xlsx", bytes.fromhex("D0CF11E0A1B11AE1") + b"\x00" * 600,
     r"s\.xlsx cannot be read as an Excel workbook: it is encrypted", r"remove the password"),
    ("damaged-xlsx", "s.xlsx", b"PK\x03\x04 damaged",
     r"s\.xlsx cannot be read as an Excel workbook: it is a damaged zip file", r"save it again from Excel"),
    ("old-xls", "s.xls", b"", r"s\.xls: old \.xls workbooks are not read", r"save it as \.xlsx or CSV"),
    ("unknown-suffix", "s.json", "{}", r"s\.json: unknown file type '\.json'", r"use \.csv, \.tsv"),
    # ---- Excel
    ("excel-merged-header", "s.xlsx", _xlsx({}, merge="C1:D1"),
     r"s\.xlsx row 1: column D has values but no name", r"a merged header cell names only its first"),
    ("excel-blank-header", "s.xlsx", _xlsx({"B1": None}),
     r"s\.xlsx row 1: column B has values but no name", r"give it a header"),
    ("excel-formula-not-saved", "s.xlsx", _xlsx({"A2": '=CONCATENATE("a", "1.fcs")'}),
     r"s\.xlsx row 2: cell A2 holds a formula \(=CONCATENATE", r"open and save it in Excel"),
    ("excel-error-cell", "s.xlsx", _xlsx({"E3": "#DIV/0!"}),
     r"s\.xlsx row 3: cell E3 holds the Excel error #DIV/0!", r"fix its formula or type the value"),
    ("excel-stray-far-cell", "s.xlsx", _xlsx({"XFD1048576": "x"}),
     r"s\.xlsx has 1,048,576 rows and 16,384 columns", r"delete the stray cells"),
    ("excel-replicate-fraction", "s.xlsx", _xlsx({"E3": 2.5}),
     r"s\.xlsx row 3: replicate '2\.5' is not a whole number", r"number the replicates"),
]


@pytest.mark.parametrize(("name", "content", "location", "hint"), [c[1:] for c in DESIGN_CASES],
                         ids=[c[0] for c in DESIGN_CASES])
def test_bad_design(tmp_path: Path, name: str, content: str | bytes | Callable[[Path], None],
                    location: str, hint: str) -> None:
    for file in FILES:
        (tmp_path / file).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    sheet = tmp_path / name
    if isinstance(content, str):
        sheet.write_text(content, encoding="utf-8")
    elif isinstance(content, bytes):
        sheet.write_bytes(content)
    else:
        content(sheet)
    start = time.perf_counter()
    with pytest.raises(DesignError) as exc:
        read_design(sheet)
    assert time.perf_counter() - start < 5.0
    message = str(exc.value)
    assert str(sheet) in message
    assert re.search(location, message), message
    assert re.search(hint, message), message


def test_design_sheet_too_big(tmp_path: Path) -> None:
    sheet = tmp_path / "huge.csv"
    with sheet.open("wb") as fh:
        fh.truncate(33 * 2**20)  # sparse: quick to make
    with pytest.raises(DesignError, match=r"huge\.csv is larger than 32 MiB; .*check that this is the sheet"):
        read_design(sheet)


def test_missing_worksheet_is_named(tmp_path: Path) -> None:
    sheet = tmp_path / "s.xlsx"
    _xlsx({})(sheet)
    with pytest.raises(DesignError, match=r"s\.xlsx has no worksheet named 'Sheet 1' \(did you mean "
                                          r"'Sheet'\?\); its worksheets are 'Sheet'"):
        read_design(sheet, check_files=False, worksheet="Sheet 1")
    with pytest.raises(DesignError, match=r"s\.xlsx has no worksheet 3 \(counted from 0\)"):
        read_design(sheet, check_files=False, worksheet=3)


def test_misspelt_free_column_is_carried_with_a_warning(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    for file in FILES:
        (tmp_path / file).write_bytes(b"")
    sheet = tmp_path / "s.csv"
    sheet.write_text(_csv(header=HEADER.replace("group", "grup")), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="cytoflow_res.io.design"):
        design = read_design(sheet)
    assert design.warnings == ("s.csv row 1: column 'grup' is not a known column, so it is carried through "
                               "as a free column; if it is meant as 'group', rename it",)
    assert design.table["grup"].tolist() == ["p", "p", "p"]
    assert design.warnings[0] in caplog.text


@pytest.mark.parametrize(
    ("encoding", "data"),
    [
        ("latin-1", _csv("caf\u00e9.fcs,apoptosis,p,vehicle,3,sample,p").encode("latin-1")),
        ("cp1252", _csv("b\u2019.fcs,apoptosis,p,vehicle,3,sample,p").encode("cp1252")),
        ("utf-8-bom", codecs.BOM_UTF8 + _csv("caf\u00e9.fcs,apoptosis,p,vehicle,3,sample,p").encode()),
        ("utf-16-bom", _csv("caf\u00e9.fcs,apoptosis,p,vehicle,3,sample,p").encode("utf-16")),
        ("utf-16-tab", _csv("caf\u00e9.fcs,apoptosis,p,vehicle,3,sample,p").replace(",", "\t")
         .encode("utf-16")),
    ],
)
def test_design_encodings_that_are_fine(tmp_path: Path, encoding: str, data: bytes) -> None:
    sheet = tmp_path / "s.txt"
    sheet.write_bytes(data)
    design = read_design(sheet, check_files=False)
    assert design.table["file"].iloc[-1] in ("caf\u00e9.fcs", "b\u2019.fcs"), encoding
    assert design.table["sheet_row"].tolist() == [2, 3, 4, 5]


def test_paths_outside_the_folder_follow_the_documented_policy(tmp_path: Path) -> None:
    """Relative to the sheet's folder, ``..`` and absolute paths included (module docstring)."""
    (tmp_path / "data").mkdir()
    outside = tmp_path / "elsewhere.fcs"
    outside.write_bytes(b"")
    absolute = tmp_path / "absolute.fcs"
    absolute.write_bytes(b"")
    for file in FILES:
        (tmp_path / "data" / file).write_bytes(b"")
    sheet = tmp_path / "data" / "s.csv"
    sheet.write_text(_csv("../elsewhere.fcs,apoptosis,p,vehicle,3,sample,p",
                          f"{absolute},apoptosis,p,vehicle,4,sample,p"), encoding="utf-8")
    paths = read_design(sheet).table["path"].tolist()
    assert paths[-2:] == [str(outside), str(absolute)]


# ------------------------------------------------------------------ fuzzing

SHIPPED_YAML = sorted((REPO_ROOT / "gating_templates").glob("*.yaml"))
YAML_BITS = [b"[", b"]", b"{", b"}", b": ", b"- ", b"&a ", b"*a", b"<<: *a", b"!!python/none ", b"\t",
             b"\n", b"'", b'"', b"#", b"---\n", b"~", b".nan", b"-1", b"1e999", b"\x00", b"\xff", b"yes",
             b"? ", b"|\n", b"!!set ", b"!!binary ", b"2024-13-45", b"  ", codecs.BOM_UTF8]
CSV_BITS = [b",", b";", b"\t", b"\n", b'"', b"\r", b"\x00", b"\xff\xfe", b"1e400", b"-1", b"nan", b"+",
            b"../", b"=1+1", b"unstained", b"pi_only", b"cellcycle", b"drug_a", b"dose_a", b"role",
            b"group", b"replicate", b",,,,", b"\xef\xbb\xbf", b"1,5", b"#REF!"]


def _mutations(bits: list[bytes]) -> st.SearchStrategy[list[tuple[float, int, bytes]]]:
    """Edits as (where, how many bytes to delete, what to insert)."""
    insert = st.one_of(st.sampled_from(bits), st.binary(min_size=1, max_size=4))
    return st.lists(st.tuples(st.floats(0, 1), st.integers(0, 30), insert), min_size=1, max_size=6)


def _mutate(data: bytes, edits: list[tuple[float, int, bytes]]) -> bytes:
    out = bytearray(data)
    for where, cut, insert in edits:
        i = int(where * len(out))
        out[i:i + cut] = insert
    return bytes(out)


@FUZZ
@given(source=st.sampled_from(SHIPPED_YAML), edits=_mutations(YAML_BITS))
def test_mutated_templates_only_raise_template_error(tmp_path: Path, source: Path,
                                                     edits: list[tuple[float, int, bytes]]) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(_mutate(source.read_bytes(), edits))
    start = time.perf_counter()
    try:
        load_template(path)
    except TemplateError as exc:
        assert str(exc).startswith(str(path))
    assert time.perf_counter() - start < 2.0


@FUZZ
@given(edits=_mutations(CSV_BITS), check_files=st.booleans())
def test_mutated_design_sheets_only_raise_design_error(tmp_path: Path, edits: list[tuple[float, int, bytes]],
                                                       check_files: bool) -> None:
    path = tmp_path / "fuzz.csv"
    path.write_bytes(_mutate((REPO_ROOT / "example_fcs" / "design.csv").read_bytes(), edits))
    logging.disable(logging.WARNING)  # the warnings of the odd sheets that pass are not the point
    try:
        read_design(path, check_files=check_files)
    except DesignError as exc:
        assert str(path) in str(exc)
    finally:
        logging.disable(logging.NOTSET)
