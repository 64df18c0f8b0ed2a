"""Tasks on a finished run: evaluate, sample, reconstruct and interpolate, through run.py and in-process."""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import pyro_vae
from pyro_vae import figures, tasks
from pyro_vae.errors import ConfigError, DataError
from pyro_vae.experiment import run_experiment

from .conftest import TINY, compose_config, one_line, run_py, snapshot


def train(out: Path, *overrides: str, device: str = "cpu") -> Path:
    cfg = compose_config([o for o in TINY if not o.startswith("device=")] + [f"device={device}", *overrides])
    run_experiment(cfg, out)
    return out


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory) -> Path:
    return train(tmp_path_factory.mktemp("vae") / "run")


@pytest.fixture(scope="module")
def cvae_run(tmp_path_factory) -> Path:
    return train(tmp_path_factory.mktemp("cvae") / "run", "model=cvae")


def run_task(out: Path, *args: str, returncode: int = 0, env=None) -> subprocess.CompletedProcess:
    return run_py(*args, f"hydra.run.dir={out}", returncode=returncode, env=env)


def in_process(task: str, run_dir: Path, out: Path, *overrides: str):
    cfg = compose_config([f"task={task}", f"run_dir={run_dir}", "device=cpu", *overrides])
    return tasks.TASKS[task](cfg, out)


def write_png(path: Path, height: int, width: int) -> Path:
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (height, width), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def tiles(monkeypatch) -> list:
    """(images, per_row) of every panel the figures draw."""
    shown = []
    show = figures.show

    def spy(ax, images, nrow, title=""):
        shown.append((images.detach().cpu(), nrow))
        show(ax, images, nrow, title)

    monkeypatch.setattr(figures, "show", spy)
    return shown


def test_evaluate_with_a_larger_k_bounds_the_elbo_and_leaves_the_run_alone(vae_run, tmp_path):
    before = snapshot(vae_run)
    run_task(tmp_path, "task=evaluate", f"run_dir={vae_run}", "eval.iwae_k=64", "device=cpu")
    assert snapshot(vae_run) == before
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    trained = json.loads((vae_run / "metrics.json").read_text())
    assert metrics["iwae_k"] == 64 and metrics["device"] == "cpu" and metrics["run_dir"] == str(vae_run)
    assert metrics["test_log_likelihood"] >= metrics["test_elbo"]
    assert metrics["test_log_likelihood"] >= trained["test_elbo"]
    assert metrics["test_elbo"] == pytest.approx(trained["test_elbo"], rel=0.05)  # same test images, same view


