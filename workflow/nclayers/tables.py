"""All LaTeX of the report: booktabs tables and number macros, from the tidy tables (those of
the measurements and those of the feature analysis)."""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from nclayers.derived import last_epoch
from nclayers.io import write_text
from nclayers.vocabulary import COLLAPSE_EPS, METHOD_LABELS, METRIC_LABELS, by_model

LAST_LAYER_METRICS = ["nc1", "nc1_ratio", "cdnv", "stable_rank", "nc2_equinorm",
                      "nc2_equiangle", "nc2_maxangle", "nc2_angle_shift", "nc3_pabs",
                      "nc3_duality", "ncc_accuracy", "nc4_mismatch"]


# Characters the papers' claims use that pdflatex (T1, no unicode setup) cannot typeset.
UNICODE_TEX = {"Σ": r"$\Sigma$", "Λ": r"$\Lambda$", "ℓ": r"$\ell$", "ε": r"$\varepsilon$",
               "α": r"$\alpha$", "γ": r"$\gamma$", "λ": r"$\lambda$", "μ": r"$\mu$",
               "ρ": r"$\rho$", "σ": r"$\sigma$", "Δ": r"$\Delta$",
               "≥": r"$\geq$", "≤": r"$\leq$", "≈": r"$\approx$", "×": r"$\times$",
               "±": r"$\pm$", "→": r"$\to$", "−": "-", "–": "--", "—": "---", "·": r"$\cdot$",
               "∗": r"$^*$", "²": r"$^2$", "…": r"\ldots{}", "‖": r"$\|$",
               "§": r"\S{}", "°": r"$^\circ$", "∞": r"$\infty$", "≠": r"$\neq$"}


def tex_escape(text: object) -> str:
    """``text`` as LaTeX text: its specials escaped, the unicode of :data:`UNICODE_TEX` as
    math."""
    out = str(text)
    for char, repl in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"),
                       ("#", r"\#"), ("$", r"\$"), ("^", r"\^{}"), ("~", r"\~{}")):
        out = out.replace(char, repl)
    for char, repl in UNICODE_TEX.items():
        out = out.replace(char, repl)
    # A combining mark (σ̃'s tilde) stops pdflatex with a fatal error: the base letter alone.
    return "".join(c for c in out if not unicodedata.combining(c))


def booktabs(header: Sequence[str], rows: Sequence[Sequence[str] | str], colspec: str) -> str:
    """A booktabs tabular; a row given as one string is a heading across all columns."""
    if not rows:  # e.g. every run diverged
        rows = [["(no selected run)", *[""] * (len(header) - 1)]]
    lines = [rf"\begin{{tabular}}{{{colspec}}}", r"\toprule", " & ".join(header) + r" \\",
             r"\midrule"]
    lines += [rf"\multicolumn{{{len(header)}}}{{l}}{{{row}}} \\" if isinstance(row, str)
              else " & ".join(row) + r" \\" for row in rows]
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)


def mean_sd(values: pd.Series, fmt: str | None = None) -> str:
    """Mean ± sd over seeds (one value: itself). By default both are rounded at the sd's first
    significant digit (0.9999 ± 0.0006, 11.8 ± 0.4), the value alone to 3 significant digits;
    ``fmt`` formats both the same way instead."""
    if values.isna().all():
        return "--"
    mean, sd = values.mean(), values.std(ddof=1) if len(values) > 1 else float("nan")
    if fmt is not None:
        return fmt.format(mean) if len(values) == 1 else \
            f"{fmt.format(mean)} $\\pm$ {fmt.format(sd)}"
    if not sd > 0:  # one value, or seeds that agree
        return f"{mean:.3g}"
    decimals = -math.floor(math.log10(sd))
    if decimals >= 0:
        return f"{mean:.{decimals}f} $\\pm$ {sd:.{decimals}f}"
    return f"{round(mean, decimals):.0f} $\\pm$ {round(sd, decimals):.0f}"


def _describe(entry: dict) -> str:
    options = ", ".join(f"{k}={v}" for k, v in entry.items() if k not in ("label", "name"))
    return f"{entry['name']} ({options})" if options else entry["name"]


def _values(values) -> str:
    return ", ".join(dict.fromkeys(f"{v:g}" if isinstance(v, float) else str(v) for v in values))


