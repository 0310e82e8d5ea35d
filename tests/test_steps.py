"""Each workflow step as the library call it makes, in-process: aggregation, the selection of
runs, the checkpoint protocol, the report's macros and its page check."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from conftest import ROOT, tiny_config

from nclayers import experiment, runs
from nclayers.aggregate import aggregate
from nclayers.io import TableError
from nclayers.report import feature_macros, figure_caption, overfull_boxes, rst_caption
from nclayers.sweeps import analysed_runs, figure_run, only_selected
from nclayers.vocabulary import SPECTRA_COLUMNS, TIDY_COLUMNS


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A two-epoch run of the tiny experiment: (spec, run directory)."""
    out = tmp_path_factory.mktemp("run")
    config = tiny_config()
    config["train"].update(epochs=2, checkpoints=[0, 2])
    spec = next(iter(experiment.expand_runs(config).values()))
    runs.train_run(spec, out, progress=False)
    return spec, out


def test_measure_checkpoints_gives_tidy_tables_with_the_run(trained):
    spec, out = trained
    metrics, spectra = runs.measure_checkpoints(spec, [runs.checkpoint_path(out, 2)])
    assert list(metrics.columns) == TIDY_COLUMNS and list(spectra.columns) == SPECTRA_COLUMNS
    assert set(metrics["run"]) == {spec["run"]} and set(metrics["epoch"]) == {2}
    assert set(metrics["layer_index"]) == {0, 1, 2, 3}


def test_checkpoints_measured_together_equal_each_measured_alone(trained, tmp_path):
    """One job measures all of a run's checkpoints with one model and one copy of the data:
    its rows are those of each checkpoint measured alone, value for value; a divergence
    marker adds none, and a run of markers only gives empty tables with the columns."""
    spec, out = trained
    marker = tmp_path / "epoch5.pt"
    torch.save(runs.DIVERGED_MARKER | {"epoch": 5}, marker)
    paths = [runs.checkpoint_path(out, 2), marker, runs.checkpoint_path(out, 0)]
    metrics, spectra = runs.measure_checkpoints(spec, paths)
    alone = [runs.measure_checkpoints(spec, [path]) for path in (paths[0], paths[2])]
    for together, name in ((metrics, 0), (spectra, 1)):
        expected = pd.concat([tables[name] for tables in alone], ignore_index=True)
        pd.testing.assert_frame_equal(together, expected, check_exact=True)
    assert list(metrics["epoch"].unique()) == [2, 0]
    metrics, spectra = runs.measure_checkpoints(spec, [marker])
    assert metrics.empty and list(metrics.columns) == TIDY_COLUMNS
    assert spectra.empty and list(spectra.columns) == SPECTRA_COLUMNS


def test_load_checkpoint_reads_weights_and_diverged_markers(trained, tmp_path):
    spec, out = trained
    model, splits, epoch = runs.load_checkpoint(spec, runs.checkpoint_path(out, 2))
    saved = torch.load(runs.checkpoint_path(out, 2), weights_only=True)["model"]
    assert epoch == 2 and all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())
    assert len(splits.y_train) > 0
    marker = tmp_path / "epoch5.pt"
    torch.save(runs.DIVERGED_MARKER | {"epoch": 5}, marker)
    unloadable = {**spec, "dataset": {"label": "m", "name": "mnist"},
                  "data": {"root": str(tmp_path / "nowhere")}}
    assert runs.load_checkpoint(unloadable, marker) is None  # and no data was read


def test_a_truncated_checkpoint_names_its_file_and_the_fix(trained, tmp_path):
    spec, out = trained
    broken = tmp_path / "checkpoints" / "epoch2.pt"
    broken.parent.mkdir()
    broken.write_bytes(runs.checkpoint_path(out, 2).read_bytes()[:500])
    with pytest.raises(runs.CheckpointError,
                       match="epoch2.pt.*--forcerun .*checkpoints`"):
        runs.load_checkpoint(spec, broken)


def test_aggregate_adds_derived_rows_sorted_and_typed(trained, tmp_path):
    spec, out = trained
    paths = {"metrics": [], "spectra": []}
    for epoch in (2, 0):  # out of order on purpose
        metrics, spectra = runs.measure_checkpoints(spec, [runs.checkpoint_path(out, epoch)])
        for name, table in (("metrics", metrics), ("spectra", spectra)):
            paths[name].append(tmp_path / f"{name}{epoch}.csv")
            table.to_csv(paths[name][-1], index=False)
    tables = aggregate(paths["metrics"], [out / "train_log.csv"], paths["spectra"])
    metrics = tables["metrics"]
    assert list(metrics.columns) == [*TIDY_COLUMNS, "group"]  # no axes: no axis columns
    assert str(metrics["layer_index"].dtype) == "Int64"
    assert metrics["epoch"].is_monotonic_increasing
    derived = metrics[metrics["layer"].isna()]
    assert set(derived["metric"]) == {"collapse_layer", "effective_depth", "interpolation_epoch"}
    assert len(tables["training"]) == 3 and set(tables["spectra"]["epoch"]) == {0, 2}


