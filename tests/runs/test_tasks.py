"""Tasks on a finished run: evaluate, sample, reconstruct and interpolate, through run.py and in-process."""

import os
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch
from PIL import Image

import pyro_vae
from pyro_vae.data import kmnist
from pyro_vae.errors import ConfigError, DataError
from pyro_vae.modelling.vae import VAE
from pyro_vae.runs.configuration.schema import option
from pyro_vae.runs.configuration.settings import validate
from pyro_vae.runs.directory import finished_run
from pyro_vae.runs.directory.run_directory import check_output_dir
from pyro_vae.runs.tasks import figures
from pyro_vae.runs.tasks.training_run import run_experiment

from ..helpers import (
    compose_config,
    read_metrics,
    run_py,
    run_py_refused,
    snapshot,
    tiny_mnist_like,
    train_tiny_run,
    with_header_size,
    write_idx_release,
)

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory) -> Path:
    # Its test ELBO with K = 256 (half a second more than TINY's 8): a figure a re-evaluation can
    # be held to within a nat (test_evaluate_with_a_larger_k_bounds_the_elbo_and_leaves_the_run_alone).
    return train_tiny_run(tmp_path_factory.mktemp("vae") / "run", "eval.iwae_k=256")


@pytest.fixture(scope="module")
def cvae_run(tmp_path_factory) -> Path:
    return train_tiny_run(tmp_path_factory.mktemp("cvae") / "run", "model=cvae")


def task_args(task: str, run_dir: Path, *overrides: str) -> list:
    """The command line of ``task=TASK`` on the finished run ``run_dir``, on the CPU unless
    ``overrides`` say otherwise."""
    return [f"task={task}", f"task.run_dir={run_dir}", "device=cpu", *overrides]


def task_by_run_py(task: str, run_dir: Path, out: Path, *overrides: str, env=None) -> None:
    """The task through ``python run.py``, as a user runs it, writing into ``out``."""
    run_py(*task_args(task, run_dir, *overrides), f"hydra.run.dir={out}", env=env)


def task_in_process(task: str, run_dir: Path, out: Path, *overrides: str):
    """The task through its function, writing into ``out`` once ``run.py``'s check of it passes;
    what the function returns."""
    cfg = compose_config(task_args(task, run_dir, *overrides))
    check_output_dir(cfg, out)
    validate(cfg)
    return option("task", task).component()(cfg, out)


def write_png(path: Path, height: int, width: int) -> Path:
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (height, width), dtype=np.uint8)).save(path)
    return path


class Panel(NamedTuple):
    """A grid of images a figure draws."""

    images: torch.Tensor
    per_row: int


@pytest.fixture
def tiles(monkeypatch) -> list:
    """Every Panel the figures draw, in order."""
    shown = []
    show = figures.show

    def spy(ax, images, nrow, title=""):
        shown.append(Panel(images.detach().cpu(), nrow))
        show(ax, images, nrow, title)

    monkeypatch.setattr(figures, "show", spy)
    return shown


@pytest.mark.slow
def test_evaluate_with_a_larger_k_bounds_the_elbo_and_leaves_the_run_alone(vae_run, tmp_path):
    before = snapshot(vae_run)
    task_by_run_py("evaluate", vae_run, tmp_path, "eval.iwae_k=1024")
    assert snapshot(vae_run) == before
    metrics, trained = read_metrics(tmp_path), read_metrics(vae_run)
    assert metrics["iwae_k"] == 1024 and metrics["device"] == "cpu" and metrics["run_dir"] == str(vae_run)
    assert metrics["test_log_likelihood"] >= metrics["test_elbo"]
    assert metrics["test_log_likelihood"] >= trained["test_elbo"]
    # Same checkpoint, test images and view: the two ELBOs (about -437) differ by Monte Carlo noise
    # alone, whose standard deviation over 20 seeds is 0.113 nat at K = 256 and 0.046 at K = 1024,
    # 0.12 for the difference; 0.6 is five of it (at K = 8 and 64 it was 0.75).
    assert metrics["test_elbo"] == pytest.approx(trained["test_elbo"], abs=0.6)


def test_evaluate_returns_the_test_elbo_with_the_runs_own_k(cvae_run, tmp_path):
    test_elbo = task_in_process("evaluate", cvae_run, tmp_path)
    metrics = read_metrics(tmp_path)
    assert metrics["test_elbo"] == test_elbo
    assert metrics["iwae_k"] == 8 and metrics["likelihood_of"] == "log p(x|y)"
    assert metrics["best_epoch"] == read_metrics(cvae_run)["best_epoch"]  # which checkpoint was scored
    assert metrics["data_verified"] is True


