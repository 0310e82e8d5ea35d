"""``python -m nclayers <step> ...``: the command behind each workflow rule.

Each step parses its arguments, makes one or two library calls and writes their results
atomically; the logic lives in the library modules, where the tests call it in-process.

A fault of the step's inputs ends it with one line on stderr, ``nclayers <step>: error: ...``,
naming the argument, file or key and the fix, and nothing written: exit status 2 for bad
arguments (as argparse), 1 for inputs that cannot be used (see :func:`main`). Anything else is
a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nclayers.errors import UserError
from nclayers.io import read_csv, write_csv
from nclayers.vocabulary import (
    AGGREGATE_TABLES,
    COLLAPSE_EPS,
    FEATURE_FIGURES,
    FIGURE_TABLES,
    FIGURES,
    INTERPOLATION_THRESHOLD,
    NCC_THRESHOLD,
    PAPER_FIGURE_READS,
    PAPER_FIGURES,
    PAPER_TABLES,
    WARD_SCALINGS,
    Thresholds,
)

# Heavy libraries (torch, matplotlib, umap) are imported inside the steps that use
# them, so that a short step starts fast.

# What a run's spec (``--spec``, and the run.json that train writes from it) must hold, as
# nclayers.experiment.expand_runs writes it; and of its sections, the keys train_run reads.
SPEC_KEYS = ("run", "dataset", "arch", "seed", "train", "device")
SPEC_SECTIONS = {"dataset": ("name", "label"), "arch": ("name", "label"),
                 "train": ("epochs", "batch_size", "lr", "checkpoints")}


class StepError(UserError):
    """An input of a step that cannot be used; the message names it and the fix."""


def spec_problem(spec: object) -> str | None:
    """What keeps ``spec`` from being a run's spec (missing keys, wrong types), or None."""
    if not isinstance(spec, dict):
        return f"is a JSON {type(spec).__name__}, not an object"
    missing = [key for key in SPEC_KEYS if key not in spec]
    wrong = []
    for section, keys in SPEC_SECTIONS.items():
        if section not in spec:
            continue
        if isinstance(spec[section], dict):
            missing += [f"{section}.{key}" for key in keys if key not in spec[section]]
        else:
            wrong.append(f"'{section}' must be an object, got {spec[section]!r}")
    if "seed" in spec and (not isinstance(spec["seed"], int) or isinstance(spec["seed"], bool)):
        wrong.append(f"'seed' must be an integer, got {spec['seed']!r}")
    problems = ([f"lacks {', '.join(map(repr, missing))}"] if missing else []) + wrong
    return "; ".join(problems) or None


def _spec(text: str) -> str:
    """``--spec``: checked to be a run's spec, passed on as the JSON text."""
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(
            f"not JSON ({error.msg}, column {error.colno}): pass the run's spec as one JSON "
            "object, as the workflow's train rule does") from None
    problem = spec_problem(spec)
    if problem:
        raise argparse.ArgumentTypeError(
            f"the spec {problem}: a run's spec holds {', '.join(SPEC_KEYS)}, as "
            "nclayers.experiment.expand_runs writes it")
    return text


DESIGN_HELP = ("each run's group and axis values and each group's selected axes, as JSON "
               "(nclayers.experiment.run_design)")


def _threshold_options(p: argparse.ArgumentParser) -> None:
    """The options of :class:`Thresholds` (``Thresholds.args`` writes them)."""
    p.add_argument("--collapse-eps", type=float, default=COLLAPSE_EPS)
    p.add_argument("--ncc-threshold", type=float, default=NCC_THRESHOLD)
    p.add_argument("--interpolation-threshold", type=float, default=INTERPOLATION_THRESHOLD)


