"""The papers' sections of the report (nclayers.papers): the registry against the vocabulary,
the schema, the presets and the sections; the claims table's TeX; the steps that draw a
paper's figures and tables."""

from __future__ import annotations

import ast
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import ROOT

from nclayers.io import TABLE_COLUMNS
from nclayers.papers import (
    AGGREGATED,
    CLAIM_COLUMNS,
    FEATURE_PAPER_TABLES,
    Tables,
    claims_frame,
    paper,
)
from nclayers.report import sections
from nclayers.sweeps import analysed_runs
from nclayers.tables import claims_tex, frame_tex, mean_sd, per_run, runs_tex, tex_escape
from nclayers.vocabulary import (
    FEATURE_PAPERS,
    PAPER_FIGURE_READS,
    PAPER_FIGURES,
    PAPER_TABLES,
    Thresholds,
)

PAPERS = sorted(PAPER_FIGURES)


@pytest.mark.parametrize("name", PAPERS)
def test_each_paper_module_draws_the_figures_and_tables_the_vocabulary_names(name):
    module = paper(name)
    assert tuple(module.FIGURES) == PAPER_FIGURES[name]
    assert tuple(module.TABLES) == PAPER_TABLES[name]
    assert "claims" in module.TABLES


def reads_features(module) -> bool:
    """Whether a module's code reads an attribute ``features`` (``t.features``, or
    ``getattr(t, "features")``) or calls ``query.feature_table``: what a paper reads the
    feature analysis through."""
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        if isinstance(node, ast.Attribute) and node.attr in ("features", "feature_table"):
            return True
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "getattr" and \
                any(isinstance(a, ast.Constant) and a.value == "features" for a in node.args):
            return True
    return False


@pytest.mark.parametrize("name", PAPERS)
def test_a_paper_reads_the_feature_analysis_only_where_its_jobs_wait_for_it(name):
    """The workflow gives a paper's jobs the feature analysis's tables only for the papers of
    FEATURE_PAPERS: one that read them unlisted would silently see none."""
    assert reads_features(paper(name)) == (name in FEATURE_PAPERS)


@pytest.mark.parametrize("name", PAPERS)
def test_each_paper_has_a_report_section_showing_all_its_figures_and_tables(name):
    tex = (ROOT / "paper" / "sections" / f"{name}.tex").read_text()
    assert r"\section{" in tex
    for figure in PAPER_FIGURES[name]:
        assert f"figures/{name}/{figure}.pdf" in tex, figure
    for table in PAPER_TABLES[name]:
        assert f"tables/{name}/{table}.tex" in tex, table


@pytest.mark.parametrize("name", PAPERS)
def test_each_paper_has_a_full_and_a_smoke_preset_that_report_it(name):
    for scale in ("full", "smoke"):
        config = yaml.safe_load((ROOT / "workflow" / "presets" / name / f"{scale}.yaml")
                                .read_text())
        assert name in config["report"]["papers"], scale
        assert config["experiment"] == (name if scale == "full" else f"{name}-smoke")


def test_the_schema_knows_exactly_the_registered_papers():
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    papers = schema["properties"]["report"]["properties"]["papers"]["items"]["enum"]
    assert sorted(papers) == PAPERS


def test_an_unknown_paper_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown paper 'smith2020'; known: "):
        paper("smith2020")


def test_claims_tex_says_each_verdict_in_words_and_bolds_a_claim_that_fails():
    claims = claims_frame([
        {"claim": "NC1 ratio < ε from ℓ* on", "where": "§5", "measured": "ℓ* = 3",
         "holds": True},
        {"claim": "top C singular values ≥ 90 %", "where": "Fig. 6", "measured": "0.42",
         "holds": False},
        {"claim": "ETF layers keep accuracy", "where": "Fig. 7", "measured": "no etf axis",
         "holds": None},
    ])
    assert list(claims.columns) == CLAIM_COLUMNS
    tex = claims_tex(claims)
    assert r"\textbf{does not hold}" in tex and " & holds \\" in tex
    assert "not measured" in tex
    assert r"$\varepsilon$" in tex and r"$\ell$" in tex and r"90 \%" in tex
    assert not re.search(r"[^\x00-\x7f]", tex), "pdflatex cannot typeset raw unicode"