def test_evaluate_returns_the_test_elbo_with_the_runs_own_k(cvae_run, tmp_path):
    test_elbo = in_process("evaluate", cvae_run, tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test_elbo"] == test_elbo
    assert metrics["iwae_k"] == 8 and metrics["likelihood_of"] == "log p(x|y)"


def test_a_gaussian_run_reports_bits_per_dim_and_dequantizes_image_files(tmp_path, tiles):
    run_dir = train(tmp_path / "run", "likelihood=gaussian", "dataset=mnist", "net=mlp", "likelihood.scale=per_pixel")
    in_process("evaluate", run_dir, tmp_path / "evaluate")
    metrics = json.loads((tmp_path / "evaluate" / "metrics.json").read_text())
    trained = json.loads((run_dir / "metrics.json").read_text())
    assert 0 < metrics["test_bits_per_dim"] <= metrics["test_bits_per_dim_elbo"]
    assert metrics["test_bits_per_dim_elbo"] == pytest.approx(trained["test_bits_per_dim_elbo"], rel=0.05)
    image = str(write_png(tmp_path / "a.png", 28, 28))
    tiles.clear()  # the training run drew its own figures
    in_process("reconstruct", run_dir, tmp_path / "reconstruct", f"reconstruct.images=[{image}]")
    [(shown, _)] = tiles
    uint8 = torch.from_numpy(np.array(Image.open(image))).float()
    assert torch.all((shown[0, 0] * 256 - uint8).abs() < 1)  # (x + u) / 256, u in [0, 1)


def test_a_task_loads_the_run_onto_the_cpu(vae_run, monkeypatch):
    locations = []
    read = tasks.checkpoints.read
    monkeypatch.setattr(tasks.checkpoints, "read", lambda path, where: locations.append(where) or read(path, where))
    run = tasks.open_run(compose_config(["task=sample", f"run_dir={vae_run}", "device=cpu"]), Path("out"))
    assert locations == [torch.device("cpu")]
    assert all(p.device.type == "cpu" for p in run.vae.parameters())
    assert all(p.device.type == "cpu" for p in pyro_vae.load(vae_run).encoder.parameters())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_gpu_trained_run_evaluates_on_a_machine_without_one(tmp_path):
    run_dir = train(tmp_path / "run", device="cuda")
    hidden = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    run_task(tmp_path / "task", "task=evaluate", f"run_dir={run_dir}", "device=auto", env=hidden)
    assert json.loads((tmp_path / "task" / "metrics.json").read_text())["device"] == "cpu"


def test_sample_writes_samples_png(vae_run, tmp_path):
    run_task(tmp_path, "task=sample", f"run_dir={vae_run}", "sample.n=9", "device=cpu")
    assert Image.open(tmp_path / "samples.png").size[0] > 0


def test_sample_grid_has_one_tile_per_draw_and_grows_with_n(vae_run, tmp_path, tiles):
    in_process("sample", vae_run, tmp_path / "small", "sample.n=4")
    in_process("sample", vae_run, tmp_path / "large", "sample.n=25")
    assert [(len(images), per_row) for images, per_row in tiles] == [(4, 2), (25, 5)]
    small, large = (Image.open(tmp_path / name / "samples.png").size for name in ("small", "large"))
    assert large[0] > small[0] and large[1] > small[1]


def test_per_class_samples_give_a_row_per_class(cvae_run, tmp_path, tiles):
    in_process("sample", cvae_run, tmp_path, "sample.n=3", "sample.per_class=true")
    assert [(len(images), per_row) for images, per_row in tiles] == [(30, 3)]
    run_task(
        tmp_path / "cli", "task=sample", f"run_dir={cvae_run}", "sample.per_class=true", "sample.n=2", "device=cpu"
    )
    assert (tmp_path / "cli" / "samples.png").is_file()


def test_per_class_samples_of_an_unconditional_vae_are_refused(vae_run, tmp_path):
    result = run_task(
        tmp_path, "task=sample", f"run_dir={vae_run}", "sample.per_class=true", "device=cpu", returncode=2
    )
    assert "sample.per_class=true:" in one_line(result) and "unconditional" in one_line(result)
    assert not (tmp_path / "samples.png").exists()


def test_reconstruct_the_first_test_images(vae_run, tmp_path, tiles):
    in_process("reconstruct", vae_run, tmp_path, "reconstruct.n=6")
    assert [(len(images), per_row) for images, per_row in tiles] == [(12, 6)]
    run_task(tmp_path / "cli", "task=reconstruct", f"run_dir={vae_run}", "device=cpu")
    assert (tmp_path / "cli" / "reconstructions.png").is_file()


def test_reconstruct_image_files(vae_run, tmp_path):
    files = [write_png(tmp_path / name, 28, 28) for name in ("a.png", "b.png")]
    listed = ",".join(f"'{f}'" for f in files)
    run_task(tmp_path / "out", "task=reconstruct", f"run_dir={vae_run}", f"reconstruct.images=[{listed}]", "device=cpu")
    assert (tmp_path / "out" / "reconstructions.png").is_file()


def test_image_files_are_binarized_like_the_test_split_every_time(cvae_run, tmp_path, tiles):
    files = [str(write_png(tmp_path / name, 28, 28)) for name in ("a.png", "b.png")]
    for out in ("first", "second"):
        in_process(
            "reconstruct",
            cvae_run,
            tmp_path / out,
            f"reconstruct.images=[{','.join(files)}]",
            "reconstruct.labels=[3,7]",
        )
    (first, per_row), (second, _) = tiles
    assert per_row == 2 and len(first) == 4
    assert torch.equal(first, second) and set(first[:2].unique().tolist()) <= {0.0, 1.0}


def test_a_conditional_vae_needs_the_labels_of_image_files(cvae_run, tmp_path):
    image = str(write_png(tmp_path / "a.png", 28, 28))
    with pytest.raises(ConfigError, match=r"reconstruct.labels=null: .* conditional VAE .*reconstruct.labels=\[0\]"):
        in_process("reconstruct", cvae_run, tmp_path / "out", f"reconstruct.images=[{image}]")


def test_an_image_of_the_wrong_size_is_refused_naming_the_file(vae_run, tmp_path):
    image = write_png(tmp_path / "small.png", 20, 24)
    result = run_task(
        tmp_path / "out",
        "task=reconstruct",
        f"run_dir={vae_run}",
        f"reconstruct.images=['{image}']",
        "device=cpu",
        returncode=2,
    )
    line = one_line(result)
    assert f"{image}: 24x20 pixels" in line and "28x28" in line


def test_interpolate_puts_the_two_inputs_at_the_ends(vae_run, tmp_path, tiles):
    in_process("interpolate", vae_run, tmp_path, "interpolate.start=2", "interpolate.end=5", "interpolate.steps=5")
    [(images, per_row)] = tiles
    run = tasks.open_run(compose_config(["task=interpolate", f"run_dir={vae_run}", "device=cpu"]), tmp_path)
    inputs = run.test_view(run.data.test.images)
    assert per_row == 7 and len(images) == 7
    assert torch.equal(images[0], inputs[2]) and torch.equal(images[-1], inputs[5])


def test_interpolate_a_conditional_vae(cvae_run, tmp_path):
    run_task(tmp_path, "task=interpolate", f"run_dir={cvae_run}", "device=cpu")
    assert (tmp_path / "interpolation.png").is_file()


@pytest.mark.parametrize(
    "args, message",
    [
        (["task=evaluate"], "task=evaluate: works on a finished run; pass run_dir=PATH"),
        (
            ["task=evalute"],
            "task=evalute: unknown task; choose one of train, evaluate, sample, reconstruct, interpolate",
        ),
    ],
)
def test_bad_task_settings_exit_with_one_line(tmp_path, args, message):
    assert message in one_line(run_task(tmp_path, *args, returncode=2))


def test_a_task_never_writes_into_the_run_directory(vae_run):
    with pytest.raises(ConfigError, match="holds a run .*a directory of its own"):
        in_process("sample", vae_run, vae_run)


def test_a_run_dir_without_a_checkpoint_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no checkpoint here"):
        in_process("evaluate", tmp_path, tmp_path / "out")