def _json_object(text: str, keys: tuple[str, ...], writer: str) -> dict:
    """An argument that is a JSON object holding ``keys``, as ``writer`` writes it."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not JSON ({error.msg}, column {error.colno})"
                                         ) from None
    if not isinstance(value, dict) or not set(keys) <= set(value):
        raise argparse.ArgumentTypeError(f"must be a JSON object with keys {' and '.join(keys)}, "
                                         f"as {writer} writes it")
    return value


def _defaults(text: str) -> dict:
    """``--defaults``: {"dataset": {name: options}, "arch": {name: options}}."""
    return _json_object(text, ("dataset", "arch"), "nclayers.design.option_defaults")


def _thresholds(args: argparse.Namespace) -> Thresholds:
    return Thresholds(args.collapse_eps, args.ncc_threshold, args.interpolation_threshold)


def _design(text: str) -> dict:
    """``--design``: {"runs": {run: {"group", "axes"}}, "select": {group: [axes]}}."""
    return _json_object(text, ("runs", "select"), "nclayers.experiment.run_design")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def read_info(path: str | Path) -> dict:
    """A run.json written by the train step, checked to hold the run's spec."""
    rebuild = "delete it and rerun the workflow, whose train job for the run writes it"
    try:
        info = json.loads(Path(path).read_text())
    except json.JSONDecodeError as error:
        raise StepError(f"{path} is not valid JSON ({error.msg}, line {error.lineno} column "
                        f"{error.colno}): {rebuild}") from None
    problem = spec_problem(info)
    if problem:
        raise StepError(f"{path} {problem}: it is not a run.json written by the train step; "
                        f"{rebuild}")
    return info


def cmd_train(args: argparse.Namespace) -> None:
    from nclayers import runs
    from nclayers.preflight import check_spec

    spec = json.loads(args.spec)
    check_spec(spec)  # what `snakemake -n` checks of a config's runs, before any file is written
    info = runs.train_run(spec, Path(args.out_dir), resume_every=args.resume_every)
    print(f"done in {info['train_seconds']:.1f} s: train acc {info['final_train_acc']:.4f}, "
          f"test acc {info['final_test_acc']:.4f}" + (" (diverged)" if info["diverged"] else ""),
          flush=True)


def cmd_check_config(args: argparse.Namespace) -> None:
    import yaml

    from nclayers.preflight import check_yaml, prepare

    if not Path(args.config).is_file():
        raise StepError(f"{args.config} does not exist (or is not a file)")
    check_yaml(args.config)  # the file, line and column of what its text gets wrong
    experiment = prepare(yaml.safe_load(Path(args.config).read_text()), local=not args.cluster)
    print(f"{args.config}: valid; experiment {experiment.config['experiment']!r} of "
          f"{len(experiment.runs)} runs", flush=True)


def cmd_measure(args: argparse.Namespace) -> None:
    from nclayers import runs

    spec = read_info(args.info)
    metrics, spectra = runs.measure_checkpoints(spec, args.checkpoint, args.batch_size)
    write_csv(args.out, metrics)
    write_csv(args.spectra, spectra)
    print(f"{spec['run']}: {len(metrics)} values of {metrics['layer'].nunique()} layers at "
          f"{metrics['epoch'].nunique()} of {len(args.checkpoint)} checkpoints", flush=True)


def cmd_aggregate(args: argparse.Namespace) -> None:
    from nclayers.aggregate import aggregate_table

    table = aggregate_table(args.table, metrics=args.metrics, train_logs=args.train_logs,
                            spectra=args.spectra, epoch_metrics=args.epoch_metrics,
                            thresholds=_thresholds(args), design=args.design)
    write_csv(args.out, table)
    print(f"{args.table}: {len(table)} rows", flush=True)


def cmd_select(args: argparse.Namespace) -> None:
    from nclayers.sweeps import run_records, select_best

    table = select_best(run_records([read_info(p) for p in args.infos], args.design),
                        args.design)
    write_csv(args.out, table)
    print(f"selected {int(table['selected'].sum())} of {len(table)} runs; "
          f"{int(table['diverged'].sum())} diverged", flush=True)


def cmd_design(args: argparse.Namespace) -> None:
    from nclayers.design import design_table

    table = design_table([read_info(p) for p in args.infos], args.design, args.defaults)
    write_csv(args.out, table)
    print(f"the design of {len(table)} runs, {len(table.columns)} columns", flush=True)