def _loss(t: dict) -> str:
    reduction = {"mean": "mean over samples and classes",
                 "sum": "summed over classes, mean over samples"}[t.get("mse_reduction", "mean")]
    return {"mse": f"MSE on one-hot targets (scale {t.get('mse_scale', 1):g}, {reduction})",
            "ce": "cross-entropy",
            "svsl": f"SVSL: cross-entropy + {t.get('svsl_alpha'):g} x variability term from "
                    f"hidden layer {t.get('svsl_gamma')}"}[t["loss"]]


def _schedule(t: dict) -> str:
    schedule = t.get("schedule", "constant")
    if schedule == "multistep":
        schedule += (f" (x{t['lr_decay']:g} at epochs {_values(t['milestones'])}, "
                     f"{t['warmup_epochs']} warm-up epochs)")
    if schedule == "onecycle":
        schedule += (f" (warm-up {t.get('onecycle_pct', 0.3):g} of the steps from lr / "
                     f"{t.get('onecycle_div', 25):g}, down to that / "
                     f"{t.get('onecycle_final_div', 1e4):g})")
    return schedule


def _augment(t: dict) -> str:
    options = t.get("augment") or {}
    parts = [f"random crop, padding {options['crop']}" if options.get("crop") else "",
             "horizontal flip" if options.get("flip") else "",
             f"rotation by multiples of {options['rotate']} degrees" if options.get("rotate")
             else ""]
    return ", ".join(p for p in parts if p) or "none"


def setup_table(infos: list[dict]) -> str:
    """The experiment as configured, from the runs' records (all runs; the values that differ
    between runs, groups or axes, listed)."""
    trains = [i["train"] for i in infos]
    seconds = pd.Series([i["train_seconds"] for i in infos])
    rows = [
        *(("Dataset", f"{i['dataset']['label']}: {_describe(i['dataset'])}, {i['n_train']} "
                      f"train, {i['n_test']} test, {i['num_classes']} classes")
          for i in {_describe(i["dataset"]): i for i in infos}.values()),
        *(("Architecture", f"{label}: {_describe(i['arch'])}, {i['parameters']:,} parameters")
          for label, i in {_describe(i["arch"]): i for i in infos}.items()
          for label in [i["arch"]["label"]]),
        ("Loss", "; ".join(dict.fromkeys(map(_loss, trains)))),
        ("Optimiser", f"SGD, momentum {_values(t['momentum'] for t in trains)}, "
                      f"lr {_values(t['lr'] for t in trains)}, "
                      f"weight decay {_values(t['weight_decay'] for t in trains)}"),
        ("Schedule", "; ".join(dict.fromkeys(map(_schedule, trains)))),
        ("Augmentation", "; ".join(dict.fromkeys(map(_augment, trains)))),
        ("Batch size / epochs", f"{_values(t['batch_size'] for t in trains)} / "
                                f"{_values(t['epochs'] for t in trains)}"),
        ("Checkpoints (epochs)", "; ".join(dict.fromkeys(
            ", ".join(map(str, t["checkpoints"])) for t in trains))),
        ("Seeds", _values(i["seed"] for i in infos)),
        ("Device", _values(sorted(i["device_used"] for i in infos))),
        ("Training time per run", f"{seconds.mean():.1f} s (mean of {len(infos)})"),
    ]
    return booktabs(["Setting", "Value"], [(k, tex_escape(v)) for k, v in rows], "lp{11cm}")


def _run_axes(runs: pd.DataFrame) -> list[str]:
    """The compared and selected axes of runs.csv beyond lr and weight decay whose values
    differ among the runs (the columns run.csv puts between ``seed`` and ``diverged``), with
    the group first where there are several."""
    columns = list(runs.columns)
    between = columns[columns.index("seed") + 1:columns.index("diverged")]
    axes = [c for c in between if c not in ("lr", "weight_decay") and runs[c].nunique() > 1]
    return (["group"] if runs["group"].nunique() > 1 else []) + axes


