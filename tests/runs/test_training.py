"""The SVI loop on small MNIST subsets: learning, repeatability, resuming, divergence, overwrite safety."""

from typing import NamedTuple

import pyro
import pytest
import torch

import pyro_vae
import pyro_vae.runs.loop.vae_training as training
from pyro_vae.errors import ConfigError, DivergenceError
from pyro_vae.modelling.estimators import Evaluation
from pyro_vae.modelling.objectives import DeviceTrace_ELBO
from pyro_vae.modelling.vae import VAE
from pyro_vae.runs.configuration.builders import build_vae, load_dataset, pixel_transform
from pyro_vae.runs.directory import checkpoints
from pyro_vae.runs.loop.early_stopping import StopWithoutImprovement
from pyro_vae.runs.loop.schedules import burda_factor, make_schedule, step_schedule
from pyro_vae.runs.loop.state import TrainingState
from pyro_vae.runs.loop.vae_training import fit
from pyro_vae.runs.tasks.training_run import run_experiment

from ..helpers import compose_config, compose_tiny, read_history, read_metrics, run_py, tiny

# A scripted ``evaluate``'s first value: the untrained model's validation ELBO, measured before epoch 1.
UNTRAINED = -1000.0

pytestmark = pytest.mark.usefixtures("single_thread")


class Fitted(NamedTuple):
    vae: VAE
    state: TrainingState


def fit_new_vae(cfg, run_dir) -> Fitted:
    """training.fit of a freshly built VAE on the CPU, from a cleared Pyro state seeded with ``cfg.seed``
    (resuming from ``run_dir`` where ``cfg.resume``)."""
    pyro.clear_param_store()
    pyro.set_rng_seed(cfg.seed)
    data = load_dataset(cfg, torch.device("cpu"))
    vae = build_vae(cfg, data.image_shape, data.num_classes)
    pixels = pixel_transform(cfg)
    return Fitted(vae, fit(vae, data, pixels, cfg, run_dir))


def test_short_training_raises_the_validation_elbo(tiny_cfg, tmp_path):
    tiny_cfg.epochs = 4
    tiny_cfg.dataset.train_size = 2048
    val = [row["val_elbo"] for row in fit_new_vae(tiny_cfg, tmp_path).state.history]
    assert val[-1] > val[0] + 20, val  # from ~-200 nats towards ~-150 within a few epochs
    assert (tmp_path / "checkpoint.pt").is_file() and (tmp_path / "last.pt").is_file()
    best = checkpoints.read(tmp_path / "checkpoint.pt")
    assert best["val_elbo"] == max(val) and best["epoch"] == val.index(max(val)) + 1


@pytest.mark.parametrize(
    "objective",
    [
        "objective=iwae",  # one run in the fast set, the others in the slow one
        *(
            pytest.param(objective, marks=pytest.mark.slow)
            for objective in ("objective=meanfield", "objective=jit", "optimizer=clipped_adam", "optimizer=rmsprop")
        ),
    ],
)
def test_every_objective_and_optimizer_learns(objective, tmp_path):
    history = fit_new_vae(compose_tiny(objective, "epochs=3", "dataset.train_size=1024"), tmp_path).state.history
    assert history[-1]["val_elbo"] > history[0]["val_elbo"]


def test_cpu_runs_are_repeatable(tiny_cfg, tmp_path):
    first = fit_new_vae(tiny_cfg, tmp_path / "a").state
    second = fit_new_vae(tiny_cfg, tmp_path / "b").state
    assert [r["val_elbo"] for r in first.history] == [r["val_elbo"] for r in second.history]


@pytest.mark.parametrize(
    "overrides",
    [
        [],  # the plain run stays in the fast set; the variants of it train their two runs each in the slow one
        *(
            pytest.param(overrides, marks=pytest.mark.slow)
            for overrides in (
                ["schedule=plateau", "schedule.patience=1", "schedule.threshold=1000"],  # halves the rate every epoch
                ["schedule=burda"],
                ["schedule=cosine", "schedule.final_factor=0.1", "schedule.epochs=3"],
                ["kl_warmup_epochs=3"],
                ["early_stopping.patience=5"],
                ["objective=iwae", "objective.num_particles=3"],
                ["model=cvae"],
                ["dataset.binarize=static"],
            )
        ),
    ],
)
def test_resume_continues_exactly_where_the_run_stopped(overrides, tmp_path):
    """Three epochs straight, or one and then two more after a resume: bit-identical weights and history."""
    cfg = compose_tiny("epochs=3", *overrides)
    straight = fit_new_vae(cfg, tmp_path / "straight")
    cfg.epochs = 1
    fit_new_vae(cfg, tmp_path / "resumed")
    cfg.epochs, cfg.resume = 3, True
    resumed = fit_new_vae(cfg, tmp_path / "resumed")
    assert resumed.state.epochs_completed == 3
    for (name, a), b in zip(straight.vae.state_dict().items(), resumed.vae.state_dict().values()):
        assert torch.equal(a, b), name
    columns = ("train_elbo", "val_elbo", "lr", "kl_weight")
    assert [[row[c] for c in columns] for row in resumed.state.history] == [
        [row[c] for c in columns] for row in straight.state.history
    ]