def test_evaluate_records_that_the_data_are_not_the_official_release(tmp_path):
    write_idx_release(tmp_path / "data", kmnist.RELEASE)  # their MD5s are not the published ones
    run_dir = tmp_path / "run"
    run_experiment(compose_config(tiny_mnist_like("kmnist", tmp_path / "data", "dataset.verify=false")), run_dir)
    task_in_process("evaluate", run_dir, tmp_path / "evaluate")
    assert read_metrics(run_dir)["data_verified"] is False
    assert read_metrics(tmp_path / "evaluate")["data_verified"] is False


@pytest.mark.slow  # a run of its own
def test_a_gaussian_run_reports_bits_per_dim_and_dequantizes_image_files(tmp_path, tiles):
    run_dir = train_tiny_run(
        tmp_path / "run",
        *("likelihood=gaussian", "dataset=mnist", "net=mlp", "likelihood.scale_mode=per_pixel", "eval.iwae_k=512"),
    )
    task_in_process("evaluate", run_dir, tmp_path / "evaluate")
    metrics, trained = read_metrics(tmp_path / "evaluate"), read_metrics(run_dir)
    assert 0 < metrics["test_bits_per_dim"] <= metrics["test_bits_per_dim_elbo"]
    # Both at the run's K = 512 (about 8.54 bits/dim): Monte Carlo noise apart, of standard deviation
    # 0.00017 bits/dim over 40 seeds, 0.00024 for the difference; 0.0012 is five of it (0.66 nat, where
    # 1 nat is 0.0018 bits/dim; at K = 8 it was 0.0018).
    assert metrics["test_bits_per_dim_elbo"] == pytest.approx(trained["test_bits_per_dim_elbo"], abs=0.0012)
    image = str(write_png(tmp_path / "a.png", 28, 28))
    tiles.clear()  # the training run drew its own figures
    task_in_process("reconstruct", run_dir, tmp_path / "reconstruct", f"task.images=[{image}]")
    [panel] = tiles
    uint8 = torch.from_numpy(np.array(Image.open(image))).float()
    assert torch.all((panel.images[0, 0] * 256 - uint8).abs() < 1)  # (x + u) / 256, u in [0, 1)


def test_a_task_loads_the_run_onto_the_cpu(vae_run, monkeypatch):
    locations = []
    read = finished_run.checkpoints.read
    monkeypatch.setattr(
        finished_run.checkpoints, "read", lambda path, where: locations.append(where) or read(path, where)
    )
    run = finished_run.open_run(compose_config(task_args("sample", vae_run)), Path("out"))
    assert locations == [torch.device("cpu")]
    assert all(p.device.type == "cpu" for p in run.vae.parameters())
    assert all(p.device.type == "cpu" for p in pyro_vae.load(vae_run).encoder.parameters())


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_gpu_trained_run_evaluates_on_a_machine_without_one(tmp_path):
    run_dir = train_tiny_run(tmp_path / "run", "device=cuda")
    hidden = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    task_by_run_py("evaluate", run_dir, tmp_path / "task", "device=auto", env=hidden)
    assert read_metrics(tmp_path / "task")["device"] == "cpu"


@pytest.mark.slow
def test_sample_writes_samples_png(vae_run, tmp_path):
    task_by_run_py("sample", vae_run, tmp_path, "task.n=9")
    assert Image.open(tmp_path / "samples.png").size[0] > 0


def test_sample_grid_has_one_tile_per_draw_and_grows_with_n(vae_run, tmp_path, tiles):
    task_in_process("sample", vae_run, tmp_path / "small", "task.n=4")
    task_in_process("sample", vae_run, tmp_path / "large", "task.n=25")
    assert [(len(panel.images), panel.per_row) for panel in tiles] == [(4, 2), (25, 5)]
    small, large = (Image.open(tmp_path / name / "samples.png").size for name in ("small", "large"))
    assert large[0] > small[0] and large[1] > small[1]


