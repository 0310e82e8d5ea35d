"""``python -m nclayers <step> ...``: the command behind each workflow rule."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from nclayers import runs
from nclayers.io import atomic_path

TIDY_COLUMNS = ["run", "dataset", "arch", "seed", "epoch", "layer", "layer_index", "split",
                "metric", "value"]
SPECTRA_COLUMNS = ["run", "dataset", "arch", "seed", "epoch", "layer", "layer_index", "k",
                   "sigma", "share"]


def cmd_train(args: argparse.Namespace) -> None:
    info = runs.train_run(json.loads(args.spec), Path(args.out_dir))
    print(f"done in {info['train_seconds']:.1f} s: train acc {info['final_train_acc']:.4f}, "
          f"test acc {info['final_test_acc']:.4f}" + (" (diverged)" if info["diverged"] else ""),
          flush=True)


def _with_run(table: pd.DataFrame, spec: dict, epoch: int) -> pd.DataFrame:
    """Prefix the run's identifying columns and the epoch."""
    return pd.concat([pd.DataFrame({**runs.run_columns(spec), "epoch": epoch},
                                   index=table.index), table], axis=1)


def cmd_measure(args: argparse.Namespace) -> None:
    from nclayers.data import Batches
    from nclayers.measure import measure, weight_spectra
    from nclayers.weights import find_consumers

    spec = runs.read_json(args.run_json)
    device = runs.resolve_device(spec["device"])
    splits = runs.load_data(spec, device)
    model = runs.build_model(spec, splits).to(device)
    state = torch.load(args.checkpoint, map_location=device, weights_only=True)
    if state.get("diverged"):
        # Nothing to measure: empty tables keep the DAG going; the run's record says why.
        for path, columns in ((args.out, TIDY_COLUMNS), (args.spectra, SPECTRA_COLUMNS)):
            with atomic_path(path) as tmp:
                pd.DataFrame(columns=columns).to_csv(tmp, index=False)
        print(f"{spec['run']} diverged before epoch {state['epoch']}: no metrics", flush=True)
        return
    model.load_state_dict(state["model"])
    start = time.perf_counter()
    consumers = find_consumers(model, model.tapped_layers, splits.x_train[:2])
    table = measure(model, Batches(splits.x_train, splits.y_train, args.batch_size),
                    Batches(splits.x_test, splits.y_test, args.batch_size),
                    consumers=consumers, progress=True)
    spectra = weight_spectra(model, consumers, model.tapped_layers)
    for path, result in ((args.out, table), (args.spectra, spectra)):
        with atomic_path(path) as tmp:
            _with_run(result, spec, state["epoch"]).to_csv(tmp, index=False)
    print(f"{spec['run']} epoch {state['epoch']}: {len(table)} values for "
          f"{table['layer'].nunique()} layers in {time.perf_counter() - start:.2f} s", flush=True)


def cmd_aggregate(args: argparse.Namespace) -> None:
    from nclayers.derived import derived_metrics

    metrics = pd.concat([pd.read_csv(p) for p in args.metrics], ignore_index=True)
    training = pd.concat([pd.read_csv(p) for p in args.train_logs], ignore_index=True)
    spectra = pd.concat([pd.read_csv(p) for p in args.spectra], ignore_index=True)
    derived = derived_metrics(metrics, training, args.collapse_eps, args.ncc_threshold,
                              args.interpolation_threshold)
    metrics = pd.concat([metrics, derived], ignore_index=True).sort_values(
        ["run", "epoch", "split", "layer_index", "metric"], na_position="first")
    metrics["layer_index"] = metrics["layer_index"].astype("Int64")  # empty for per-run rows
    out = Path(args.out_dir)
    for name, table in (("metrics", metrics), ("training", training), ("spectra", spectra)):
        with atomic_path(out / f"{name}.csv") as tmp:
            table.to_csv(tmp, index=False)
    print(f"{len(metrics)} metric rows from {len(args.metrics)} checkpoints of "
          f"{len(args.train_logs)} runs", flush=True)


def cmd_select(args: argparse.Namespace) -> None:
    from nclayers.sweeps import runs_table, select_best

    table = select_best(runs_table([runs.read_json(p) for p in args.runs]))
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False)
    print(f"selected {int(table['selected'].sum())} of {len(table)} runs; "
          f"{int(table['diverged'].sum())} diverged", flush=True)