def test_claims_tex_reads_verdicts_back_from_a_csv_as_well():
    """A claims.csv read back has NaN, not None, where nothing was measured."""
    claims = pd.DataFrame({"claim": ["a", "b"], "where": ["", ""], "measured": ["", ""],
                           "holds": [float("nan"), True]})
    assert claims_tex(claims).count("not measured") == 1


def test_frame_tex_writes_numbers_to_three_digits_and_missing_values_as_dashes():
    tex = frame_tex(pd.DataFrame({"depth": [2, 16], "nc_1": [0.123456, float("nan")]}))
    assert r"depth & nc\_1 \\" in tex and "2 & 0.123" in tex and "16 & --" in tex


@pytest.mark.parametrize("values, shown", [
    ([1.0, 0.9992], r"0.9996 $\pm$ 0.0006"),  # not "1 ± 0.000563": the sd's first digit
    ([11.76, 11.27], r"11.5 $\pm$ 0.3"),
    ([1234, 1200], r"1220 $\pm$ 20"),  # rounded to tens like the sd
    ([0.5, 0.5], "0.5"), ([0.3], "0.3"), ([float("nan")] * 2, "--")])
def test_mean_sd_rounds_both_at_the_sds_first_significant_digit(values, shown):
    assert mean_sd(pd.Series(values)) == shown


@pytest.mark.parametrize("values, words", [
    ([6.0], "6"), ([6.0, 6.0], "6 in every run"), ([5.0, 6.0], "5 and 6 in the 2 runs"),
    ([3.0, float("nan"), 4.0], "3, none and 4 in the 3 runs")])
def test_the_abstract_quotes_each_runs_layer_not_a_mean(values, words):
    assert per_run(pd.Series(values)) == words


def test_tex_escape_turns_specials_and_unicode_into_latex():
    assert tex_escape("a_b 5% x^2 Σ_W ≤ 1") == r"a\_b 5\% x\^{}2 $\Sigma$\_W $\leq$ 1"
    assert tex_escape("σ\u0303_k") == r"$\sigma$\_k"  # a combining mark would stop pdflatex


def test_runs_tex_shows_the_axes_that_tell_runs_apart():
    runs = pd.DataFrame({
        "run": ["a", "b"], "group": ["g", "g"], "dataset": ["digits"] * 2, "arch": ["mlp"] * 2,
        "seed": [0, 0], "etf_layers": [0, 2], "lr": [0.01, 0.01], "weight_decay": [5e-4] * 2,
        "diverged": [False, False], "final_epoch": [3, 3], "final_train_acc": [1.0, 0.9],
        "final_test_acc": [0.95, 0.9], "selected": [True, True]})
    tex = runs_tex(runs)
    assert r"Run & etf\_layers & lr & wd" in tex and "b & 2 & 0.01" in tex
    assert "group" not in tex  # one group: no column


def test_runs_tex_shows_each_settings_test_accuracy_over_its_seeds():
    """What select_best compares: the mean ± sd of a setting's seeds that did not diverge."""
    runs = pd.DataFrame({
        "run": ["g-lr0.1-s0", "g-lr0.1-s1", "g-lr0.3-s0", "g-lr0.3-s1"], "group": ["g"] * 4,
        "dataset": ["digits"] * 4, "arch": ["mlp"] * 4, "seed": [0, 1, 0, 1],
        "lr": [0.1, 0.1, 0.3, 0.3], "weight_decay": [5e-4] * 4,
        "diverged": [False, False, False, True], "final_epoch": [3, 3, 3, 2],
        "final_train_acc": [1.0] * 4, "final_test_acc": [0.90, 0.94, 0.95, float("nan")],
        "selected": [True, True, False, False]})
    tex = runs_tex(runs)
    assert "Over seeds (n)" in tex
    assert tex.count(r"92.0 $\pm$ 2.8 (2)") == 2  # both seeds of lr 0.1
    assert tex.count("95.0 (1)") == 2  # lr 0.3: its seed that did not diverge


def test_report_sections_hold_the_feature_analysis_where_it_ran_then_the_papers():
    text = sections(True, ["parker2023"])
    assert text.startswith("\\input{sections/features.tex}\n\\section*{How the papers' claims")
    assert text.endswith("\n\n\\input{sections/parker2023.tex}\n")
    assert sections(False, []) == "" and "claims" not in sections(True, [])
    assert (ROOT / "paper" / "sections" / "features.tex").exists()


def test_features_runs_none_analyses_no_run(tmp_path):
    path = tmp_path / "runs.csv"
    pd.DataFrame({"run": ["r0"], "selected": [True]}).to_csv(path, index=False)
    assert analysed_runs(path, "none") == []