def test_samples_are_drawn_and_decoded_a_bounded_chunk_at_a_time(cvae_run, tmp_path, tiles, monkeypatch):
    decoded = []  # (draws, labels) of each decoding
    picture = VAE.picture
    monkeypatch.setattr(
        VAE, "picture", lambda vae, z, y=None, sampled=False: decoded.append((len(z), y)) or picture(vae, z, y, sampled)
    )
    monkeypatch.setattr(figures, "DRAW_CHUNK", 4)
    task_in_process("sample", cvae_run, tmp_path, "task.n=10")
    assert [draws for draws, _ in decoded] == [4, 4, 2]
    assert torch.cat([labels for _, labels in decoded]).tolist() == list(range(10))  # the classes, cycled through
    [panel] = tiles
    assert len(panel.images) == 10 and panel.per_row == 4


def test_per_class_samples_give_a_row_per_class(cvae_run, tmp_path, tiles):
    task_in_process("sample", cvae_run, tmp_path, "task.n=3", "task.per_class=true")
    assert [(len(panel.images), panel.per_row) for panel in tiles] == [(30, 3)]


@pytest.mark.slow
def test_per_class_samples_through_run_py(cvae_run, tmp_path):
    task_by_run_py("sample", cvae_run, tmp_path, "task.per_class=true", "task.n=2")
    assert (tmp_path / "samples.png").is_file()


@pytest.mark.slow
def test_per_class_samples_of_an_unconditional_vae_are_refused(vae_run, tmp_path):
    line = run_py_refused(*task_args("sample", vae_run, "task.per_class=true"), f"hydra.run.dir={tmp_path}")
    assert "task.per_class=true:" in line and "unconditional" in line
    assert not (tmp_path / "samples.png").exists()


def test_reconstruct_the_first_test_images(vae_run, tmp_path, tiles):
    task_in_process("reconstruct", vae_run, tmp_path, "task.n=6")
    assert [(len(panel.images), panel.per_row) for panel in tiles] == [(12, 6)]


@pytest.mark.slow
def test_reconstruct_through_run_py(vae_run, tmp_path):
    task_by_run_py("reconstruct", vae_run, tmp_path)
    assert (tmp_path / "reconstructions.png").is_file()


@pytest.mark.slow
def test_reconstruct_image_files(vae_run, tmp_path):
    files = [write_png(tmp_path / name, 28, 28) for name in ("a.png", "b.png")]
    listed = ",".join(f"'{f}'" for f in files)
    task_by_run_py("reconstruct", vae_run, tmp_path / "out", f"task.images=[{listed}]")
    assert (tmp_path / "out" / "reconstructions.png").is_file()


def test_image_files_are_binarized_like_the_test_split_every_time(cvae_run, tmp_path, tiles):
    files = [str(write_png(tmp_path / name, 28, 28)) for name in ("a.png", "b.png")]
    for out in ("first", "second"):
        task_in_process(
            "reconstruct",
            cvae_run,
            tmp_path / out,
            f"task.images=[{','.join(files)}]",
            "task.labels=[3,7]",
        )
    first, second = tiles
    assert first.per_row == 2 and len(first.images) == 4
    assert torch.equal(first.images, second.images) and set(first.images[:2].unique().tolist()) <= {0.0, 1.0}


def test_a_conditional_vae_needs_the_labels_of_image_files(cvae_run, tmp_path):
    image = str(write_png(tmp_path / "a.png", 28, 28))
    with pytest.raises(ConfigError, match=r"task.labels=null: .* conditional VAE .*task.labels=\[0\]"):
        task_in_process("reconstruct", cvae_run, tmp_path / "out", f"task.images=[{image}]")


@pytest.mark.slow
def test_an_image_of_the_wrong_size_is_refused_naming_the_file(vae_run, tmp_path):
    image = write_png(tmp_path / "small.png", 20, 24)
    args = task_args("reconstruct", vae_run, f"task.images=['{image}']")
    line = run_py_refused(*args, f"hydra.run.dir={tmp_path / 'out'}")
    assert f"{image}: 24x20 pixels" in line and "28x28" in line


@pytest.mark.slow
def test_an_image_whose_header_claims_40000x40000_pixels_is_refused_in_one_line(vae_run, tmp_path):
    image = with_header_size(write_png(tmp_path / "bomb.png", 28, 28), 40000, 40000)
    line = run_py_refused(*task_args("reconstruct", vae_run, f"task.images=['{image}']"), f"hydra.run.dir={tmp_path}")
    assert f"{image}: not decoded, its header claims too large an image (Image size (1600000000 pixels)" in line
    assert line.endswith("this run's images are 28x28 pixels")
    assert not (tmp_path / "reconstructions.png").exists()