def test_aggregate_names_the_file_and_line_of_a_bad_number(trained, tmp_path):
    spec, out = trained
    metrics, spectra = runs.measure_checkpoints(spec, [runs.checkpoint_path(out, 2)])
    metrics["value"] = metrics["value"].astype(object)
    metrics.loc[3, "value"] = "oops"
    bad = tmp_path / "epoch2.csv"
    metrics.to_csv(bad, index=False)
    spectra.to_csv(tmp_path / "s.csv", index=False)
    with pytest.raises(TableError, match=r"epoch2\.csv, line 5: value = 'oops' is not a number"):
        aggregate([bad], [out / "train_log.csv"], [tmp_path / "s.csv"])


def runs_table(tmp_path, selected: list[bool]):
    table = pd.DataFrame({"run": [f"r{i}" for i in range(len(selected))],
                          "selected": selected})
    table.to_csv(tmp_path / "runs.csv", index=False)
    return table


def test_selected_runs_and_the_run_the_report_shows(tmp_path):
    table = runs_table(tmp_path, [False, True, True])
    tidy = pd.DataFrame({"run": ["r0", "r1", "r2", "r1"], "value": [1, 2, 3, 4]})
    assert list(only_selected(tidy, table)["value"]) == [2, 3, 4]
    assert figure_run(tmp_path / "runs.csv") == "r1"
    runs_table(tmp_path, [False, False])  # every run diverged: the first one, for placeholders
    assert figure_run(tmp_path / "runs.csv") == "r0"


def test_features_runs_choose_the_analysed_runs(tmp_path):
    runs_table(tmp_path, [False, True, True, False])
    path = tmp_path / "runs.csv"
    assert analysed_runs(path, "selected") == ["r1", "r2"]
    assert analysed_runs(path, "all") == ["r0", "r1", "r2", "r3"]
    assert analysed_runs(path, ["r3", "r0"]) == ["r0", "r3"]  # in runs.csv's order
    assert figure_run(path, ["r3", "r2"]) == "r2"  # the selected one among them
    assert figure_run(path, ["r3", "r0"]) == "r0"


def test_feature_macros_name_the_selected_runs_folder(tmp_path):
    runs_table(tmp_path, [False, True])
    folder = tmp_path / "figures" / "features" / "r1" / "epoch3"
    macros = feature_macros(tmp_path / "runs.csv", [folder / "a.pdf", folder / "b.pdf"],
                            tmp_path)
    assert macros == {"FeatureRun": "r1", "FeatureDir": "figures/features/r1/epoch3"}
    with pytest.raises(ValueError, match="one folder"):
        feature_macros(tmp_path / "runs.csv", [folder / "a.pdf", tmp_path / "b.pdf"], tmp_path)


def test_overfull_boxes_are_found_in_a_latex_log():
    log = ("Overfull \\hbox (52.3pt too wide) in alignment at lines 10--20\n"
           "Overfull \\hbox (0.4pt too wide) in paragraph at lines 3--4\n"
           "Underfull \\hbox (badness 10000) in paragraph\n")
    assert overfull_boxes(log) == ["52.3pt too wide in alignment at lines 10--20"]


def test_a_figures_caption_is_the_pdfs_as_plain_text(tmp_path):
    """snakemake --report shows each figure with the caption the PDF gives it."""
    tex = tmp_path / "section.tex"
    tex.write_text(r"""\begin{figure}[htbp]
  \includegraphics[width=\linewidth]{figures/p/fig2_traces.pdf}
  \caption{The ratio $\mathrm{Tr}\,\Sigma_W/\mathrm{Tr}\,\Sigma_T$ per layer
  (\textit{log} scale, $\varepsilon = 0.2$, \FinalTrainAcc{} train accuracy; Fig.~2).}
\end{figure}""")
    assert figure_caption(tex, "fig2_traces") == (
        "The ratio Tr Σ_W/Tr Σ_T per layer (log scale, ε = 0.2, (see the PDF) train "
        "accuracy; Fig. 2).")
    assert rst_caption(tex, "fig2_traces").startswith(r"The ratio Tr Σ\_W/Tr Σ\_T")
    assert figure_caption(tex, "traces") == ""  # another figure's name is not this one's
    report = ROOT / "paper" / "report.tex"
    assert "band over seeds" in figure_caption(report, "nc1_by_layer")


def test_feature_figures_of_a_diverged_run_say_so(tmp_path):
    """A diverged run's feature analysis is tables without rows: each of the eight figures is a
    page that says so, instead of a failed report."""
    from nclayers.cli import main
    from nclayers.vocabulary import FEATURE_COLUMNS, FEATURE_FIGURES

    for name, columns in FEATURE_COLUMNS.items():
        (tmp_path / f"{name}.csv").write_text(",".join(columns) + "\n")
    main(["feature-figures", "--dir", str(tmp_path), "--out-dir", str(tmp_path / "figures")])
    pages = sorted((tmp_path / "figures").glob("*.pdf"))
    assert [p.stem for p in pages] == sorted(FEATURE_FIGURES)
    assert all(p.read_bytes()[:5] == b"%PDF-" for p in pages)
