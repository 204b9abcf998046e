"""The ``cytoflow-res`` command line: thin wrappers that parse arguments and call the library.

Exit codes: 0 success, 1 a data error in at least one input (the others are still
processed), 2 a usage error.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from cytoflow_res._version import __version__
from cytoflow_res.errors import CytoflowResError

__all__ = ["main"]

EXIT_OK = 0
EXIT_DATA_ERROR = 1
#: Stopped with Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are returned as exit code 2, not raised as SystemExit."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise _UsageError(message)


class _UsageError(Exception):
    pass


def _build_parser() -> _Parser:
    parser = _Parser(
        prog="cytoflow-res",
        description="Apoptosis and cell-cycle results from raw cytometer exports.",
    )
    parser.add_argument("--version", action="version", version=f"cytoflow-res {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show progress and warnings")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    info = sub.add_parser("info", help="describe FCS files: events, channels, instrument, spillover")
    info.add_argument("files", nargs="+", metavar="FILE", type=Path)
    info.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    info.add_argument("--dataset", type=int, default=0, help="data set index for multi-set files")

    cc = sub.add_parser("cellcycle", help="fit PI cell-cycle histograms (Dean-Jett-Fox); write cellcycle.csv")
    cc.add_argument("files", nargs="+", metavar="FILE", type=Path)
    cc.add_argument("--channel", default=None, help="DNA channel (default: PI-A, FL2-A, FL3-A, ...)")
    cc.add_argument("--template", default=None, metavar="NAME_OR_PATH",
                    help="cell-cycle template: DNA/width/height channel aliases, bins, doublets, model "
                         "(options given here override it)")
    cc.add_argument("--bins", type=int, default=None, help="histogram bins (default: min($PnR, 1024))")
    cc.add_argument("--model", choices=["auto", "djf", "watson"], default=None,
                    help="auto: components chosen by AIC (default); djf: ModFit-style fixed model")
    cc.add_argument("--doublets", choices=["auto", "width", "height", "none"], default=None,
                    help="doublet discrimination against the DNA width/height channel (default auto)")
    cc.add_argument("--linearity", default="shared", metavar="shared|free|VALUE",
                    help="G2/G1 ratio: 'shared' (default) fits it per sample, then fixes it at the "
                         "batch median where a sample's G2/M is too small to place; 'free' never "
                         "shares it; a number fixes it for every sample")
    cc.add_argument("--dataset", type=int, default=0, help="data set index for multi-set files")
    cc.add_argument("--out", type=Path, default=Path("."), metavar="DIR", help="output folder")

    ap = sub.add_parser("apoptosis", help="Annexin V / PI quadrants after compensation and pre-gating; "
                                          "write apoptosis.csv")
    ap.add_argument("files", nargs="+", metavar="FILE", type=Path)
    ap.add_argument("--template", default="generic_modern", metavar="NAME_OR_PATH",
                    help="gating template (default generic_modern; shipped: see `cytoflow-res templates`)")
    ap.add_argument("--control", type=Path, default=None, metavar="UNSTAINED.fcs",
                    help="unstained control (thresholds at its 99.5th percentile by default)")
    ap.add_argument("--annexin-only", type=Path, default=None, metavar="FILE",
                    help="Annexin V single-stain control")
    ap.add_argument("--pi-only", type=Path, default=None, metavar="FILE", help="PI single-stain control")
    ap.add_argument("--thresholds", type=float, nargs=2, default=None, metavar=("ANNEXIN", "PI"),
                    help="fixed thresholds in compensated data units (instead of controls)")
    ap.add_argument("--dataset", type=int, default=0, help="data set index for multi-set files")
    ap.add_argument("--out", type=Path, default=Path("."), metavar="DIR", help="output folder")

    run = sub.add_parser("run", help="analyse a whole experiment from its design sheet; write tables, "
                                     "results.xlsx and run.json")
    run.add_argument("design", type=Path, metavar="DESIGN",
                     help="design sheet (.csv, .tsv or .xlsx): file, assay, cell_line, treatment or "
                          "drug/dose columns, replicate, role, group")
    _add_run_options(run, out_default=None)

    demo = sub.add_parser("demo", help="run the bundled example experiment (example_fcs/design.csv)")
    demo.add_argument("--out", type=Path, default=Path("demo_results"), metavar="DIR",
                      help="output folder (default demo_results)")
    demo.add_argument("--jobs", type=int, default=None, metavar="N", help="worker processes")
    demo.add_argument("--executor", choices=["serial", "process", "dask"], default=None,
                      help="serial (default), process (with --jobs N) or dask")
    demo.add_argument("--no-report", action="store_true",
                      help="skip DIR/figures/ and DIR/report.html (tables only)")

    tp = sub.add_parser("templates", help="list the shipped gating templates")
    tp.add_argument("--show", metavar="NAME", default=None, help="print one template's YAML")

    sim = sub.add_parser(
        "simulate", help="write the simulated example experiment (FCS files, design.csv, truth.json)"
    )
    sim.add_argument("outdir", type=Path, metavar="OUTDIR")
    sim.add_argument("--seed", type=int, default=None, help="random seed (default: the example's)")
    return parser


def _add_run_options(parser: argparse.ArgumentParser, *, out_default: Path | None) -> None:
    parser.add_argument("--out", type=Path, default=out_default, required=out_default is None,
                        metavar="DIR", help="output folder")
    parser.add_argument("--template", action="append", default=None, metavar="NAME_OR_PATH",
                        help="gating template, once per assay (default: generic_modern for apoptosis; "
                             "cell cycle finds the DNA channel by name)")
    parser.add_argument("--jobs", type=int, default=None, metavar="N",
                        help="worker processes (process executor; default all cores) or local dask workers")
    parser.add_argument("--executor", choices=["serial", "process", "dask"], default=None,
                        help="serial (default; process when --jobs > 1), process, or dask")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="dask scheduler address, e.g. tcp://10.0.0.5:8786 (implies --executor dask)")
    parser.add_argument("--linearity", default="shared", metavar="shared|free|VALUE",
                        help="cell-cycle G2/G1 ratio, as for the cellcycle command")
    parser.add_argument("--dataset", type=int, default=0, help="data set index for multi-set files")
    parser.add_argument("--no-report", action="store_true",
                        help="skip DIR/figures/ and DIR/report.html (tables only)")
    parser.add_argument("--resume", action="store_true",
                        help="take every sample already analysed in DIR/journal (same file bytes, "
                             "settings and version) from there instead of analysing it again; "
                             "failed samples are retried")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Parameters
    ----------
    argv
        Arguments without the program name; ``sys.argv[1:]`` when None.

    Returns
    -------
    int
        The exit code.
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError:
        return EXIT_USAGE
    except SystemExit as exc:  # --help / --version
        return int(exc.code or 0)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    handler = {
        "info": _cmd_info, "simulate": _cmd_simulate, "cellcycle": _cmd_cellcycle,
        "apoptosis": _cmd_apoptosis, "templates": _cmd_templates, "run": _cmd_run, "demo": _cmd_demo,
    }[args.command]
    try:
        return handler(args)
    except CytoflowResError as exc:
        print(f"cytoflow-res: error: {exc}", file=sys.stderr)
        return EXIT_DATA_ERROR
    except KeyboardInterrupt:
        hint = ""
        if args.command == "run" and (args.out / "journal").is_dir():
            hint = (f"; the samples already finished are kept in {args.out / 'journal'}: add --resume to "
                    "the same command to go on from there")
        print(f"cytoflow-res: interrupted{hint}", file=sys.stderr)
        return EXIT_INTERRUPTED


def _cmd_info(args: argparse.Namespace) -> int:
    from cytoflow_res.io.fcs import read_fcs

    status = EXIT_OK
    documents: list[dict[str, Any]] = []
    for path in args.files:
        try:
            sample = read_fcs(path, dataset=args.dataset)
            doc = sample.summary()
        except CytoflowResError as exc:
            status = EXIT_DATA_ERROR
            print(f"cytoflow-res: error: {exc}", file=sys.stderr)
            documents.append({"file": str(path), "error": str(exc)})
            continue
        documents.append(doc)
        if not args.json:
            _print_info(doc, sys.stdout)
    if args.json:
        json.dump({"cytoflow_res_version": __version__, "files": documents}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return status


def _print_info(doc: dict[str, Any], out: TextIO) -> None:
    spill = doc["spillover"]
    if spill is None:
        spill_text = "none"
    elif "error" in spill:
        spill_text = "malformed keyword (cannot compensate from the file)"
    else:
        spill_text = f"{spill['keyword']} ({len(spill['channels'])} channels)"
    out.write(f"{doc['file']}\n")
    out.write(
        f"  {doc['fcs_version']}, datatype {doc['datatype']}, {doc['n_events']} events, "
        f"{doc['n_channels']} channels, cytometer {doc['cytometer'] or 'unknown'}, "
        f"spillover: {spill_text}\n"
    )
    for i, ch in enumerate(doc["channels"], start=1):
        scale = f"log {ch['log_decades']:g} decades" if ch["log_decades"] else "linear"
        label = ch["label"] if ch["label"] and ch["label"] != ch["name"] else ""
        out.write(f"  {i:>3}  {ch['name']:<20} {label:<24} range {ch['range']:<12g} {scale}\n")


def _linearity_option(text: str) -> float | None:
    if text in ("shared", "free"):
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 1.0 < value < 3.0:
        msg = f"--linearity must be 'shared', 'free' or a number between 1 and 3, not {text!r}"
        raise _UsageError(msg)
    return value


def _write_table(frame: Any, leading: Sequence[str], path: Path) -> tuple[Any, Path]:
    """Put the ``leading`` columns first (empty where no row has them) and write the CSV atomically."""
    from cytoflow_res.io.export import write_csv_atomic

    for col in leading:
        if col not in frame.columns:
            frame[col] = None
    frame = frame[[*leading, *(c for c in frame.columns if c not in leading)]]
    path.parent.mkdir(parents=True, exist_ok=True)
    return frame, write_csv_atomic(frame, path)


def _cmd_cellcycle(args: argparse.Namespace) -> int:
    import pandas as pd

    from cytoflow_res.experiment import (
        CELLCYCLE_COLUMNS,
        CellCycleSettings,
        analyze_cellcycle_file,
        cellcycle_row,
        share_run_linearity,
    )
    from cytoflow_res.gating.templates import load_template
    from cytoflow_res.stats import FAILED_STATUSES

    try:
        fixed_linearity = _linearity_option(args.linearity)
    except _UsageError as exc:
        print(f"cytoflow-res cellcycle: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    template = None
    if args.template is not None:
        template = load_template(args.template)
        if template.cellcycle is None:
            msg = (f"template {template.name!r} is an {template.assay} template; cellcycle needs a "
                   "cell-cycle template such as generic_cellcycle")
            print(f"cytoflow-res cellcycle: error: {msg}", file=sys.stderr)
            return EXIT_USAGE
    settings = CellCycleSettings(
        template=template, channel=args.channel, bins=args.bins, doublets=args.doublets, model=args.model,
        linearity=args.linearity if fixed_linearity is None else fixed_linearity, dataset=args.dataset,
    )
    rows: list[dict[str, Any]] = []
    fits: list[Any] = []
    for path in args.files:
        row, fit = analyze_cellcycle_file(path, settings)
        if fit is None:
            print(f"cytoflow-res: error: {row['message']}", file=sys.stderr)
        rows.append(row)
        fits.append(fit)
    fits = share_run_linearity(fits, settings)
    status = EXIT_OK
    for path, fit in zip(args.files, fits, strict=True):
        if fit is None or fit.status == "failed":
            status = EXIT_DATA_ERROR
        if fit is not None:
            logging.getLogger(__name__).info("%s: %s %s", path, fit.status, fit.message)
    frame = pd.DataFrame([cellcycle_row(row, fit) for row, fit in zip(rows, fits, strict=True)])
    frame, out = _write_table(frame, CELLCYCLE_COLUMNS, args.out / "cellcycle.csv")
    n_bad = int(frame["status"].isin(FAILED_STATUSES).sum())
    print(f"wrote {out} ({len(frame)} samples, {n_bad} failed)")
    return status


def _cmd_apoptosis(args: argparse.Namespace) -> int:
    import pandas as pd

    from cytoflow_res.apoptosis import APOPTOSIS_COLUMNS, ApoptosisGating
    from cytoflow_res.io.fcs import read_fcs

    # Template, controls and thresholds are set up once; a problem there stops the run (exit 1)
    # because no sample could be analysed the way the user asked.
    def control(path: Path | None) -> Any:
        return None if path is None else read_fcs(path, dataset=args.dataset)

    gating = ApoptosisGating.prepare(
        args.template, unstained=control(args.control), annexin_only=control(args.annexin_only),
        pi_only=control(args.pi_only), thresholds=tuple(args.thresholds) if args.thresholds else None,
    )
    logging.getLogger(__name__).info(
        "thresholds: Annexin V %.6g, PI %.6g (%s)", gating.thresholds.annexin, gating.thresholds.pi,
        gating.thresholds.source,
    )
    frames: list[pd.DataFrame] = []
    status = EXIT_OK
    for path in args.files:
        try:
            result = gating.analyze(read_fcs(path, dataset=args.dataset), file=path)
            frames.append(result.to_frame())
            logging.getLogger(__name__).info("%s: %s %s", path, result.status, result.message)
        except CytoflowResError as exc:
            status = EXIT_DATA_ERROR
            frames.append(pd.DataFrame([{"sample_id": path.stem, "file": str(path), "status": "error",
                                         "message": str(exc)}]))
            print(f"cytoflow-res: error: {exc}", file=sys.stderr)
    frame = pd.concat(frames, ignore_index=True)
    frame, out = _write_table(frame, APOPTOSIS_COLUMNS, args.out / "apoptosis.csv")
    n_bad = int((frame["status"] == "error").sum())
    print(f"wrote {out} ({len(frame)} samples, {n_bad} failed; thresholds Annexin V "
          f"{gating.thresholds.annexin:.6g}, PI {gating.thresholds.pi:.6g})")
    return status


def _cmd_run(args: argparse.Namespace) -> int:
    from cytoflow_res.experiment import Experiment

    try:
        linearity = _linearity_option(args.linearity)
    except _UsageError as exc:
        print(f"cytoflow-res run: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.jobs is not None and args.jobs < 1:
        print(f"cytoflow-res run: error: --jobs must be at least 1, not {args.jobs}", file=sys.stderr)
        return EXIT_USAGE
    executor = args.executor
    if executor is None:
        executor = "dask" if args.scheduler else ("process" if (args.jobs or 1) > 1 else "serial")
    elif args.scheduler and executor != "dask":
        print("cytoflow-res run: error: --scheduler needs --executor dask", file=sys.stderr)
        return EXIT_USAGE
    experiment = Experiment.from_design(args.design)
    for warning in experiment.design.warnings:
        print(f"cytoflow-res: warning: {warning}", file=sys.stderr)
    result = experiment.run(
        template=args.template, n_jobs=args.jobs, executor=executor, scheduler=args.scheduler,
        linearity=args.linearity if linearity is None else linearity, dataset=args.dataset,
        journal=args.out / "journal", resume=args.resume,
    )
    written = result.write(args.out)
    if not args.no_report:
        from cytoflow_res.report import write_figures, write_report

        drawers = args.jobs or 1  # figures and thumbnails are drawn by as many local processes
        figures = write_figures(result, args.out, n_jobs=drawers)
        written["figures"] = args.out / "figures"
        written["report"] = write_report(result, args.out, figures=figures, n_jobs=drawers)
    _report_run(result, written, args.out)
    return EXIT_OK if result.ok else EXIT_DATA_ERROR


def _report_run(result: Any, written: dict[str, Path], out: Path) -> None:
    """What the user sees after a run: the files, the failures and the combination calls."""
    from cytoflow_res.stats import FAILED_STATUSES

    reused = int(result.files["from_journal"].sum())
    again = f" ({reused} samples taken from the journal)" if reused else ""
    print(f"{result.design.sheet.name}: analysed in {result.seconds:.1f} s{again}; wrote to {out}/")
    for name in ("apoptosis", "cellcycle"):
        frame = getattr(result, name)
        if frame.empty:
            continue
        n_bad = int(frame["status"].isin(FAILED_STATUSES).sum())
        n_warn = int((frame["status"] == "warn").sum())
        print(f"  {written[name].name:<16} {len(frame)} samples, {n_bad} failed, {n_warn} with warnings")
    for name in ("summary", "comparisons", "synergy", "errors"):
        print(f"  {written[name].name:<16} {len(result.tables()[name])} rows")
    print(f"  {written['xlsx'].name:<16} every table, one sheet each")
    print(f"  {written['run'].name:<16} versions, settings, thresholds, input checksums")
    print(f"  {'journal/':<16} one entry per finished sample (for --resume)")
    if "report" in written:
        n_figures = sum(1 for p in written["figures"].iterdir() if p.is_file())
        print(f"  {'figures/':<16} {n_figures} files (PNG, SVG, PDF)")
        print(f"  {written['report'].name:<16} self-contained HTML report: open it in a browser")
    synergy = result.synergy()
    for _, row in synergy[synergy["metric"] == "Bliss/HSA"].iterrows():
        print(f"  {row['assay']} {row['cell_line']} {row['measure']}: Bliss excess "
              f"{100 * row['bliss_excess']:+.1f} points [{100 * row['bliss_ci_low']:+.1f}, "
              f"{100 * row['bliss_ci_high']:+.1f}], p = {row['bliss_p']:.3g}: {row['call']}")
    for _, row in result.errors.iterrows():
        print(f"cytoflow-res: error: {row['file']}: {row['message']}", file=sys.stderr)


def _cmd_demo(args: argparse.Namespace) -> int:
    import cytoflow_res

    design = Path(cytoflow_res.__file__).resolve().parent.parent / "example_fcs" / "design.csv"
    if not design.is_file():
        from cytoflow_res import simulate

        data = args.out / "example_fcs"
        print(f"example data not found next to the package; simulating it into {data}")
        data.mkdir(parents=True, exist_ok=True)
        simulate.write_experiment(data)
        design = data / "design.csv"
    argv = ["run", str(design), "--out", str(args.out)]
    if args.jobs is not None:
        argv += ["--jobs", str(args.jobs)]
    if args.executor is not None:
        argv += ["--executor", args.executor]
    if args.no_report:
        argv.append("--no-report")
    parser = _build_parser()
    return _cmd_run(parser.parse_args(argv))


def _cmd_templates(args: argparse.Namespace) -> int:
    from cytoflow_res.gating.templates import list_templates, load_template

    if args.show:
        tpl = load_template(args.show)
        source = tpl.source
        if source and Path(source).is_file():
            sys.stdout.write(Path(source).read_text(encoding="utf-8"))
        else:
            print(json.dumps(tpl.to_dict(), indent=2))
        return EXIT_OK
    for name in list_templates():
        tpl = load_template(name)
        first = (tpl.description or "").strip().splitlines()
        print(f"{name:<20} {tpl.assay:<10} {first[0] if first else ''}")
    return EXIT_OK


def _cmd_simulate(args: argparse.Namespace) -> int:
    from cytoflow_res import simulate

    kwargs: dict[str, Any] = {}
    if args.seed is not None:
        kwargs["seed"] = args.seed
    args.outdir.mkdir(parents=True, exist_ok=True)
    simulate.write_experiment(args.outdir, **kwargs)
    print(f"wrote the simulated experiment to {args.outdir} (design.csv, truth.json, FCS files)")
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