def _save(fig, out: str) -> None:
    from nclayers.io import atomic_path

    # Every figure lays itself out (constrained layout, legends "outside" included), so the
    # page is the figure: bbox_inches="tight" only measured every artist once more (~0.2 s)
    # and padded the page by 0.1 in.
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=Path(out).suffix[1:])
    print(f"wrote {out}", flush=True)


def cmd_figure(args: argparse.Namespace) -> None:
    import pandas as pd

    from nclayers import plots
    from nclayers.sweeps import only_selected

    reads = FIGURE_TABLES[args.name]  # the workflow passes these tables alone
    missing = [t for t in reads if getattr(args, t) is None]
    if missing:
        raise StepError(f"figure {args.name} reads {', '.join(missing)}: pass "
                        + " ".join(f"--{t} tables/{t}.csv" for t in missing))
    runs = read_csv(args.runs_table)
    tables = {t: only_selected(read_csv(getattr(args, t)), runs) if t in reads else pd.DataFrame()
              for t in ("metrics", "training", "spectra")}
    plots.use_style()
    if all(tables[t].empty for t in reads):
        fig = plots.placeholder("no selected run: every run diverged (see tables/runs.csv)")
    else:
        fig = plots.FIGURES[args.name](*tables.values(), collapse_eps=args.collapse_eps)
        plots.finish(fig, runs)
    _save(fig, args.out)


def cmd_tables(args: argparse.Namespace) -> None:
    from nclayers import tables
    from nclayers.sweeps import only_selected

    runs = read_csv(args.runs_table)
    written = tables.write_all(only_selected(read_csv(args.metrics), runs),
                               only_selected(read_csv(args.training), runs), runs,
                               [read_info(p) for p in args.infos], Path(args.out_dir),
                               collapse_eps=args.collapse_eps)
    print("wrote " + ", ".join(map(str, written)), flush=True)


def cmd_features(args: argparse.Namespace) -> None:
    from nclayers import numba_cache

    folder = args.numba_cache or numba_cache.default_folder()
    try:  # before anything imports numba
        numba_cache.use_folder(folder)
    except OSError as error:  # e.g. a read-only home: compile, as without a cache
        print(f"warning: numba's cache folder {folder} cannot be used ({error}); UMAP's code is "
              "compiled in this job; set NCLAYERS_NUMBA_CACHE to a writable folder", flush=True)
    from nclayers import runs
    from nclayers.features import save_sample

    spec = read_info(args.info)
    sample, tables = runs.analyse_checkpoint(spec, args.checkpoint, args.per_class,
                                             threads=args.threads,
                                             ward_scaling=args.ward_scaling,
                                             max_bytes=args.memory_gib * 2**30)
    save_sample(Path(args.out_dir) / "sample.npz", sample)
    for name, table in tables.items():
        write_csv(Path(args.out_dir) / f"{name}.csv", table)
    print(f"{spec['run']}, {args.checkpoint}: features of "
          f"{tables['clusters']['layer'].nunique()} layers", flush=True)


def cmd_feature_tables(args: argparse.Namespace) -> None:
    import pandas as pd

    from nclayers.io import write_text
    from nclayers.tables import clusters_tex, retention_tex

    def concat(paths: list[str]) -> pd.DataFrame:
        return pd.concat([read_csv(p) for p in paths], ignore_index=True)

    write_text(args.out_clusters, clusters_tex(concat(args.clusters)))
    write_text(args.out_retention, retention_tex(concat(args.retention)))
    write_csv(args.out_pca_summary, concat(args.pca_summary))
    print(f"feature tables of {len(args.clusters)} runs and epochs", flush=True)


