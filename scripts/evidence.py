"""docs/evidence.md from the MNIST presets' results (`make evidence`, scripts/evidence.sh): per
paper, the data, the runs and each claim with what was measured over the seeds and its verdict,
and for each claim that does not hold, its cause as investigated (docs/evidence_causes.yaml).
No number in the page is typed by hand.

    python scripts/evidence.py --results results --times T.csv --source TEXT --out docs/evidence.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

from nclayers.papers.seeds import RULE  # noqa: E402

CAUSES = ROOT / "docs" / "evidence_causes.yaml"
KINDS = {"fidelity": "a fidelity defect", "scale": "a scale effect",
         "not reproduced": "the paper's claim not reproduced",
         "seeds": "the seeds disagree"}
VERDICT = {True: "holds", False: "**does not hold**", None: "not decided"}


def verdict(holds: object, seeds: str) -> str:
    if holds is None or holds != holds:
        return "not decided" if " of " in str(seeds) else "not measured"
    return VERDICT[bool(holds)]


def cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def causes() -> dict[str, list[dict]]:
    """Paper → [{claim: a part of its text, kind: fidelity | scale | not reproduced, why}]."""
    return (yaml.safe_load(CAUSES.read_text()) or {}) if CAUSES.exists() else {}


def runs_line(results: Path) -> str:
    runs = pd.read_csv(results / "tables" / "runs.csv")
    kept = runs[runs["selected"].astype(bool) & ~runs["diverged"].astype(bool)]
    if "etf_layers" in kept:  # a network with layers fixed to ETFs is an experiment, not a model
        kept = kept[kept["etf_layers"].fillna(0) == 0]
    acc = 100 * kept["final_test_acc"]
    spread = f" ± {acc.std():.1f}" if len(acc) > 1 else ""
    return (f"{len(runs)} runs ({runs['seed'].nunique()} seeds, {int(runs['diverged'].sum())} "
            f"diverged); the {len(kept)} selected ones without fixed ETF layers: test accuracy "
            f"{acc.mean():.1f}{spread} %")


def data_line(results: Path) -> str:
    design = pd.read_csv(results / "tables" / "design.csv")
    parts = []
    for column, what in (("dataset.per_class", "train images per class"),
                         ("dataset.test_per_class", "test images per class")):
        values = design[column].dropna().unique() if column in design else []
        parts.append(f"{what}: {', '.join(f'{v:g}' for v in values) or 'all'}")
    return "; ".join(parts)


def section(paper: str, results: Path, seconds: float | None,
            known: list[dict]) -> tuple[list[str], pd.Series]:
    claims = pd.read_csv(results / "tables" / paper / "claims.csv")
    if "seeds" not in claims:
        claims["seeds"] = ""
    lines = [f"## {paper}", "",
             f"Preset `workflow/presets/{paper}/mnist.yaml`; {data_line(results)}; "
             f"{runs_line(results)}; wall time "
             + (f"{seconds:.0f} s." if seconds is not None else "not recorded."), "",
             "| claim | where | measured (over the seeds) | seeds | verdict |",
             "|---|---|---|---|---|"]
    failed, told, unmeasured = [], [], []
    for r in claims.to_dict("records"):
        said = verdict(r["holds"], r["seeds"])
        told.append(said.strip("*"))
        if said == "not measured":
            unmeasured.append(f"- {cell(r['claim'])} ({cell(r['where'])})")
            continue
        lines.append(f"| {cell(r['claim'])} | {cell(r['where'])} | {cell(r['measured'])} | "
                     f"{cell(r['seeds'])} | {said} |")
        if said in ("**does not hold**", "not decided"):
            failed.append((r["claim"], said))
    counts = pd.Series(told).value_counts()
    lines += ["", "Verdicts: " + ", ".join(f"{n} {v}" for v, n in counts.items()) + ".", ""]
    if unmeasured:
        lines += [f"Not measured here, each needing what this preset leaves out (another dataset "
                  f"or network); `results/{paper}-mnist/tables/{paper}/claims.csv` says what:",
                  "", *unmeasured, ""]
    if failed:
        lines += ["Claims that do not hold or are not decided, and why:", ""]
        for claim, said in failed:
            # the longest entry that names it ("LeakyReLU: …" before "ReLU: …")
            found = max((c for c in known if c["claim"] in claim),
                        key=lambda c: len(c["claim"]), default=None)
            why = (f"{KINDS[found['kind']]}: {found['why']}" if found else
                   "not investigated yet")
            lines.append(f"- *{cell(claim)}* ({said.strip('*')}): {why}")
        lines.append("")
    return lines, counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=ROOT / "results")
    parser.add_argument("--times", type=Path, help="paper,seconds of each preset's run")
    parser.add_argument("--source", default="torchvision's MNIST", help="the data, in words")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "evidence.md")
    args = parser.parse_args(argv)
    times = (pd.read_csv(args.times).set_index("paper")["seconds"].to_dict()
             if args.times and args.times.exists() else {})
    papers = sorted(p.parent.name for p in ROOT.glob("workflow/presets/*/mnist.yaml"))
    known = causes()
    lines = ["# Evidence on real MNIST", "",
             "Written by `make evidence` (scripts/evidence.sh, scripts/evidence.py) from the "
             "results of each paper's `mnist.yaml`; edit the presets or "
             "docs/evidence_causes.yaml, not this page.", "",
             f"Data: {args.source}.", "", f"How a claim is decided: {RULE}", ""]
    sections, summary = [], ["| paper | holds | does not hold | not decided | not measured | "
                             "wall time |", "|---|---|---|---|---|---|"]
    for paper in papers:
        results = args.results / f"{paper}-mnist"
        if not (results / "tables" / paper / "claims.csv").exists():
            sections += [f"## {paper}", "", f"No results in {results}: run `make evidence`.", ""]
            summary.append(f"| {paper} | no results | | | | |")
            continue
        seconds = times.get(paper)
        body, counts = section(paper, results, seconds, known.get(paper, []))
        sections += body
        summary.append(f"| {paper} | " + " | ".join(
            str(counts.get(v, 0)) for v in ("holds", "does not hold", "not decided",
                                            "not measured"))
            + f" | {f'{seconds:.0f} s' if seconds is not None else 'not recorded'} |")
    lines += ["Claims per paper:", "", *summary, "", *sections]
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text("\n".join(lines))
    tmp.replace(args.out)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
