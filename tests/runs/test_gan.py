"""model=gan end to end: a tiny DCGAN trained by run.py on MNIST and on a small CIFAR-10 archive, its
outputs, exact resume, loading, task=sample on it, and the refusals of what a GAN has no use for."""

import math
import signal
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

import pyro_vae
from pyro_vae.errors import ConfigError, DivergenceError, RunInterrupted
from pyro_vae.modelling.gan import GAN
from pyro_vae.runs.configuration.schema import OPTIONS
from pyro_vae.runs.configuration.settings import GAN_UNUSED, validate
from pyro_vae.runs.directory import checkpoints
from pyro_vae.runs.loop.gan_training import GANTraining
from pyro_vae.runs.tasks.tasks import evaluate_run, interpolate_run, reconstruct_run
from pyro_vae.runs.tasks.training_run import run_experiment

from ..helpers import (
    GAN_TINY,
    compose_config,
    gan_tiny,
    read_history,
    read_metrics,
    run_py,
    run_py_refused,
    snapshot,
    tiny_cifar10,
)

pytestmark = pytest.mark.usefixtures("single_thread")

HISTORY = ["epoch", "discriminator_loss", "generator_loss", "d_real", "d_fake", "epoch_seconds", "images_per_second"]
TIMINGS = {"epoch_seconds", "images_per_second"}


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory) -> Path:
    """The tiny GAN trained by ``python run.py``."""
    out = tmp_path_factory.mktemp("gan") / "run"
    run_py(*GAN_TINY, f"hydra.run.dir={out}")
    return out


def test_a_gan_run_writes_its_outputs_and_no_likelihood(gan_run):
    for name in ("checkpoint.pt", "last.pt", "history.csv", "metrics.json", ".hydra/config.yaml", "run.log"):
        assert (gan_run / name).is_file(), name
    assert {p.name for p in (gan_run / "figures").iterdir()} == {"samples.png", "loss_curve.png"}
    metrics = read_metrics(gan_run)
    assert metrics["model"] == "gan" and metrics["likelihood"] is None
    assert "no density p(x)" in metrics["no_likelihood"]
    assert not any("elbo" in key or "log_likelihood" in key for key in metrics)
    assert metrics["epochs_completed"] == metrics["checkpoint_epoch"] == 2
    assert metrics["observation"] == "binary" and metrics["latent_dim"] == 4  # dataset.binarize=dynamic
    rows = read_history(gan_run)
    assert list(rows[0]) == HISTORY and [int(row["epoch"]) for row in rows] == [1, 2]
    assert 0 < float(rows[-1]["d_real"]) < 1 and float(rows[-1]["discriminator_loss"]) > 0
    assert checkpoints.read(gan_run / checkpoints.BEST)["epoch"] == 2  # the last epoch: no validation figure
    assert "epoch 2/2  D loss" in (gan_run / "run.log").read_text()


def test_load_gives_the_gan_and_its_samples(gan_run):
    gan = pyro_vae.load(gan_run)
    assert isinstance(gan, GAN) and not gan.training
    images = gan.sample(5)
    assert images.shape == (5, 1, 28, 28) and 0 <= images.min() <= images.max() <= 1


def test_task_sample_on_a_gan_run(gan_run, tmp_path):
    run_py("task=sample", f"task.run_dir={gan_run}", "task.n=9", "device=cpu", f"hydra.run.dir={tmp_path}")
    assert (tmp_path / "samples.png").is_file()


@pytest.mark.parametrize("task", [evaluate_run, reconstruct_run, interpolate_run])
def test_tasks_that_need_a_likelihood_or_an_encoder_are_refused(gan_run, tmp_path, task):
    name = task.__name__.removesuffix("_run")
    cfg = compose_config([f"task={name}", f"task.run_dir={gan_run}", "device=cpu"])
    with pytest.raises(ConfigError, match=f"task={name}: .* holds a GAN \\(model=gan\\), which has no likelihood"):
        task(cfg, tmp_path)
    assert snapshot(tmp_path) == {}