def runs_tex(runs: pd.DataFrame) -> str:
    """Every run with its outcome (selected for the figures, not selected, or diverged), its
    lr, weight decay and the axes that tell it apart from the others, and its setting's test
    accuracy over seeds (mean ± sd of the runs that did not diverge, and their number n): what
    the selection of the best setting compares."""
    axes = _run_axes(runs) if {"group", "seed", "diverged"} <= set(runs.columns) else []
    setting = runs["run"].astype(str).str.replace(r"-s\d+$", "", regex=True)
    kept = runs[~runs["diverged"].astype(bool)]
    over_seeds = (100 * kept["final_test_acc"]).groupby(setting[kept.index])
    rows = []
    order = [c for c in ("group", "dataset", "arch", *axes, "lr", "weight_decay", "seed")
             if c in runs.columns]
    for index, r in runs.sort_values(list(dict.fromkeys(order))).iterrows():
        status = (f"diverged (epoch {r['final_epoch']})" if r["diverged"]
                  else "selected" if r["selected"] else "")
        accs = over_seeds.get_group(setting[index]) if setting[index] in over_seeds.groups \
            else pd.Series(dtype=float)
        mean = f"{mean_sd(accs, '{:.1f}')} ({len(accs)})" if len(accs) else "--"
        rows.append([tex_escape(r["run"]), *[_cell(r[a]) for a in axes], f"{r['lr']:g}",
                     f"{r['weight_decay']:g}", f"{100 * r['final_train_acc']:.1f}",
                     f"{100 * r['final_test_acc']:.1f}", mean, status])
    header = ["Run", *map(tex_escape, axes), "lr", "wd", "Train acc. (\\%)",
              "Test acc. (\\%)", "Over seeds (n)", "Status"]
    return booktabs(header, rows, "l" * (1 + len(axes)) + "llrrrl")


def _last_layer(final: pd.DataFrame) -> pd.DataFrame:
    """The rows of each run's deepest tapped layer."""
    deepest = final.groupby("run")["layer_index"].transform("max")
    return final[final["layer_index"] == deepest]


def last_layer_table(metrics: pd.DataFrame) -> str:
    """Last hidden layer at the last checkpoint, mean ± sd over seeds; a block per model."""
    models = by_model(_last_layer(last_epoch(metrics)))
    rows = []
    for model, last in models:
        for metric in LAST_LAYER_METRICS:
            part = last[last["metric"] == metric]
            cells = [mean_sd(part[part["split"] == s]["value"]) for s in ("train", "test")]
            rows.append(([tex_escape(model)] if len(models) > 1 else []) +
                        [METRIC_LABELS[metric], *cells])
    header = (["Model"] if len(models) > 1 else []) + ["Metric", "Train", "Test"]
    return booktabs(header, rows, "l" * len(header))


def by_layer_table(metrics: pd.DataFrame) -> str:
    """Per layer at the last checkpoint, mean ± sd over seeds; a block per model."""
    columns = [("nc1", "train"), ("nc1_ratio", "train"), ("cdnv", "train"),
               ("ncc_accuracy", "train"), ("ncc_accuracy", "test")]
    models = by_model(last_epoch(metrics))
    rows = []
    for model, final in models:
        for (index, layer), part in final.groupby(["layer_index", "layer"]):
            cells = [mean_sd(part[(part["metric"] == m) & (part["split"] == s)]["value"])
                     for m, s in columns]
            rows.append(([tex_escape(model)] if len(models) > 1 else []) +
                        [str(int(index)), tex_escape(layer), *cells])
    header = (["Model"] if len(models) > 1 else []) + [
        "", "Layer", "NC1", "NC1 ratio", "CDNV", "NCC acc.", "NCC acc. (test)"]
    return booktabs(header, rows, "l" * (len(header) - 7) + "rl" + "l" * len(columns))