def test_existing_run_is_not_overwritten(tiny_cfg, tmp_path):
    tiny_cfg.epochs = 1
    fit_new_vae(tiny_cfg, tmp_path)
    before = (tmp_path / "last.pt").read_bytes()
    with pytest.raises(ConfigError, match="already holds a run .*resume=true"):
        run_experiment(tiny_cfg, tmp_path)
    assert (tmp_path / "last.pt").read_bytes() == before


def test_resume_without_a_checkpoint_is_a_clear_error(tiny_cfg, tmp_path):
    tiny_cfg.resume = True
    with pytest.raises(ConfigError, match=r"resume=true: .* holds no last\.pt to continue"):
        run_experiment(tiny_cfg, tmp_path)


def nan_loss_from_epoch(epoch, monkeypatch):
    """The training loss becomes NaN from the first step of ``epoch`` on."""
    original, calls = DeviceTrace_ELBO.differentiable_loss, []
    steps_per_epoch = 512 // 64

    def loss(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs) * (float("nan") if len(calls) > (epoch - 1) * steps_per_epoch else 1.0)

    monkeypatch.setattr(DeviceTrace_ELBO, "differentiable_loss", loss)


def test_nan_loss_in_epoch_1_is_reported_as_diverged_without_a_last_pt_to_point_to(tiny_cfg, tmp_path, monkeypatch):
    nan_loss_from_epoch(1, monkeypatch)
    with pytest.raises(
        DivergenceError, match=r"^diverged: training loss became nan at epoch 1, steps 0-7; lower lr"
    ) as e:
        run_experiment(tiny_cfg, tmp_path)
    assert "last.pt" not in str(e.value) and "optimizer.eps" not in str(e.value)
    assert not (tmp_path / "checkpoint.pt").exists() and not (tmp_path / "last.pt").exists()
    metrics = read_metrics(tmp_path)
    assert metrics["diverged"] is True and metrics["epochs_completed"] == 0
    assert metrics["divergence"].startswith("diverged: training loss became nan at epoch 1")
    assert not [key for key in metrics if key.startswith("test_")]


def test_nan_loss_with_a_tiny_eps_names_eps_and_the_saved_epoch(tmp_path, monkeypatch):
    cfg = compose_tiny("optimizer.eps=1e-20")
    nan_loss_from_epoch(2, monkeypatch)
    with pytest.raises(DivergenceError) as e:
        run_experiment(cfg, tmp_path)
    assert str(e.value).startswith(
        "diverged: training loss became nan at epoch 2, steps 0-7; lower lr (now 0.001), raise optimizer.eps "
        f"(now 1e-20; 1e-08 is torch's default) or use optimizer=clipped_adam; {tmp_path / 'last.pt'} keeps epoch 1"
    )
    assert len(checkpoints.read(tmp_path / "last.pt")["history"]) == 1
    assert read_metrics(tmp_path)["epochs_completed"] == 1 and len(read_history(tmp_path)) == 1


def test_a_validation_elbo_below_the_untrained_models_is_divergence(tiny_cfg, tmp_path, monkeypatch):
    """Finite nonsense (lr=1e3 reaches a test ELBO of -4e31): epoch 2 is scripted below the untrained model."""
    scripted = iter([UNTRAINED, -100.0, UNTRAINED - 1e31])
    monkeypatch.setattr(training, "evaluate", lambda *a, **k: Evaluation(next(scripted), 0.0, 0.0, 0.0, 0))
    state = fit_new_vae(tiny_cfg, tmp_path).state
    assert state.untrained_val_elbo == UNTRAINED and state.epochs_completed == 1
    assert state.divergence.startswith(
        f"diverged: validation ELBO -1e+31 at epoch 2 is below the untrained model's {UNTRAINED:.2f}; lower lr"
    )
    assert checkpoints.read(tmp_path / "last.pt")["untrained_val_elbo"] == UNTRAINED