def cmd_feature_figures(args: argparse.Namespace) -> None:
    from nclayers import feature_plots, plots
    from nclayers.vocabulary import FEATURE_TABLES

    # All in one process: each figure alone would pay the imports and matplotlib's first
    # drawing again (~0.8 s of the ~1.2 s a figure took as a job of its own).
    unknown = [name for name in args.names if name not in FEATURE_FIGURES]
    if unknown:  # (argparse's choices refuse an empty list of names)
        raise StepError(f"argument name: no feature figure {', '.join(map(repr, unknown))}; "
                        f"the figures: {', '.join(FEATURE_FIGURES)}")
    tables = {name: read_csv(Path(args.dir) / f"{name}.csv") for name in FEATURE_TABLES}
    plots.use_style()
    diverged = tables["clusters"].empty  # then say so instead of failing the report
    for name in args.names or FEATURE_FIGURES:
        if diverged:
            fig = plots.placeholder(f"no feature analysis: the run diverged ({args.dir})")
        else:
            fig = feature_plots.FEATURE_FIGURES[name](tables)
            plots.fit_to_width(fig)
        _save(fig, str(Path(args.out_dir) / f"{name}.pdf"))


def _paper_tables(args: argparse.Namespace):
    from nclayers.papers import FEATURE_PAPER_TABLES, Tables

    known = (PAPER_FIGURES if args.step == "paper-figure" else PAPER_TABLES)[args.paper]
    if args.name not in known:
        raise StepError(f"argument name: {args.paper} has no {args.step[6:]} {args.name!r}; "
                        f"its {args.step[6:]}s: {', '.join(known)}")
    features = {name: getattr(args, name) for name in FEATURE_PAPER_TABLES}
    if args.step == "paper-table":  # a table reads every aggregated table
        return Tables.read(args.tables, features, _thresholds(args))
    return Tables.read(args.tables, features, _thresholds(args),
                       reads=PAPER_FIGURE_READS[args.paper][args.name],
                       who=f"figure {args.paper}/{args.name}")


def cmd_paper_figure(args: argparse.Namespace) -> None:
    from nclayers import plots
    from nclayers.papers import paper

    tables = _paper_tables(args)
    plots.use_style()
    if not tables.runs["selected"].any():
        fig = plots.placeholder("no selected run: every run diverged (see tables/runs.csv)")
    else:
        fig = paper(args.paper).FIGURES[args.name](tables)
        plots.finish(fig, tables.runs)
    _save(fig, args.out)


def cmd_paper_table(args: argparse.Namespace) -> None:
    from nclayers.io import write_text
    from nclayers.papers import paper
    from nclayers.papers.seeds import over_seeds
    from nclayers.tables import claims_tex, frame_tex

    tables = _paper_tables(args)
    table_of = paper(args.paper).TABLES[args.name]
    # claims: decided per seed (nclayers.papers.seeds.RULE)
    table = over_seeds(table_of, tables) if args.name == "claims" else table_of(tables)
    write_csv(args.out_csv, table)
    write_text(args.out_tex, claims_tex(table) if args.name == "claims" else frame_tex(table))
    print(f"wrote {args.out_csv} and {args.out_tex} ({len(table)} rows)", flush=True)