def _selected(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(metrics, training, runs) restricted to the selected runs, for figures and tables."""
    table = pd.read_csv(args.runs)
    chosen = set(table.loc[table["selected"], "run"])
    metrics, training = pd.read_csv(args.metrics), pd.read_csv(args.training)
    return metrics[metrics["run"].isin(chosen)], training[training["run"].isin(chosen)], table


def _placeholder(message: str):
    """A small figure that states why there is nothing to draw, so the report still builds."""
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(6, 1))
    fig.text(0.5, 0.5, message, ha="center", va="center")
    return fig


def cmd_figure(args: argparse.Namespace) -> None:
    from nclayers import plots

    if args.name not in plots.FIGURES:
        raise SystemExit(f"unknown figure {args.name!r}; known: {', '.join(plots.FIGURES)}")
    figure = plots.FIGURES[args.name]
    metrics, training, table = _selected(args)
    spectra = pd.read_csv(args.spectra)
    spectra = spectra[spectra["run"].isin(set(training["run"]))]
    if metrics.empty:
        fig = _placeholder("no selected run: every run diverged (see tables/runs.csv)")
    else:
        fig = figure(metrics, training, spectra, collapse_eps=args.collapse_eps)
    with atomic_path(args.out) as tmp:
        fig.savefig(tmp, format=Path(args.out).suffix[1:], bbox_inches="tight")
    print(f"wrote {args.out}", flush=True)


def cmd_tables(args: argparse.Namespace) -> None:
    from nclayers import tables

    metrics, training, run_table = _selected(args)
    infos = [runs.read_json(p) for p in args.infos]
    written = tables.write_all(metrics, training, run_table, infos, Path(args.out_dir),
                               collapse_eps=args.collapse_eps)
    print("wrote " + ", ".join(map(str, written)), flush=True)


def cmd_features(args: argparse.Namespace) -> None:
    from threadpoolctl import threadpool_limits

    from nclayers import features

    spec = runs.read_json(args.run_json)
    out = Path(args.out_dir)
    state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    if state.get("diverged"):
        for name in features.TABLES:
            with atomic_path(out / f"{name}.csv") as tmp:
                pd.DataFrame(columns=features.COLUMNS[name]).to_csv(tmp, index=False)
        empty = np.zeros(0, dtype=np.int64)
        features.save_sample(out / "sample.npz", {"labels": empty, "pred": empty,
                                                  "index": empty, "layers": []})
        print(f"{spec['run']} diverged before epoch {state['epoch']}: no features", flush=True)
        return
    splits = runs.load_data(spec, "cpu")
    # Refuse a sample whose pairwise distances would not fit, before any work.
    features.check_sample_size(args.per_class * splits.num_classes)
    model = runs.build_model(spec, splits)
    model.load_state_dict(state["model"])
    sample = features.sample_activations(model, splits.x_train, splits.y_train,
                                         per_class=args.per_class, seed=spec["seed"])
    features.save_sample(out / "sample.npz", sample)
    # One BLAS thread per job: small eigendecompositions are far slower with oversubscription.
    with threadpool_limits(args.threads):
        tables = features.analyse_layers(sample, seed=spec["seed"], log=print)
    features.write_tables(tables, out, prefix="")
    print(f"{spec['run']} epoch {state['epoch']}: features of {len(sample['labels'])} points "
          f"in {len(sample['layers'])} layers", flush=True)


def cmd_feature_tables(args: argparse.Namespace) -> None:
    from nclayers import features
    from nclayers.tables import tex_escape

    tables = {}
    for name in ("clusters", "retention", "pca_summary"):
        parts = [pd.read_csv(Path(d) / f"{name}.csv").assign(run=run, epoch=int(epoch))
                 for d, run, epoch in zip(args.dirs, args.runs, args.epochs, strict=True)]
        tables[name] = pd.concat(parts, ignore_index=True)
    features.write_tables(tables, Path(args.out_dir), prefix="features_")
    # The report shows the figures of one run: say which, and where they are.
    with atomic_path(Path(args.out_dir) / "features_macros.tex") as tmp:
        tmp.write_text(f"\\newcommand{{\\FeatureRun}}{{{tex_escape(args.figure_run)}}}\n"
                       f"\\newcommand{{\\FeatureDir}}{{{args.figure_dir}}}\n")
    print(f"feature tables of {len(args.dirs)} runs", flush=True)


def cmd_feature_figure(args: argparse.Namespace) -> None:
    from nclayers.feature_plots import FEATURE_FIGURES
    from nclayers.features import TABLES

    if args.name not in FEATURE_FIGURES:
        raise SystemExit(f"unknown feature figure {args.name!r}; known: "
                         f"{', '.join(FEATURE_FIGURES)}")
    tables = {name: pd.read_csv(Path(args.dir) / f"{name}.csv") for name in TABLES}
    if tables["clusters"].empty:  # a diverged run: say so instead of failing the report
        fig = _placeholder(f"no feature analysis: the run diverged ({args.dir})")
    else:
        fig = FEATURE_FIGURES[args.name](tables)
    with atomic_path(args.out) as tmp:
        fig.savefig(tmp, format="pdf", bbox_inches="tight")
    print(f"wrote {args.out}", flush=True)


def cmd_report(args: argparse.Namespace) -> None:
    from nclayers.report import build_pdf

    build_pdf(Path(args.tex), Path(args.results), Path(args.out))
    print(f"wrote {args.out}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="nclayers", description=__doc__)
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads for torch (the rule's `threads`)")
    sub = parser.add_subparsers(dest="step", required=True)

    p = sub.add_parser("train", help="train one run, saving checkpoints and its log")
    p.add_argument("--spec", required=True, help="the run's spec as JSON")
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("measure", help="NC metrics of every tapped layer of one checkpoint")
    p.add_argument("--run-json", required=True)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--out", required=True)
    p.add_argument("--spectra", required=True, help="where the weight spectra go")
    p.set_defaults(func=cmd_measure)

    p = sub.add_parser("aggregate", help="collect all measurements into tidy tables")
    p.add_argument("--metrics", nargs="+", required=True)
    p.add_argument("--train-logs", nargs="+", required=True)
    p.add_argument("--spectra", nargs="+", required=True)
    p.add_argument("--collapse-eps", type=float, default=0.2)
    p.add_argument("--ncc-threshold", type=float, default=0.99)
    p.add_argument("--interpolation-threshold", type=float, default=0.995)
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_aggregate)

    p = sub.add_parser("select", help="the table of runs, marking the best of each sweep")
    p.add_argument("--runs", nargs="+", required=True, help="the runs' run.json files")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_select)

    p = sub.add_parser("figure", help="draw one figure from the tidy tables")
    p.add_argument("name")
    p.add_argument("--metrics", required=True)
    p.add_argument("--training", required=True)
    p.add_argument("--runs", required=True, help="runs.csv written by select")
    p.add_argument("--spectra", required=True)
    p.add_argument("--collapse-eps", type=float, default=0.2)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_figure)

    p = sub.add_parser("tables", help="LaTeX tables and macros for the report")
    p.add_argument("--metrics", required=True)
    p.add_argument("--training", required=True)
    p.add_argument("--runs", required=True, help="runs.csv written by select")
    p.add_argument("--infos", nargs="+", required=True, help="the runs' run.json files")
    p.add_argument("--collapse-eps", type=float, default=0.2)
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_tables)

    p = sub.add_parser("features", help="feature analysis of every layer of one checkpoint")
    p.add_argument("--run-json", required=True)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--per-class", type=int, required=True)
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("feature-tables", help="collect the runs' feature tables for the report")
    p.add_argument("--dirs", nargs="+", required=True, help="the features jobs' folders")
    p.add_argument("--runs", nargs="+", required=True)
    p.add_argument("--epochs", nargs="+", required=True)
    p.add_argument("--figure-run", required=True, help="the run whose figures the report shows")
    p.add_argument("--figure-dir", required=True, help="their folder, relative to the results")
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_feature_tables)

    p = sub.add_parser("feature-figure", help="draw one feature-analysis figure")
    p.add_argument("name")
    p.add_argument("--dir", required=True, help="the features job's folder")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_feature_figure)

    p = sub.add_parser("report", help="build the LaTeX report with latexmk")
    p.add_argument("--tex", required=True)
    p.add_argument("--results", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_report)

    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    args.func(args)