def test_a_kl_weight_below_1_may_end_below_the_untrained_model(tiny_cfg, tmp_path, monkeypatch):
    scripted = iter([UNTRAINED, UNTRAINED - 50.0, UNTRAINED - 60.0])
    monkeypatch.setattr(training, "evaluate", lambda *a, **k: Evaluation(next(scripted), 0.0, 0.0, 0.0, 0))
    tiny_cfg.kl_weight = 0.5
    state = fit_new_vae(tiny_cfg, tmp_path).state
    assert state.divergence is None and state.epochs_completed == 2


def test_lr_1e3_diverges_exit_status_2_and_metrics_json_says_so(tmp_path):
    result = run_py(
        *tiny("epochs=1", "eval.iwae_k=2", "eval.val_iwae_k=2", "threads=1", "lr=1e3"),
        f"hydra.run.dir={tmp_path}",
        returncode=2,
    )
    assert "Traceback" not in result.stderr
    metrics = read_metrics(tmp_path)
    assert metrics["diverged"] is True and metrics["untrained_val_elbo"] < 0
    assert "is below the untrained model's" in metrics["divergence"]
    assert not [key for key in metrics if key.startswith("test_")]
    last = result.stderr.strip().splitlines()[-1]
    assert last.endswith(f"{metrics['divergence']}; {tmp_path / 'metrics.json'} records it, without test figures")


def test_burda_schedule_stages():
    # stage i lasts 3^i epochs at 10^(-i/7): epochs 0 | 1-3 | 4-12 | 13-39 | ... | 1093-3279
    for epoch, stage in [(0, 0), (1, 1), (3, 1), (4, 2), (12, 2), (13, 3), (1092, 6), (1093, 7), (5000, 7)]:
        assert burda_factor(epoch) == pytest.approx(10 ** (-stage / 7))


def test_cosine_schedule_rates_over_a_four_epoch_run():
    """lr 1 falling to 0.2 along half a cosine: the rates of epochs 1-4 are cos^2 steps written out by hand."""
    cfg = compose_config(["schedule=cosine", "schedule.final_factor=0.2", "epochs=4"])
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = make_schedule(cfg.schedule, optimizer)
    rates = [optimizer.param_groups[0]["lr"]]
    for _ in range(4):
        step_schedule(scheduler, val_elbo=0.0)
        rates.append(optimizer.param_groups[0]["lr"])
    # 0.2 + 0.8 * cos^2(pi * e / 8) for e = 0..4: cos^2(pi/8) = (2 + sqrt 2) / 4, cos^2(pi/4) = 1/2
    by_hand = [1.0, 0.2 + 0.8 * (2 + 2**0.5) / 4, 0.6, 0.2 + 0.8 * (2 - 2**0.5) / 4, 0.2]
    assert rates == pytest.approx(by_hand)


def test_plateau_schedule_and_early_stopping_follow_the_validation_elbo(tiny_cfg, tmp_path, monkeypatch):
    """The validation ELBOs are scripted so that the epochs where the schedule acts are known."""
    scripted = iter([UNTRAINED, -100.0, -90.0, -95.0, -96.0, -97.0, -98.0])
    monkeypatch.setattr(training, "evaluate", lambda *a, **k: Evaluation(next(scripted), 0.0, 0.0, 0.0, 0))
    tiny_cfg.epochs = 6
    tiny_cfg.schedule = {"name": "plateau", "factor": 0.5, "patience": 1, "threshold": 0.1, "min_lr": 1e-6}
    tiny_cfg.early_stopping.patience = 2
    state = fit_new_vae(tiny_cfg, tmp_path).state
    assert state.epochs_completed == 4  # best at epoch 2, two epochs without improvement, then stop
    # patience 1: halved after the first epoch without improvement (3), so epoch 4 runs at half the rate
    assert [row["lr"] for row in state.history] == pytest.approx([1e-3, 1e-3, 1e-3, 5e-4])
    assert checkpoints.read(tmp_path / "checkpoint.pt")["epoch"] == 2


def test_early_stopping_counts_gains_below_the_threshold_as_no_improvement(tiny_cfg, tmp_path, monkeypatch):
    """Gains of 0.05, 0.03 and 0.01 nats do not beat the best by the 0.1 threshold: three epochs
    without improvement after epoch 1, so patience 3 stops after epoch 4, before the big gain."""
    scripted = iter([UNTRAINED, -100.0, -99.95, -99.92, -99.91, -99.0])
    monkeypatch.setattr(training, "evaluate", lambda *a, **k: Evaluation(next(scripted), 0.0, 0.0, 0.0, 0))
    tiny_cfg.epochs = 5
    tiny_cfg.early_stopping.patience = 3
    state = fit_new_vae(tiny_cfg, tmp_path).state
    assert state.epochs_completed == 4