def cmd_report(args: argparse.Namespace) -> None:
    from nclayers.report import build_pdf, feature_macros, sections

    macros = feature_macros(args.runs_table, args.feature_figures, args.results)
    build_pdf(Path(args.tex), Path(args.results), Path(args.out), macros=macros,
              sections=sections(bool(args.feature_figures), args.papers))
    print(f"wrote {args.out}", flush=True)


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line naming the step and the argument; exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    # Each step's `inputs` name its arguments that are files (or folders) to read: main
    # checks that they exist before the step starts.
    parser = _Parser(prog="nclayers", description=__doc__)
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads for torch and BLAS (the rule's `threads`)")
    sub = parser.add_subparsers(dest="step", required=True)
    # Names mean one thing each: --info / --infos are run.json files, --runs-table is
    # tables/runs.csv.
    p = sub.add_parser("train", help="train one run, saving checkpoints and its log")
    p.add_argument("--spec", required=True, type=_spec, help="the run's spec as JSON")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--resume-every", type=_positive_int, default=1,
                   help="save the full training state every this many epochs")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("measure", help="NC metrics of every tapped layer of a run's checkpoints")
    p.add_argument("--info", required=True, help="the run's run.json")
    p.add_argument("--checkpoint", nargs="+", required=True,
                   help="one or more checkpoints of the run; their rows go in one table")
    p.add_argument("--batch-size", type=_positive_int, default=1024)
    p.add_argument("--out", required=True)
    p.add_argument("--spectra", required=True, help="where the weight spectra go")
    p.set_defaults(func=cmd_measure, inputs=("info", "checkpoint"))

    p = sub.add_parser("aggregate", help="collect the runs' files into one tidy table")
    p.add_argument("table", choices=AGGREGATE_TABLES)
    p.add_argument("--metrics", nargs="+", default=[], help="the runs' metrics.csv")
    p.add_argument("--train-logs", nargs="+", default=[], help="the runs' train_log.csv")
    p.add_argument("--spectra", nargs="+", default=[], help="the runs' spectra.csv")
    p.add_argument("--epoch-metrics", nargs="+", default=[],
                   help="the runs' epoch_metrics.csv (metrics measured inside training)")
    p.add_argument("--design", type=_design, default=None, help=DESIGN_HELP)
    _threshold_options(p)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_aggregate,
                   inputs=("metrics", "train_logs", "spectra", "epoch_metrics"))

    p = sub.add_parser("select", help="the table of runs, marking the best of each sweep")
    p.add_argument("--infos", nargs="+", required=True, help="the runs' run.json files")
    p.add_argument("--design", type=_design, default=None, help=DESIGN_HELP)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_select, inputs=("infos",))

    p = sub.add_parser("check-config", help="check a config file as `snakemake -n` does, "
                       "with the line and column of a YAML error")
    p.add_argument("config", help="the config file (e.g. my_experiment.yaml)")
    p.add_argument("--cluster", action="store_true",
                   help="the jobs run elsewhere: skip the check of device: cuda on this machine")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("design", help="the resolved design: a row per run, every setting")
    p.add_argument("--infos", nargs="+", required=True, help="the runs' run.json files")
    p.add_argument("--design", type=_design, default=None, help=DESIGN_HELP)
    p.add_argument("--defaults", type=_defaults, default=None,
                   help="JSON, nclayers.design.option_defaults of the runs (the workflow "
                   "passes it); computed here (importing torch) when left out")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_design, inputs=("infos",))

    p = sub.add_parser("figure", help="draw one figure from the tidy tables")
    p.add_argument("name", choices=FIGURES)
    p.add_argument("--metrics", help="tables/metrics.csv, for the figures that read it")
    p.add_argument("--training", help="tables/training.csv, for the figures that read it")
    p.add_argument("--runs-table", required=True, help="tables/runs.csv written by select")
    p.add_argument("--spectra", help="tables/spectra.csv, for the figures that read it")
    p.add_argument("--collapse-eps", type=float, default=COLLAPSE_EPS)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_figure, inputs=("metrics", "training", "runs_table", "spectra"))

    p = sub.add_parser("tables", help="LaTeX tables and macros for the report")
    p.add_argument("--metrics", required=True)
    p.add_argument("--training", required=True)
    p.add_argument("--runs-table", required=True, help="tables/runs.csv written by select")
    p.add_argument("--infos", nargs="+", required=True, help="the runs' run.json files")
    p.add_argument("--collapse-eps", type=float, default=COLLAPSE_EPS)
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_tables, inputs=("metrics", "training", "runs_table", "infos"))

    p = sub.add_parser("features", help="feature analysis of every layer of one checkpoint")
    p.add_argument("--info", required=True, help="the run's run.json")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--per-class", type=_positive_int, required=True)
    p.add_argument("--memory-gib", type=float, default=2.0,
                   help="the clustering's memory budget per layer (features.memory_gib)")
    p.add_argument("--ward-scaling", default=None, choices=WARD_SCALINGS,
                   help="how the ward clustering scales each layer (default: nclayers."
                   "features.DEFAULT_WARD_SCALING)")
    p.add_argument("--numba-cache", default=None,
                   help="numba's cache folder for UMAP's compiled code, shared by the jobs "
                   "(default: the user's, nclayers.numba_cache.default_folder())")
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_features, inputs=("info", "checkpoint"))

    p = sub.add_parser("feature-tables", help="the runs' feature tables for the report")
    p.add_argument("--clusters", nargs="+", required=True, help="the features jobs' CSVs")
    p.add_argument("--retention", nargs="+", required=True)
    p.add_argument("--pca-summary", nargs="+", required=True)
    p.add_argument("--out-clusters", required=True)
    p.add_argument("--out-retention", required=True)
    p.add_argument("--out-pca-summary", required=True)
    p.set_defaults(func=cmd_feature_tables, inputs=("clusters", "retention", "pca_summary"))

    p = sub.add_parser("feature-figures", help="draw the feature-analysis figures of a run "
                       "and epoch, <out-dir>/<name>.pdf each")
    p.add_argument("names", nargs="*", metavar="name",
                   help=f"the figures to draw (default: all of {', '.join(FEATURE_FIGURES)})")
    p.add_argument("--dir", required=True, help="the features job's folder")
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_feature_figures, inputs=("dir",))

    for step, kind, func in (("paper-figure", "figure", cmd_paper_figure),
                             ("paper-table", "table", cmd_paper_table)):
        p = sub.add_parser(step, help=f"draw one {kind} of a paper's section of the report")
        p.add_argument("paper", choices=PAPER_FIGURES)
        p.add_argument("name", help=f"the paper's {kind} (nclayers.vocabulary.PAPER_"
                       f"{kind.upper()}S)")
        p.add_argument("--tables", required=True,
                       help="the folder of the aggregated tables and runs.csv (tables/)")
        for name in ("clusters", "retention", "pca_summary"):
            p.add_argument(f"--{name.replace('_', '-')}", nargs="*", default=[],
                           help=f"the feature analysis's {name}.csv of each analysed run")
        _threshold_options(p)
        if kind == "figure":
            p.add_argument("--out", required=True)
        else:
            p.add_argument("--out-csv", required=True)
            p.add_argument("--out-tex", required=True)
        p.set_defaults(func=func, inputs=("tables", "clusters", "retention", "pca_summary"))

    p = sub.add_parser("report", help="build the LaTeX report with latexmk")
    p.add_argument("--tex", required=True)
    p.add_argument("--results", required=True)
    p.add_argument("--runs-table", required=True, help="tables/runs.csv written by select")
    p.add_argument("--feature-figures", nargs="*", default=[],
                   help="the feature figures the report shows (one run's); none leaves the "
                   "feature analysis out")
    p.add_argument("--papers", nargs="*", default=[], choices=PAPER_FIGURES,
                   help="papers whose section the report holds (paper/sections/<paper>.tex)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_report,
                   inputs=("tex", "results", "runs_table", "feature_figures"))
    return parser