def test_the_paper_figure_step_refuses_a_figure_the_paper_does_not_have(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "nclayers", "paper-figure", PAPERS[0], "fig99",
         "--tables", str(tmp_path), "--out", str(tmp_path / "x.pdf")],
        capture_output=True, text=True)
    assert proc.returncode == 1
    assert f"{PAPERS[0]} has no figure 'fig99'; its figures: " in proc.stderr
    assert not (tmp_path / "x.pdf").exists()


def tidy_table(path: Path, **columns: list) -> None:
    """A table at ``path`` with ``columns`` for runs a, b, ... and every other column the file
    name asks for (nclayers.io.TABLE_COLUMNS) filled with a placeholder."""
    n = len(next(iter(columns.values())))
    table = pd.DataFrame({"run": list("abcdefgh"[:n]), **columns})
    for column in TABLE_COLUMNS.get(path.name, []):
        if column not in table:
            table[column] = 0
    table.to_csv(path, index=False)


def test_tables_read_holds_the_aggregated_tables_and_the_selected_rows(tmp_path):
    for name in ("metrics", "training", "spectra", "epoch_metrics", "design"):
        tidy_table(tmp_path / f"{name}.csv", value=[1.0, 2.0])
    tidy_table(tmp_path / "runs.csv", selected=[True, False])
    tables = Tables.read(tmp_path, thresholds=Thresholds(collapse_eps=0.1))
    assert tables.thresholds.collapse_eps == 0.1
    assert list(tables.selected(tables.metrics)["run"]) == ["a"]


# --- one place for each helper ------------------------------------------------------------------

PAPERS_DIR = Path(__file__).parents[1] / "workflow" / "nclayers" / "papers"
INTERFACE = {"claims"}  # the one name every paper module defines (its TABLES' "claims")


def _functions(path: Path):
    """(name, body without its docstring) of every function and method defined in ``path``."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body[1:] if (node.body and isinstance(node.body[0], ast.Expr)
                                     and isinstance(node.body[0].value, ast.Constant)) \
                else node.body
            yield node.name, ast.dump(ast.Module(body=body, type_ignores=[]))


def test_no_helper_is_defined_twice_in_the_papers_layer():
    """A module-level function name is defined in one module of papers/ only (but the
    interface's), and no two functions there have the same body under different names."""
    names: dict[str, list[str]] = {}
    bodies: dict[str, list[str]] = {}
    for path in sorted(PAPERS_DIR.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef):
                names.setdefault(node.name, []).append(path.stem)
        for name, body in _functions(path):
            if body.count("\n") or len(body) > 120:  # more than a one-line return
                bodies.setdefault(body, []).append(f"{path.stem}.{name}")
    twice = {n: where for n, where in names.items() if len(where) > 1 and n not in INTERFACE}
    assert twice == {}
    assert [where for where in bodies.values() if len(where) > 1] == []


@pytest.mark.parametrize("name", PAPERS)
def test_each_figure_declares_what_it_reads_and_features_only_where_its_jobs_get_them(name):
    reads = PAPER_FIGURE_READS[name]
    assert tuple(reads) == PAPER_FIGURES[name]
    for figure, tables in reads.items():
        assert set(tables) <= {*AGGREGATED, *FEATURE_PAPER_TABLES}, figure
        if name not in FEATURE_PAPERS:
            assert not set(tables) & set(FEATURE_PAPER_TABLES), figure


def test_a_figure_reads_only_its_tables_and_any_other_fails_naming_it(tmp_path):
    """Tables.read(reads=...) opens only those files (the others need not exist yet: the job
    does not wait for them), and using another table fails with what to declare."""
    tidy_table(tmp_path / "runs.csv", selected=[True])
    tidy_table(tmp_path / "metrics.csv", metric=["nc1"], value=[1.0])
    t = Tables.read(tmp_path, reads=("metrics",), who="figure p/f")
    assert t.metrics["value"].tolist() == [1.0] and t.selected(t.metrics)["run"].tolist() == ["a"]
    for use in (lambda: t.spectra.empty, lambda: t.design["run"], lambda: len(t.training),
                lambda: t.features["clusters"].empty, lambda: bool(t.epoch_metrics)):
        with pytest.raises(LookupError, match="figure p/f reads the table .*PAPER_FIGURE_READS"):
            use()