def test_resume_continues_exactly(tmp_path):
    """Two epochs in one go equal one epoch and a resumed second: weights, both optimizers, history."""
    run_experiment(compose_config(gan_tiny()), tmp_path / "whole")
    run_experiment(compose_config(gan_tiny("epochs=1")), tmp_path / "resumed")
    run_experiment(compose_config(gan_tiny("resume=true")), tmp_path / "resumed")
    whole, resumed = (checkpoints.read(tmp_path / name / checkpoints.LAST) for name in ("whole", "resumed"))
    assert whole["state_dict"].keys() == resumed["state_dict"].keys()
    for key, value in whole["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key
    for network in ("generator", "discriminator"):
        moments = [whole["optimizer"][network]["state"], resumed["optimizer"][network]["state"]]
        for index, state in moments[0].items():
            assert torch.equal(state["exp_avg"], moments[1][index]["exp_avg"]), (network, index)
    drop = lambda history: [{k: v for k, v in row.items() if k not in TIMINGS} for row in history]  # noqa: E731
    assert drop(whole["history"]) == drop(resumed["history"])
    assert read_metrics(tmp_path / "resumed")["epochs_completed"] == 2


def test_resuming_a_finished_run_trains_nothing_and_draws_the_same_samples(tmp_path):
    run_experiment(compose_config(gan_tiny()), tmp_path)
    samples, last = (tmp_path / "figures" / "samples.png").read_bytes(), (tmp_path / checkpoints.LAST).read_bytes()
    run_experiment(compose_config(gan_tiny("resume=true")), tmp_path)
    assert (tmp_path / checkpoints.LAST).read_bytes() == last
    assert (tmp_path / "figures" / "samples.png").read_bytes() == samples  # from the random streams last.pt holds


def test_a_tiny_run_on_the_cifar10_archive(tmp_path, monkeypatch):
    """Colour 32x32 images, seen as grey levels (dataset.binarize=none)."""
    cifar = [o for o in tiny_cifar10(tmp_path, monkeypatch) if not o.startswith(("net.", "eval."))]
    cfg = compose_config(
        gan_tiny(
            "dataset=cifar10", "dataset.binarize=none", *cifar, "dataset.train_size=null", "dataset.test_size=null"
        )
    )
    assert run_experiment(cfg, tmp_path / "run") is None  # no validation ELBO for a sweeper to maximise
    metrics = read_metrics(tmp_path / "run")
    assert metrics["dataset"] == "cifar10" and metrics["observation"] == "grey_levels"
    assert pyro_vae.load(tmp_path / "run").sample(2).shape == (2, 3, 32, 32)


def test_the_settings_a_gan_refuses_are_the_defaults():
    """GAN_UNUSED's values (or one of those it allows, a tuple) are what conf/ gives, so that model=gan on its
    own is accepted."""
    defaults = compose_config(["model=gan"])
    validate(defaults)
    for name, default, _ in GAN_UNUSED:
        value = defaults[name].name if name in OPTIONS else OmegaConf.select(defaults, name)
        value = list(value) if OmegaConf.is_list(value) else value
        assert value in default if isinstance(default, tuple) else value == default, name


@pytest.mark.parametrize(
    "override, line",
    [
        ("objective=iwae", "objective=iwae: model=gan is trained by its adversarial loss, not an ELBO objective"),
        ("likelihood=gaussian", "likelihood=gaussian: model=gan defines no likelihood p(x|z)"),
        ("kl_weight=0.5", "kl_weight=0.5: model=gan has no KL term to weight"),
        ("kl_warmup_epochs=3", "kl_warmup_epochs=3: model=gan has no KL term to warm up"),
        ("decoder.bayesian=true", "decoder.bayesian=true: model=gan's generator has point-estimate weights"),
        ("eval.iwae_k=5", "eval.iwae_k=5: model=gan has no likelihood"),
        ("guide=iaf", "guide=iaf: model=gan has no encoder q(z|x)"),
        ("prior=vampprior", "prior=vampprior: model=gan draws z ~ N(0, I)"),
        ("svi_step=pyro", "svi_step=pyro: model=gan takes no SVI step"),
        ("net.widths=[32]", "net.widths=[32]: model=gan builds DCGAN networks sized by model.generator_width"),
        ("lr=0.01", "lr=0.01: model=gan trains both of its networks with Adam at model.lr and model.betas"),
        ("dataset=celeba", "dataset=celeba: the DCGAN networks of model=gan are built for 28x28 and 32x32 images, "),
        ("model.betas=[0.5]", "model.betas=[0.5]: must be two numbers in [0, 1)"),
    ],
)
def test_settings_that_mean_nothing_for_a_gan_are_refused(override, line):
    with pytest.raises(ConfigError) as refused:
        validate(compose_config(["model=gan", override]))
    assert str(refused.value).startswith(line)
    assert "\n" not in str(refused.value)


def test_run_py_refuses_a_vae_setting_with_model_gan_before_reading_data(tmp_path):
    line = run_py_refused("model=gan", "kl_weight=0.5", "dataset.root=/nonexistent", f"hydra.run.dir={tmp_path}")
    assert line.endswith("kl_weight=0.5: model=gan has no KL term to weight; drop it with model=gan")
    assert snapshot(tmp_path) == {}


def test_ctrl_c_stops_after_the_saved_epoch_with_the_resume_command(tmp_path, monkeypatch):
    """SIGINT in epoch 2 leaves epoch 1 in last.pt and says how to go on; resuming finishes the run."""
    training_step, interrupted = GANTraining.training_step, []

    def interrupted_in_epoch_2(module, index, step):
        if module.current_epoch + 1 == 2 and not interrupted:  # once: the resumed run trains epoch 2 in full
            interrupted.append(step)
            signal.raise_signal(signal.SIGINT)
        return training_step(module, index, step)

    monkeypatch.setattr(GANTraining, "training_step", interrupted_in_epoch_2)
    with pytest.raises(RunInterrupted, match="SIGINT: stopped after epoch 1, saved in .*last.pt; resume with: "):
        run_experiment(compose_config(gan_tiny()), tmp_path)
    assert len(checkpoints.read(tmp_path / checkpoints.LAST)["history"]) == 1
    assert not (tmp_path / "metrics.json").exists()
    run_experiment(compose_config(gan_tiny("resume=true")), tmp_path)
    assert read_metrics(tmp_path)["epochs_completed"] == 2


def test_losses_that_are_not_finite_stop_the_run_unsaved(tmp_path, monkeypatch):
    monkeypatch.setattr(GANTraining, "adversarial_step", lambda self, x: torch.full((4,), math.nan))
    with pytest.raises(DivergenceError, match="diverged: the losses became \\[nan, nan\\] in epoch 1; lower model.lr"):
        run_experiment(compose_config(gan_tiny()), tmp_path)
    assert read_metrics(tmp_path)["diverged"] is True
    assert not (tmp_path / checkpoints.LAST).exists()