def plateau_rates(val_elbos, patience, threshold=0.1):
    """The learning rate after each epoch of ``schedule=plateau`` fed ``val_elbos``, from lr 1."""

    cfg = compose_config(["schedule=plateau", f"schedule.patience={patience}", f"schedule.threshold={threshold}"])
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = make_schedule(cfg.schedule, optimizer)
    rates = []
    for value in val_elbos:
        step_schedule(scheduler, value)
        rates.append(optimizer.param_groups[0]["lr"])
    return rates


@pytest.mark.parametrize("patience", [1, 2, 3])
def test_plateau_halves_a_slowly_declining_elbo_after_exactly_patience_epochs(patience):
    """-100.000, -100.005, ...: each epoch a little worse. PyTorch's default relative threshold
    counted these as improvements for a negative ELBO, and the rate never changed."""

    declining = [-100.0 - 0.005 * epoch for epoch in range(6)]
    rates = plateau_rates(declining, patience)
    # epoch 1 sets the best; the rate halves after epoch 1 + patience, and again every patience epochs
    assert rates == [0.5 ** (bad_epochs // patience) for bad_epochs in range(6)]
    assert rates[patience - 1] == 1.0 and rates[patience] == 0.5
    assert [epochs_without_improvement(declining[: n + 1], 0.1) for n in range(6)] == list(range(6))


def test_plateau_patience_one_halves_after_the_first_bad_epoch():
    assert plateau_rates([-100.0, -100.02], patience=1) == [1.0, 0.5]
    assert plateau_rates([-100.0, -99.95], patience=1) == [1.0, 0.5]  # better by less than the threshold


@pytest.mark.parametrize(
    "gain, rates",
    [
        (0.15, [1.0, 1.0, 1.0, 1.0, 0.5]),  # beats the best by more than 0.1 nats: the count starts again
        (0.05, [1.0, 1.0, 0.5, 0.5, 0.25]),  # by less: still an epoch without improvement
    ],
)
def test_plateau_counts_only_improvements_larger_than_the_threshold(gain, rates):
    val_elbos = [-100.0, -100.01, -100.0 + gain, -100.2, -100.3]
    assert plateau_rates(val_elbos, patience=2) == rates
    assert epochs_without_improvement(val_elbos, 0.1) == (2 if gain > 0.1 else 4)


def epochs_without_improvement(val_elbos, threshold: float) -> int:
    """Early stopping's count after ``val_elbos``, as a resumed run restores it from its history."""
    stopping = StopWithoutImprovement(patience=100, threshold=threshold)
    stopping.start_from([{"val_elbo": value} for value in val_elbos])
    return stopping.wait_count


def test_plateau_threshold_zero_counts_any_gain():
    assert plateau_rates([-100.0, -99.999, -99.998], patience=1, threshold=0) == [1.0, 1.0, 1.0]


def _with_old_names(record: dict) -> dict:
    """``record`` as pyro-vae wrote it before the renames of docs/renames.md."""
    config = record["config"]
    config["elbo"] = config.pop("objective")
    if config.pop("svi_step") == "pyro":
        config["elbo"]["name"] = "trace_pyro"
    config["net"]["min_scale"] = config["net"].pop("min_encoder_scale")
    config["decoder"]["prior_scale"] = config["decoder"].pop("weight_prior_scale")
    config["decoder"]["init_scale"] = config["decoder"].pop("weight_init_scale")
    return record


@pytest.mark.slow  # two runs, each resumed
@pytest.mark.parametrize("svi_step", ["torch", "pyro"])
def test_a_run_written_before_the_renames_loads_and_resumes(tmp_path, svi_step):
    """Checkpoints that record ``elbo``, ``net.min_scale``, ``decoder.prior_scale`` ... are read in
    today's names: the run loads, and resumes under today's names of its own settings."""
    cfg = compose_tiny("epochs=1", f"svi_step={svi_step}", "decoder.bayesian=true", "net.min_encoder_scale=0.001")
    run_experiment(cfg, tmp_path)
    for name in (checkpoints.BEST, checkpoints.LAST):
        old = _with_old_names(torch.load(tmp_path / name, weights_only=True))
        assert "elbo" in old["config"] and "objective" not in old["config"]
        torch.save(old, tmp_path / name)
    record = checkpoints.read(tmp_path / checkpoints.BEST)
    assert record["config"]["objective"]["name"] == "trace" and record["config"]["svi_step"] == svi_step
    assert record["config"]["net"]["min_encoder_scale"] == 0.001
    assert isinstance(pyro_vae.load(tmp_path), VAE)
    cfg.epochs, cfg.resume = 2, True
    run_experiment(cfg, tmp_path)  # refused if the recorded settings did not read as today's
    assert checkpoints.read(tmp_path / checkpoints.LAST)["history"][-1]["epoch"] == 2