def macros(metrics: pd.DataFrame, training: pd.DataFrame, runs: pd.DataFrame,
           collapse_eps: float) -> str:
    """Numbers quoted in the report's text, so that the prose follows the results."""
    counts = {"NumRuns": str(len(runs)), "NumSelected": str(int(runs["selected"].sum())),
              "NumDiverged": str(int(runs["diverged"].sum()))}
    if metrics.empty:  # every run diverged: the text still compiles and says so via the counts
        names = ("FinalTrainAcc", "FinalTestAcc", "LastNCOne", "LastNCOneRatio", "LastNCCTrain",
                 "LastNCCTest", "CollapseLayer", "EffectiveDepth", "InterpolationEpoch",
                 "MainModel", "LastEpoch")
        defs = {**dict.fromkeys(names, "n/a"), "CollapseEps": f"{collapse_eps:g}", **counts}
        return "".join(f"\\newcommand{{\\{k}}}{{{v}}}\n" for k, v in defs.items())
    # The prose quotes the first model; the tables hold all of them.
    model, first = by_model(metrics)[0]
    metrics = first
    training = training[training["run"].isin(set(first["run"]))]
    final = last_epoch(metrics)
    last = _last_layer(final)
    end = training[training["epoch"] == training.groupby("run")["epoch"].transform("max")]

    def value(metric: str, split: str = "train") -> float:
        return last[(last["metric"] == metric) & (last["split"] == split)]["value"].mean()

    def derived(metric: str, none: str = "never") -> str:
        """Each selected run's value (the abstract quotes no mean of layers or epochs)."""
        rows = final if metric != "interpolation_epoch" else metrics
        return per_run(rows[rows["metric"] == metric].groupby("run")["value"].first(), none)

    defs = {
        "FinalTrainAcc": f"{100 * end['train_acc'].mean():.1f}\\%",
        "FinalTestAcc": f"{100 * end['test_acc'].mean():.1f}\\%",
        "LastNCOne": f"{value('nc1'):.3g}",
        "LastNCOneRatio": f"{value('nc1_ratio'):.3g}",
        "LastNCCTrain": f"{100 * value('ncc_accuracy'):.1f}\\%",
        "LastNCCTest": f"{100 * value('ncc_accuracy', 'test'):.1f}\\%",
        "CollapseEps": f"{collapse_eps:g}",
        "CollapseLayer": derived("collapse_layer", "none"),
        "EffectiveDepth": derived("effective_depth", "none"),
        "InterpolationEpoch": derived("interpolation_epoch"),
        "MainModel": tex_escape(model),
        **counts,
        "LastEpoch": str(int(final["epoch"].max())),
    }
    return "".join(f"\\newcommand{{\\{k}}}{{{v}}}\n" for k, v in defs.items())


def per_run(values: pd.Series, none: str = "none") -> str:
    """Runs' values in words: "6", "6 in every run", "5 and 6 in the 2 runs" (``none`` for a
    run without one)."""
    words = [none if pd.isna(v) else f"{v:g}" for v in values]
    if len(set(words)) == 1:
        return words[0] + (" in every run" if len(words) > 1 else "")
    return f"{', '.join(words[:-1])} and {words[-1]} in the {len(words)} runs"


def write_all(metrics: pd.DataFrame, training: pd.DataFrame, runs: pd.DataFrame,
              infos: list[dict], out_dir: Path, collapse_eps: float = COLLAPSE_EPS) -> list[Path]:
    """All tables of the report; ``metrics`` and ``training`` hold the selected runs only."""
    contents = {
        "setup.tex": setup_table(infos),
        "runs.tex": runs_tex(runs),
        "last_layer.tex": last_layer_table(metrics),
        "by_layer.tex": by_layer_table(metrics),
        "macros.tex": macros(metrics, training, runs, collapse_eps),
    }
    for name, text in contents.items():
        write_text(out_dir / name, text)
    return [out_dir / name for name in contents]


# --- the feature analysis (lindegaard2023) -----------------------------------------------------

def _pct(value: float) -> str:
    return "--" if pd.isna(value) else f"{100 * value:.1f}"


def _num(value: float) -> str:
    return "--" if pd.isna(value) else f"{value:.3g}" if value < 1000 else f"{value:,.0f}"


def _blocks(table: pd.DataFrame):
    """``(heading, rows)`` per run and epoch when the table holds several of them (then the
    heading names them), else ``(None, table)``."""
    several = [k for k in ("run", "epoch") if k in table and table[k].nunique() > 1]
    if not several:
        yield None, table
        return
    for values, part in table.groupby(several, sort=True):
        yield ", ".join(f"{k} {tex_escape(v)}" for k, v in zip(several, values, strict=True)), part


def _points(row) -> int:
    """The points a clustering analysed: those in its clusters of ≥ 3, and those excluded."""
    kept = row.clusters * row.avg_points if row.clusters else 0  # no cluster: no average
    return round(kept + row.excluded)


def clusters_tex(clusters: pd.DataFrame) -> str:
    """Thesis Table 4.3.1/C.2.1 as booktabs: a block per run (if several) and clustering
    method, a row per layer."""
    rows: list = []
    for heading, part in _blocks(clusters):
        for method, block in part.groupby("method", sort=False):
            label = tex_escape(METHOD_LABELS.get(method, method))
            rows.append(rf"\textit{{{heading + ': ' if heading else ''}{label}}}")
            rows += [[str(int(r.layer_index)), tex_escape(r.layer), f"{int(r.clusters):,}",
                      _num(r.avg_points), _pct(r.accuracy),
                      f"{int(r.excluded):,} of {_points(r):,}"]
                     for r in block.sort_values("layer_index").itertuples()]
    # the accuracy counts the kept points only: beside the excluded ones, 100 % can mean little
    header = ["", "Layer", "Clusters ($\\geq 3$)", "Points per cluster",
              "Accuracy on the kept points (\\%)", "Excluded points"]
    return booktabs(header, rows, "rlrrrr")


