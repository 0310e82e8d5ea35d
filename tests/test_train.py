"""Training: schedules, losses, resume (in process and by killing a real process), divergence,
sweeps and the choice of the best run."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_config

from nclayers import data, experiment, models, runs
from nclayers.sweeps import run_records, select_best
from nclayers.train import Recipe, fit, lr_factor, svsl_term


@pytest.mark.parametrize("options", [{}, {"onecycle_pct": 0.25, "onecycle_div": 10.0,
                                           "onecycle_final_div": 5e4}])
def test_onecycle_matches_torch_onecycle(options):
    """torch's defaults, and Parker et al.'s code's (div_factor 10, final_div_factor 5e4)."""
    recipe = Recipe(epochs=7, batch_size=1, lr=0.3, schedule="onecycle", **options)
    steps = 11
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.3)
    torch_names = {"onecycle_pct": "pct_start", "onecycle_div": "div_factor",
                   "onecycle_final_div": "final_div_factor"}
    ref = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.3, total_steps=7 * steps,
                                              cycle_momentum=False,
                                              **{torch_names[k]: v for k, v in options.items()})
    for step in range(7 * steps):
        assert recipe.lr * lr_factor(recipe, step, steps) == pytest.approx(
            opt.param_groups[0]["lr"], rel=1e-12)
        opt.step()
        ref.step()


def test_multistep_with_warmup():
    recipe = Recipe(epochs=10, batch_size=1, lr=1.0, schedule="multistep", milestones=[4, 8],
                    lr_decay=0.1, warmup_epochs=2)
    factors = [lr_factor(recipe, step, 5) for step in range(50)]
    assert factors[:10] == pytest.approx([(i + 1) / 10 for i in range(10)])
    assert factors[10:20] == [1.0] * 10
    assert factors[20:40] == pytest.approx([0.1] * 20)
    assert factors[40:] == pytest.approx([0.01] * 10)


def test_constant_schedule_and_unknown_names():
    assert lr_factor(Recipe(epochs=3, batch_size=1, lr=1.0), 7, 4) == 1.0
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        Recipe(epochs=1, batch_size=1, lr=1.0, loss="hinge")
    with pytest.raises(ValueError, match="unknown schedule 'cosine'"):
        Recipe(epochs=1, batch_size=1, lr=1.0, schedule="cosine")
    with pytest.raises(ValueError, match="unknown optimizer 'adam'; known: sgd, adamw"):
        Recipe(epochs=1, batch_size=1, lr=1.0, optimizer="adam")


def test_make_optimizer_builds_sgd_or_adamw_over_the_trainable_parameters():
    from nclayers.train import make_optimizer

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    model[1].weight.requires_grad_(False)
    sgd = make_optimizer(Recipe(1, 1, 0.1, momentum=0.8, weight_decay=1e-3), model)
    adamw = make_optimizer(Recipe(1, 1, 0.1, momentum=0.8, weight_decay=1e-2,
                                  optimizer="adamw"), model)
    assert type(sgd) is torch.optim.SGD and sgd.defaults["momentum"] == 0.8
    assert type(adamw) is torch.optim.AdamW and adamw.defaults["betas"] == (0.8, 0.999)
    assert adamw.defaults["weight_decay"] == 1e-2
    for opt in (sgd, adamw):  # the fixed weight is neither updated nor decayed
        assert sum(len(g["params"]) for g in opt.param_groups) == 3


@pytest.mark.parametrize(("options", "refusal"), [
    ({"optimizer": "adamw", "momentum": 1.0}, "Invalid beta parameter at index 0: 1.0"),
    ({"lr": -0.1}, "Invalid learning rate"),
    ({"momentum": -0.5}, "Invalid momentum value"),
    ({"weight_decay": -1e-4}, "Invalid weight_decay value"),
])
def test_check_optimizer_runs_torchs_checks_of_the_options(options, refusal):
    from nclayers.train import check_optimizer

    with pytest.raises(ValueError, match=refusal):
        check_optimizer(Recipe(**{"epochs": 1, "batch_size": 1, "lr": 0.1, **options}))
    for fine in ({}, {"optimizer": "adamw", "momentum": 0.9}):
        check_optimizer(Recipe(**{"epochs": 1, "batch_size": 1, "lr": 0.1, **fine}))