def test_interpolate_puts_the_two_inputs_at_the_ends(vae_run, tmp_path, tiles):
    task_in_process("interpolate", vae_run, tmp_path, "task.start=2", "task.end=5", "task.steps=5")
    [panel] = tiles
    run = finished_run.open_run(compose_config(task_args("interpolate", vae_run)), tmp_path)
    inputs = run.test_view(run.data.test.images)
    assert panel.per_row == 7 and len(panel.images) == 7
    assert torch.equal(panel.images[0], inputs[2]) and torch.equal(panel.images[-1], inputs[5])


@pytest.mark.parametrize(
    "override, message",
    [
        ("task.start=10000", r"task.start=10000: must be the index of a test image, from 0 to \d+"),
        ("task.end=-1", r"task.end=-1: must be the index of a test image"),
        ("task.steps=1", r"task.steps=1: must be an integer >= 2"),
    ],
)
def test_interpolate_refuses_a_bad_setting_by_its_name(vae_run, tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        task_in_process("interpolate", vae_run, tmp_path, override)
    assert not (tmp_path / "interpolation.png").exists()


@pytest.mark.slow
def test_interpolate_a_conditional_vae(cvae_run, tmp_path):
    task_by_run_py("interpolate", cvae_run, tmp_path)
    assert (tmp_path / "interpolation.png").is_file()


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, message",
    [
        (["task=evaluate"], "task=evaluate: works on a finished run; pass task.run_dir=PATH"),
        (
            ["task=evalute"],
            "task=evalute: unknown choice; choose one of evaluate, interpolate, reconstruct, sample, "
            "sample_quality, train",
        ),
    ],
)
def test_bad_task_settings_exit_with_one_line(tmp_path, args, message):
    assert message in run_py_refused(*args, f"hydra.run.dir={tmp_path}")


def test_a_task_never_writes_into_the_run_directory(vae_run):
    with pytest.raises(ConfigError, match="holds a run .*a directory of its own"):
        task_in_process("sample", vae_run, vae_run)


def test_a_run_dir_without_a_checkpoint_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no checkpoint here"):
        task_in_process("evaluate", tmp_path, tmp_path / "out")


@pytest.mark.slow
def test_a_task_refuses_model_settings_it_would_not_use(vae_run, tmp_path):
    """The run's latent size is what the task uses; a different one on its command line would be
    recorded in the task's config all the same."""
    line = run_py_refused(*task_args("evaluate", vae_run, "latent_dim=5", "eval.iwae_k=2"), f"hydra.run.dir={tmp_path}")
    assert line.endswith(
        f"latent_dim: task=evaluate takes the model and data settings from the run it works on "
        f"({vae_run / 'checkpoint.pt'}); drop the override (a task's command line sets task.*, device, threads, "
        "seed, quality, dataset.download, dataset.root, eval.chunk_size, eval.iwae_k, eval.weight_draws)"
    )
    assert not (tmp_path / ".hydra").exists()


def altered_run(vae_run: Path, folder: Path, alter) -> Path:
    """A copy of ``vae_run`` whose checkpoint.pt ``alter`` has changed in place."""
    run_dir = folder / "altered"
    run_dir.mkdir()
    record = torch.load(vae_run / "checkpoint.pt", weights_only=True)
    alter(record)
    torch.save(record, run_dir / "checkpoint.pt")
    return run_dir


@pytest.mark.parametrize(
    "alter, message",
    [
        (lambda r: r.pop("state_dict"), "checkpoint.pt: lacks state_dict; it is not a checkpoint that pyro-vae wrote"),
        (
            lambda r: r["config"].update(latent_dim=5),
            "checkpoint.pt: weight decoder.body.0.weight is of shape [64, 4], where the settings build one of shape "
            "[64, 5]; the checkpoint was trained with other settings",
        ),
        (
            lambda r: r.update(image_shape=[1, 14, 14]),
            "checkpoint.pt: weight decoder.body.2.bias is of shape [784], where the settings build one of shape [196]",
        ),
    ],
)
def test_evaluate_refuses_a_checkpoint_that_does_not_fit_in_one_line(vae_run, tmp_path, alter, message):
    run_dir = altered_run(vae_run, tmp_path, alter)
    with pytest.raises(DataError, match=re.escape(message)):
        task_in_process("evaluate", run_dir, tmp_path / "out", "eval.iwae_k=2")