def retention_tex(retention: pd.DataFrame) -> str:
    """Thesis Table 4.3.2/C.2.2 as booktabs: a row per pair of consecutive layers, a column per
    clustering method, retention in %; a block per run (if several)."""
    methods = [m for m in METHOD_LABELS if m in set(retention["method"])] + sorted(
        set(retention["method"]) - set(METHOD_LABELS))
    rows: list = []
    for heading, part in _blocks(retention):
        if heading:
            rows.append(rf"\textit{{{heading}}}")
        wide = part.pivot(index=["index_from", "index_to", "layer_from", "layer_to"],
                          columns="method", values="retention").reset_index()
        rows += [[f"{r['index_from']} $\\to$ {r['index_to']}",
                  f"{tex_escape(r['layer_from'])} $\\to$ {tex_escape(r['layer_to'])}",
                  *(_pct(r[m]) for m in methods)] for _, r in wide.iterrows()]
    header = ["Layers", "", *(f"{tex_escape(METHOD_LABELS.get(m, m))} (\\%)" for m in methods)]
    return booktabs(header, rows, "ll" + "r" * len(methods))


VERDICTS = {True: "holds", False: "does not hold", None: "not measured"}
# A claim its seeds disagree on (nclayers.papers.seeds.RULE): its tally is "k of n".
UNDECIDED = "not decided"


def claims_tex(claims: pd.DataFrame) -> str:
    """A paper's claims table (nclayers.papers.CLAIM_COLUMNS, and the ``seeds`` tally of
    nclayers.papers.seeds where it has one): the claim, where the paper makes it, what was
    measured, in how many seeds it holds, and the verdict in words; a longtable (it breaks across
    pages, its header repeated), captioned ``\\ClaimsCaption`` (the report's ``\\claimstable``)."""
    tallied = "seeds" in claims.columns
    rows = []
    for r in claims.to_dict("records"):
        holds = None if r["holds"] is None or r["holds"] != r["holds"] else bool(r["holds"])
        tally = str(r["seeds"]) if tallied else ""
        verdict = UNDECIDED if holds is None and " of " in tally else VERDICTS[holds]
        cells = [tex_escape(r["claim"]), tex_escape(r["where"]), tex_escape(r["measured"])]
        cells += [tex_escape(tally)] if tallied else []
        rows.append([*cells, rf"\textbf{{{verdict}}}" if holds is False else verdict])
    ragged = r">{\raggedright\arraybackslash}"  # narrow columns: no stretched spaces
    measured = "4.1cm" if tallied else "5.1cm"
    colspec = f"{ragged}p{{4.9cm}}{ragged}p{{1.8cm}}{ragged}p{{{measured}}}"
    colspec += f"{ragged}p{{1.0cm}}l" if tallied else "l"
    header = (r"Claim & Where & Measured & " + ("Seeds & " if tallied else "")
              + r"Verdict \\")
    lines = [r"\providecommand{\ClaimsCaption}{Claims checked against the measured numbers.}",
             rf"\begin{{longtable}}{{{colspec}}}", r"\caption{\ClaimsCaption} \\",
             r"\toprule", header, r"\midrule", r"\endfirsthead",
             r"\toprule", header, r"\midrule", r"\endhead", r"\bottomrule", r"\endlastfoot"]
    lines += [" & ".join(row) + r" \\" for row in rows]
    return "\n".join([*lines, r"\end{longtable}", ""])


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "--" if value != value else f"{value:.3g}"
    return tex_escape(value)


def frame_tex(table: pd.DataFrame) -> str:
    """Any small table as booktabs: a column per column, numbers to three significant
    digits."""
    rows = [[_cell(v) for v in row] for row in table.itertuples(index=False)]
    colspec = "".join("r" if pd.api.types.is_numeric_dtype(table[c]) else "l"
                      for c in table.columns)
    return booktabs([tex_escape(c) for c in table.columns], rows, colspec)