def test_check_optimizer_does_not_import_torch_dynamo():
    # 1.3 s of every `snakemake` start, which checks the recipe (preflight._check_recipe)
    code = ("import sys; from nclayers.train import Recipe, check_optimizer; "
            "check_optimizer(Recipe(1, 1, 0.1, optimizer='adamw')); "
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["False"]


def test_svsl_term_equals_the_papers_sum():
    """benshaul2022 eq. 5: mean over i of Σ_j ‖g_j(x_i) − μ_{y_i,B}^j‖² / (C (k+1−γ) n_{y_i})."""
    torch.manual_seed(0)
    C = 4
    y = torch.tensor([0, 0, 1, 2, 2, 2, 0, 1])  # class 3 absent from the batch
    feats = [torch.randn(8, 5), torch.randn(8, 2, 3)]
    naive = 0.0
    for i in range(8):
        c = int(y[i])
        n_c = int((y == c).sum())
        for g in feats:
            g = g.flatten(1)
            naive += float(((g[i] - g[y == c].mean(0)) ** 2).sum()) / (C * len(feats) * n_c)
    assert float(svsl_term(feats, y, C)) == pytest.approx(naive / 8, rel=1e-6)


def digits_model(seed=0, **options):
    splits = data.load("digits")
    torch.manual_seed(seed)
    return models.build("mlp", splits.input_shape, 10, **{"depth": 2, "width": 32, **options}), \
        splits


def test_svsl_with_zero_alpha_is_cross_entropy_and_svsl_trains():
    (a, splits), (b, _) = digits_model(), digits_model()
    log_a = fit(a, splits, Recipe(epochs=2, batch_size=64, lr=0.05, loss="ce"), seed=0,
                progress=False)
    log_b = fit(b, splits, Recipe(epochs=2, batch_size=64, lr=0.05, loss="svsl", svsl_alpha=0.0),
                seed=0, progress=False)
    assert pd.DataFrame(log_a).equals(pd.DataFrame(log_b))
    c, _ = digits_model()
    log_c = fit(c, splits, Recipe(epochs=3, batch_size=64, lr=0.05, loss="svsl", svsl_alpha=1.0,
                                  svsl_gamma=2), seed=0, progress=False)
    assert log_c[-1]["train_acc"] > 0.8


def test_svsl_gamma_out_of_range():
    model, splits = digits_model()
    with pytest.raises(ValueError, match="svsl_gamma must lie in 1..2"):
        fit(model, splits, Recipe(epochs=1, batch_size=64, lr=0.1, loss="svsl", svsl_gamma=3),
            seed=0, progress=False)


def test_svsl_gamma_by_layer_name_equals_its_position():
    """svsl_gamma may name the layer (Ben-Shaul & Dekel's Layer1, AvgPool, ...)."""
    logs = []
    for gamma in (2, None):
        model, splits = digits_model()
        name = gamma or [n for n in model.tapped_layers if n != "input"][1]
        logs.append(fit(model, splits, Recipe(epochs=2, batch_size=64, lr=0.05, loss="svsl",
                                              svsl_alpha=1.0, svsl_gamma=name),
                        seed=0, progress=False))
    assert pd.DataFrame(logs[0]).equals(pd.DataFrame(logs[1]))
    model, splits = digits_model()
    with pytest.raises(ValueError, match="svsl_gamma 'layer9' is not a hidden tapped layer"):
        fit(model, splits, Recipe(epochs=1, batch_size=64, lr=0.1, loss="svsl",
                                  svsl_gamma="layer9"), seed=0, progress=False)


def test_resume_in_process_is_bitwise():
    recipe = Recipe(epochs=6, batch_size=64, lr=0.05, schedule="onecycle")
    full, splits = digits_model()
    log_full = fit(full, splits, recipe, seed=3, progress=False)
    saved = {}

    def keep(state):
        if state["log"][-1]["epoch"] == 3:
            saved.update(copy.deepcopy(state))

    first, _ = digits_model()
    fit(first, splits, recipe, seed=3, on_epoch_end=keep, progress=False)
    resumed, _ = digits_model(seed=99)  # different init: everything must come from the state
    log_resumed = fit(resumed, splits, recipe, seed=3, resume=saved, progress=False)
    assert pd.DataFrame(log_resumed).equals(pd.DataFrame(log_full))
    for key, value in full.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def run_spec(tmp_path, **train):
    config = tiny_config()
    config["architectures"]["mlp6"].update(depth=4, width=128)
    config["train"].update({"epochs": 150, "checkpoints": [0, 20, 150], **train})
    return next(iter(experiment.expand_runs(config).values()))


def train_process(spec, out_dir):
    return subprocess.Popen([sys.executable, "-m", "nclayers", "train", "--spec",
                             json.dumps(spec), "--out-dir", str(out_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def saved_epoch(out_dir) -> int:
    path = out_dir / runs.RESUME_DIR / "state.pt"
    try:
        return torch.load(path, weights_only=True)["epoch"]
    except (FileNotFoundError, RuntimeError, EOFError):
        return -1


def test_killed_training_resumes_bitwise(tmp_path):
    """Kill a real training process twice (SIGKILL, mid-epoch), rerun, compare; the layers
    measured every other epoch (fused with the log's evaluation there, not between) too."""
    spec = run_spec(tmp_path, epoch_metrics={"every": 2})
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    reference = train_process(spec, straight)
    for kill_after in (12, 35):
        proc = train_process(spec, killed)
        deadline = time.time() + 120
        while saved_epoch(killed) < kill_after and proc.poll() is None:
            assert time.time() < deadline, "training made no progress"
            time.sleep(0.05)
        proc.kill()
        proc.wait()
        assert saved_epoch(killed) < 150, "the run finished before it could be killed"
    assert (killed / "checkpoints" / "epoch20.pt").exists()  # published before the kills
    out, _ = train_process(spec, killed).communicate()
    assert b"resuming" in out
    reference.communicate()
    a, b = (pd.read_csv(d / "train_log.csv") for d in (straight, killed))
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    metrics = [(d / "epoch_metrics.csv").read_bytes() for d in (straight, killed)]
    assert metrics[0] == metrics[1]
    assert len(pd.read_csv(straight / "epoch_metrics.csv")["epoch"].unique()) == 76
    for epoch in (0, 20, 150):
        wa, wb = (torch.load(d / "checkpoints" / f"epoch{epoch}.pt", weights_only=True)["model"]
                  for d in (straight, killed))
        assert all(torch.equal(wa[k], wb[k]) for k in wa), epoch
    assert not (killed / runs.RESUME_DIR).exists()


def test_resume_state_of_another_spec_is_discarded(tmp_path):
    spec = run_spec(tmp_path, epochs=4, checkpoints=[0, 4])
    other = {**spec, "seed": 5}
    state_dir = tmp_path / runs.RESUME_DIR
    state_dir.mkdir()
    torch.save({"spec": other, "log": [{"epoch": 2}]}, state_dir / "state.pt")
    info = runs.train_run(spec, tmp_path, progress=False)
    assert info["final_epoch"] == 4


def test_divergence_is_recorded_and_every_output_still_written(tmp_path):
    spec = run_spec(tmp_path, lr=1e4, epochs=5, checkpoints=[0, 2, 5])
    spec["arch"]["batchnorm"] = False
    info = runs.train_run(spec, tmp_path, progress=False)
    assert info["diverged"] and info["final_epoch"] <= 5
    for epoch in (0, 2, 5):
        assert (tmp_path / "checkpoints" / f"epoch{epoch}.pt").exists()
    marker = torch.load(tmp_path / "checkpoints" / "epoch5.pt", weights_only=True)
    assert marker["diverged"] and marker["model"] is None
    log = pd.read_csv(tmp_path / "train_log.csv")
    assert log["diverged"].iloc[-1] and not log["diverged"].iloc[0]
    out = tmp_path / "m.csv"
    subprocess.run([sys.executable, "-m", "nclayers", "measure", "--info",
                    str(tmp_path / "run.json"), "--checkpoint",
                    str(tmp_path / "checkpoints" / "epoch5.pt"), "--out", str(out),
                    "--spectra", str(tmp_path / "s.csv")], check=True)
    assert pd.read_csv(out).empty and pd.read_csv(tmp_path / "s.csv").empty


def test_sweep_expands_into_runs_with_tags():
    config = tiny_config(seeds=[0, 1])
    config["train"].update(lr=[0.01, 0.1], weight_decay=[0.0, 5e-4])
    specs = experiment.expand_runs(config)
    assert len(specs) == 8
    assert "digits-mlp6-lr0.1-wd0.0005-s1" in specs
    spec = specs["digits-mlp6-lr0.1-wd0.0005-s1"]
    assert (spec["train"]["lr"], spec["train"]["weight_decay"]) == (0.1, 5e-4)
    config["train"].update(lr=[0.01], weight_decay=5e-4)
    assert list(experiment.expand_runs(config)) == ["digits-mlp6-s0", "digits-mlp6-s1"]


def info(run, lr, seed, acc, diverged=False, arch="a"):
    return {"run": run, "dataset": {"label": "d"}, "arch": {"label": arch}, "seed": seed,
            "train": {"lr": lr, "weight_decay": 0.0}, "diverged": diverged,
            "final_train_acc": 1.0, "final_test_acc": acc}


def test_select_best_by_mean_test_accuracy_never_a_diverged_setting():
    table = select_best(run_records([
        info("x1", 0.1, 0, 0.90), info("x2", 0.1, 1, 0.80),  # mean 0.85
        info("y1", 0.01, 0, 0.86), info("y2", 0.01, 1, 0.86),  # mean 0.86: best
        info("z1", 1.0, 0, 0.99), info("z2", 1.0, 1, float("nan"), diverged=True),
        info("b1", 0.1, 0, 0.5, arch="b"),
    ]))
    assert set(table.loc[table["selected"], "run"]) == {"y1", "y2", "b1"}


def test_fixed_layers_are_left_out_of_the_optimiser():
    model, splits = digits_model()
    model.classifier.weight.requires_grad_(False)
    before = model.classifier.weight.clone()
    fit(model, splits, Recipe(epochs=1, batch_size=64, lr=0.1, weight_decay=0.1), seed=0,
        progress=False)
    assert torch.equal(before, model.classifier.weight)  # no decay either


def test_mse_scale_scales_the_targets():
    out, y = torch.zeros(3, 4), torch.tensor([0, 1, 3])
    from nclayers.train import mse_loss
    assert float(mse_loss(out, y, 5.0, "sum")) == pytest.approx(25.0)
    assert float(mse_loss(out, y, 5.0)) == pytest.approx(25.0 / 4)


def test_the_mse_loss_is_torchs_mse_loss_by_default():
    """The papers' code (Rangamani et al., Lindegaard) trains with torch.nn.MSELoss() on
    one-hot targets: the mean over samples and classes; "sum" is C times that."""
    from nclayers.train import mse_loss
    generator = torch.Generator().manual_seed(0)
    out = torch.randn(32, 10, generator=generator, requires_grad=True)
    y = torch.randint(0, 10, (32,), generator=generator)
    want = torch.nn.MSELoss()(out, F.one_hot(y, 10).float())
    assert torch.equal(mse_loss(out, y, 1.0), want)
    assert Recipe(1, 8, 0.1).mse_reduction == "mean"
    assert float(mse_loss(out, y, 1.0, "sum")) == pytest.approx(10 * float(want))
    with pytest.raises(ValueError, match="mse_reduction"):
        Recipe(1, 8, 0.1, mse_reduction="none")


VISION = ["mnist", "fashion_mnist", "cifar10", "cifar100", "svhn", "stl10"]
ARCHS = {"mlp": {"depth": 2, "width": 16}, "convnet": {"depth": 2, "width": 8},
         "vgg11": {"width": 4}, "resnet18": {"width": 4}, "resnet34": {"width": 4},
         "resnet50": {"width": 4}}


def tiny_spec(dataset: dict, arch: dict, root, **train) -> dict:
    config = tiny_config(datasets={"d": dataset}, architectures={"a": arch},
                         data={"root": str(root), "download": False})
    config["train"].update({"epochs": 1, "batch_size": 16, "checkpoints": [], **train})
    experiment.check_names(config)
    return next(iter(experiment.expand_runs(config).values()))


@pytest.mark.parametrize("name", VISION)
def test_every_dataset_trains_through_its_real_loader(name, tmp_path, monkeypatch):
    from test_data import build

    build(name, tmp_path / "data", monkeypatch, n_train=200 if name == "cifar100" else 40)
    spec = tiny_spec({"name": name, "resize": 32}, {"name": "convnet", "depth": 2, "width": 8},
                     tmp_path / "data", loss="ce")
    info = runs.train_run(spec, tmp_path / "run", progress=False)
    assert not info["diverged"] and info["n_train"] > 0
    assert (tmp_path / "run" / "checkpoints" / "epoch1.pt").exists()


@pytest.mark.parametrize("arch", list(ARCHS))
def test_every_architecture_trains(arch, tmp_path, monkeypatch):
    from test_data import build

    build("cifar10", tmp_path / "data", monkeypatch, n_train=32, n_test=16)
    spec = tiny_spec({"name": "cifar10", "label_noise": 0.25, "per_class": 3},
                     {"name": arch, **ARCHS[arch]}, tmp_path / "data")
    info = runs.train_run(spec, tmp_path / "run", progress=False)
    assert not info["diverged"] and info["n_train"] == 30


@pytest.mark.parametrize("loss", ["mse", "ce", "svsl"])
@pytest.mark.parametrize("schedule", ["constant", "onecycle", "multistep"])
def test_every_loss_and_schedule_trains(loss, schedule, tmp_path):
    spec = tiny_spec({"name": "digits"}, {"name": "mlp", "depth": 2, "width": 32}, tmp_path,
                     loss=loss, schedule=schedule, epochs=3, milestones=[2], warmup_epochs=1,
                     svsl_alpha=1e-3, lr=0.05)
    info = runs.train_run(spec, tmp_path, progress=False)
    assert not info["diverged"] and info["final_train_acc"] > 0.5


def test_etf_layers_stay_fixed_through_a_run(tmp_path):
    spec = tiny_spec({"name": "digits"}, {"name": "mlp", "depth": 3, "width": 32,
                                          "etf_layers": 2}, tmp_path, epochs=2, checkpoints=[0])
    info = runs.train_run(spec, tmp_path, progress=False)
    assert info["trainable_parameters"] < info["parameters"]
    first, last = (torch.load(tmp_path / "checkpoints" / f"epoch{e}.pt", weights_only=True)
                   ["model"] for e in (0, 2))
    assert torch.equal(first["classifier.weight"], last["classifier.weight"])
    assert not torch.equal(first["layer1.0.weight"], last["layer1.0.weight"])


def test_augmented_training_is_seeded_and_bitwise_repeatable():
    """Crop, flip and rotation drawn from the run's generator: the same seed gives the same
    run bitwise on CPU, and the augmentation changes the training (the train split only)."""
    splits = data.load("digits")

    def run(augment: dict) -> list[dict]:
        torch.manual_seed(0)
        model = models.build("mlp", splits.input_shape, splits.num_classes, depth=2, width=16)
        recipe = Recipe(epochs=2, batch_size=64, lr=0.05, augment=augment)
        return fit(model, splits, recipe, seed=0, progress=False)

    augment = {"crop": 1, "flip": True, "rotate": 90}
    first, second, plain = run(augment), run(augment), run({})
    assert pd.DataFrame(first).equals(pd.DataFrame(second))
    assert first[0]["eval_train_loss"] == plain[0]["eval_train_loss"]  # before any step
    assert first[-1]["train_loss"] != plain[-1]["train_loss"]