def _check_inputs(args: argparse.Namespace) -> None:
    for dest in getattr(args, "inputs", ()):
        value = getattr(args, dest)
        for path in value if isinstance(value, list) else [] if value is None else [value]:
            if not Path(path).exists():
                raise StepError(f"argument --{dest.replace('_', '-')}: {path} does not exist; an "
                                "earlier step of the workflow writes it: check the path, or "
                                "rerun snakemake to rebuild it")


def user_message(error: BaseException) -> str | None:
    """The message of an error meant for the user (a :class:`nclayers.errors.UserError`, or an
    OSError that names its file), None for anything else, which is a bug and keeps its
    traceback."""
    if isinstance(error, UserError):
        return str(error)
    if isinstance(error, OSError) and error.filename is not None:
        also = f" -> {error.filename2}" if error.filename2 is not None else ""
        return f"{error.strerror or error}: {error.filename}{also}"
    return None


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        _check_inputs(args)
        if args.step in ("train", "measure", "features"):
            import torch

            torch.set_num_threads(max(1, args.threads))
        args.func(args)
    except (UserError, OSError) as error:
        message = user_message(error)
        if message is None:
            raise
        one_line = " ".join(line.strip() for line in message.splitlines() if line.strip())
        print(f"nclayers {args.step}: error: {one_line}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
