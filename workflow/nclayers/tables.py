"""LaTeX (booktabs) tables and number macros for the report, from the tidy tables."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from nclayers.io import atomic_path
from nclayers.plots import METRIC_LABELS

LAST_LAYER_METRICS = ["nc1", "nc1_ratio", "cdnv", "nc2_equinorm", "nc2_equiangle",
                      "nc2_maxangle", "ncc_accuracy", "nc4_mismatch"]


def tex_escape(text: object) -> str:
    out = str(text)
    for char, repl in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"),
                       ("#", r"\#"), ("$", r"\$")):
        out = out.replace(char, repl)
    return out


def booktabs(header: Sequence[str], rows: Sequence[Sequence[str]], colspec: str) -> str:
    lines = [rf"\begin{{tabular}}{{{colspec}}}", r"\toprule", " & ".join(header) + r" \\",
             r"\midrule"]
    lines += [" & ".join(row) + r" \\" for row in rows]
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)


def mean_sd(values: pd.Series, fmt: str = "{:.3g}") -> str:
    if values.isna().all():
        return "--"
    if len(values) == 1:
        return fmt.format(values.iloc[0])
    return f"{fmt.format(values.mean())} $\\pm$ {fmt.format(values.std(ddof=1))}"


def setup_table(runs: list[dict]) -> str:
    first = runs[0]
    t = first["train"]
    arch = ", ".join(f"{k}={v}" for k, v in first["arch"].items() if k not in ("label", "name"))
    seconds = pd.Series([r["train_seconds"] for r in runs])
    rows = [
        ("Dataset", f"{first['dataset']['name']} ({first['n_train']} train, "
                    f"{first['n_test']} test, {first['num_classes']} classes)"),
        ("Architecture", f"{first['arch']['name']} ({arch})"),
        ("Parameters", f"{first['parameters']:,}"),
        ("Loss", {"mse": "MSE on one-hot targets", "ce": "cross-entropy"}.get(t["loss"],
                                                                               t["loss"])),
        ("Optimiser", f"SGD, lr {t['lr']:g}, momentum {t['momentum']:g}, "
                      f"weight decay {t['weight_decay']:g}"),
        ("Batch size / epochs", f"{t['batch_size']} / {t['epochs']}"),
        ("Checkpoints (epochs)", ", ".join(map(str, t["checkpoints"]))),
        ("Seeds", ", ".join(str(r["seed"]) for r in runs)),
        ("Device", ", ".join(sorted({r["device_used"] for r in runs}))),
        ("Training time per run", f"{seconds.mean():.1f} s"),
    ]
    return booktabs(["Setting", "Value"], [(k, tex_escape(v)) for k, v in rows], "ll")


def _final(metrics: pd.DataFrame) -> pd.DataFrame:
    return metrics[metrics["epoch"] == metrics.groupby("run")["epoch"].transform("max")]


def last_layer_table(metrics: pd.DataFrame) -> str:
    final = _final(metrics)
    final = final[final["layer_index"] == final["layer_index"].max()]
    rows = []
    for metric in LAST_LAYER_METRICS:
        part = final[final["metric"] == metric]
        rows.append([METRIC_LABELS[metric]] + [mean_sd(part[part["split"] == s]["value"])
                                                for s in ("train", "test")])
    return booktabs(["Metric", "Train", "Test"], rows, "lll")


def by_layer_table(metrics: pd.DataFrame) -> str:
    final = _final(metrics)
    columns = [("nc1", "train"), ("nc1_ratio", "train"), ("cdnv", "train"),
               ("ncc_accuracy", "train"), ("ncc_accuracy", "test")]
    rows = []
    for (index, layer), part in final.groupby(["layer_index", "layer"]):
        cells = [mean_sd(part[(part["metric"] == m) & (part["split"] == s)]["value"])
                 for m, s in columns]
        rows.append([str(index), tex_escape(layer), *cells])
    header = ["", "Layer", "NC1", "NC1 ratio", "CDNV", "NCC acc.", "NCC acc. (test)"]
    return booktabs(header, rows, "rl" + "l" * len(columns))


def macros(metrics: pd.DataFrame, training: pd.DataFrame, collapse_eps: float) -> str:
    """Numbers quoted in the report's text, so that the prose follows the results."""
    final = _final(metrics)
    last = final[final["layer_index"] == final["layer_index"].max()]
    end = training[training["epoch"] == training.groupby("run")["epoch"].transform("max")]

    def value(metric: str, split: str = "train") -> float:
        return last[(last["metric"] == metric) & (last["split"] == split)]["value"].mean()

    ratio = final[(final["metric"] == "nc1_ratio") & (final["split"] == "train")]
    below = ratio.groupby("layer_index")["value"].mean().lt(collapse_eps)
    collapsed = [i for i in below.index if below.loc[i:].all()]
    defs = {
        "FinalTrainAcc": f"{100 * end['train_acc'].mean():.1f}\\%",
        "FinalTestAcc": f"{100 * end['test_acc'].mean():.1f}\\%",
        "LastNCOne": f"{value('nc1'):.3g}",
        "LastNCOneRatio": f"{value('nc1_ratio'):.3g}",
        "LastNCCTrain": f"{100 * value('ncc_accuracy'):.1f}\\%",
        "LastNCCTest": f"{100 * value('ncc_accuracy', 'test'):.1f}\\%",
        "CollapseEps": f"{collapse_eps:g}",
        "CollapseLayer": str(collapsed[0]) if collapsed else "none",
        "NumRuns": str(training["run"].nunique()),
        "LastEpoch": str(int(final["epoch"].max())),
    }
    return "".join(f"\\newcommand{{\\{k}}}{{{v}}}\n" for k, v in defs.items())


def write_all(metrics: pd.DataFrame, training: pd.DataFrame, runs: list[dict], out_dir: Path,
              collapse_eps: float = 0.2) -> list[Path]:
    contents = {
        "setup.tex": setup_table(runs),
        "last_layer.tex": last_layer_table(metrics),
        "by_layer.tex": by_layer_table(metrics),
        "macros.tex": macros(metrics, training, collapse_eps),
    }
    written = []
    for name, text in contents.items():
        with atomic_path(out_dir / name) as tmp:
            tmp.write_text(text)
        written.append(out_dir / name)
    return written
