"""logger=tensorboard: what a run writes for TensorBoard, read back with TensorBoard's own reader
(EventAccumulator), against the run's history.csv, metrics.json and validation passes; resuming
appends, a refused command writes nothing, and watching a run does not change it."""

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata as hparams_metadata
from tensorboard.plugins.hparams import plugin_data_pb2

from pyro_vae.errors import ConfigError
from pyro_vae.runs.configuration.settings import validate
from pyro_vae.runs.directory.run_directory import RunDirectoryInUse
from pyro_vae.runs.loop import vae_training as training
from pyro_vae.runs.tasks.training_run import run_experiment

from ..helpers import compose_config, compose_tiny, read_history, read_metrics, run_py_refused, snapshot, tiny

pytestmark = pytest.mark.usefixtures("single_thread")

# Four epochs, the last one resumed; images at epochs 2 and 4, so that epoch 3 trains right after some.
WATCHED = tiny("logger=tensorboard", "logger.image_every=2")
MISSING = (  # .venv/bin/pip from the repository root after the README's first command (tests/runs/test_commands.py)
    r"logger=tensorboard: the tensorboard package is not installed; "
    r'\S*pip install -e "\S*\[tensorboard\]" or use logger=none'
)


@dataclass
class Watched:
    """A tiny run with logger=tensorboard: three epochs, then resumed for a fourth."""

    run_dir: Path
    events: EventAccumulator  # what TensorBoard reads of the run's tensorboard/ folder
    passes: list  # the validation passes training made, in order
    first: dict  # snapshot() of tensorboard/ after the first process


@pytest.fixture(scope="module")
def watched(tmp_path_factory) -> Watched:
    run_dir = tmp_path_factory.mktemp("watched") / "run"
    passes, evaluate = [], training.evaluate

    def recording_evaluate(*args, **kwargs):
        passes.append(evaluate(*args, **kwargs))
        return passes[-1]

    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(training, "evaluate", recording_evaluate)
        run_experiment(compose_config(WATCHED + ["epochs=3"]), run_dir)
        first = snapshot(run_dir / "tensorboard")
        run_experiment(compose_config(WATCHED + ["epochs=4", "resume=true"]), run_dir)
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    events.Reload()
    return Watched(run_dir, events, passes, first)


# Each column of history.csv (but epoch, the step) and its tag.
TAGS = {
    "train_elbo": "train/elbo",
    "val_elbo": "val/elbo",
    "epoch_seconds": "train/epoch_seconds",
    "images_per_second": "train/images_per_second",
    "lr": "train/lr",
    "kl_weight": "train/kl_weight",
}


def test_each_epoch_logs_every_column_of_history_csv(watched):
    events = watched.events
    history = read_history(watched.run_dir)
    assert [row["epoch"] for row in history] == ["1", "2", "3", "4"]
    assert set(history[0]) == {"epoch", *TAGS}
    per_epoch = {tag for tag in events.Tags()["scalars"] if events.Scalars(tag)[0].step == 1}
    assert per_epoch == {*TAGS.values(), "val/kl", "val/reconstruction"}
    for column, tag in TAGS.items():
        logged = events.Scalars(tag)
        assert [e.step for e in logged] == [1, 2, 3, 4], column
        assert [e.value for e in logged] == pytest.approx([float(row[column]) for row in history], rel=1e-6), column


def test_each_epoch_logs_the_kl_and_reconstruction_of_its_validation_pass(watched):
    events, (_untrained, *passes) = watched.events, watched.passes  # the first measures the untrained model
    assert len(passes) == 4  # then one validation pass per epoch, none added for logging
    for tag, field in (("val/kl", "kl"), ("val/reconstruction", "reconstruction")):
        logged = events.Scalars(tag)
        assert [e.step for e in logged] == [1, 2, 3, 4]
        assert [e.value for e in logged] == pytest.approx([getattr(p, field) for p in passes], rel=1e-6)
    assert all(p.kl > 0 for p in passes)


def test_images_every_image_every_epochs(watched):
    events = watched.events
    assert sorted(events.Tags()["images"]) == ["images/prior_samples", "images/reconstructions"]
    pairs, samples = events.Images("images/reconstructions"), events.Images("images/prior_samples")
    assert [e.step for e in pairs] == [e.step for e in samples] == [2, 4]
    pairs, samples = pairs[-1], samples[-1]
    # 28x28 digits with a 1-pixel border: 8 inputs above their 8 reconstructions, 64 samples 8 by 8.
    assert (pairs.width, pairs.height) == (8 * 29 + 1, 2 * 29 + 1)
    assert (samples.width, samples.height) == (8 * 29 + 1, 8 * 29 + 1)
    assert pairs.encoded_image_string.startswith(b"\x89PNG")


def session_start_hparams(events):
    content = events.PluginTagToContent(hparams_metadata.PLUGIN_NAME)[hparams_metadata.SESSION_START_INFO_TAG]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    return {name: getattr(value, value.WhichOneof("kind")) for name, value in hparams.items()}


def test_the_end_logs_the_settings_as_hparams_and_the_results_of_metrics_json_beside_them(watched):
    events = watched.events
    hparams = session_start_hparams(events)
    assert hparams["latent_dim"] == 4 and hparams["lr"] == pytest.approx(1e-3) and hparams["optimizer.name"] == "adam"
    assert hparams["net.widths"] == "[64]" and hparams["decoder.bayesian"] == "false"
    assert hparams["dataset.train_size"] == 512 and "dataset.root" not in hparams  # null: left out
    # What resume may change is not an hparam (it would go stale); the metrics carry it.
    assert not {"epochs", "eval.iwae_k", "resume", "logger.name", "threads"} & set(hparams)
    metrics = read_metrics(watched.run_dir)
    results = {
        "test/elbo": "test_elbo",
        "test/log_likelihood": "test_log_likelihood",
        "test/reconstruction": "test_reconstruction",
        "test/kl": "test_kl",
        "test/active_units": "test_active_units",
        "val/elbo_best": "val_elbo_best",
        "val/log_likelihood": "val_log_likelihood",
    }
    assert {tag for tag in events.Tags()["scalars"] if events.Scalars(tag)[0].step > 1} == set(results)
    for tag, key in results.items():
        logged = events.Scalars(tag)
        assert [e.step for e in logged] == [3, 4]  # the results of the first process, then of the resumed one
        assert logged[-1].value == pytest.approx(metrics[key], rel=1e-6) and metrics["epochs_completed"] == 4, key


def test_a_resumed_run_appends_and_keeps_what_was_written(watched):
    run_dir, first = watched.run_dir, watched.first
    now = snapshot(run_dir / "tensorboard")
    assert len(first) == 1 and len(now) == 2  # one event file per process
    assert all(now[name] == content for name, content in first.items())  # the first left as it was
    (earlier,) = first
    alone = EventAccumulator(str(run_dir / "tensorboard" / earlier))
    alone.Reload()
    assert [e.step for e in alone.Scalars("val/elbo")] == [1, 2, 3]


@pytest.mark.slow  # a second run
def test_watching_a_run_does_not_change_it(watched, tmp_path):
    """The same run without a logger and without a resume trains to the same numbers: the
    images are drawn under a forked RNG."""
    run_experiment(compose_tiny("epochs=4"), tmp_path / "plain")
    assert not (tmp_path / "plain" / "tensorboard").exists()
    plain, logged = read_history(tmp_path / "plain"), read_history(watched.run_dir)
    for column in ("train_elbo", "val_elbo", "lr", "kl_weight"):
        assert [row[column] for row in logged] == [row[column] for row in plain], column


def test_a_refused_resume_writes_nothing(watched):
    run_dir = watched.run_dir
    before = snapshot(run_dir)
    with pytest.raises(RunDirectoryInUse, match="lr=0.01"):
        run_experiment(compose_config(WATCHED + ["epochs=5", "resume=true", "lr=0.01"]), run_dir)
    assert snapshot(run_dir) == before


def test_a_run_refused_after_loading_its_data_writes_nothing(tmp_path):
    with pytest.raises(ConfigError, match="batch_size=1024 exceeds the 512 training images"):
        run_experiment(compose_config(WATCHED + ["batch_size=1024"]), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_missing_tensorboard_package_is_refused_before_any_work(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard now raises ImportError
    with pytest.raises(ConfigError, match=MISSING):
        run_experiment(compose_config(WATCHED), tmp_path / "run")
    assert not (tmp_path / "run").exists()
    validate(compose_tiny())  # logger=none needs no tensorboard


@pytest.mark.slow
def test_run_py_without_tensorboard_says_which_extra_to_install_in_one_line(tmp_path):
    hidden = tmp_path / "hidden" / "tensorboard"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text('raise ImportError("tensorboard is hidden by this test")\n')
    env = {**os.environ, "PYTHONPATH": str(hidden.parent)}
    run_dir = tmp_path / "run"
    line = run_py_refused("logger=tensorboard", f"hydra.run.dir={run_dir}", env=env, timeout=120)
    assert 'pip install -e ".[tensorboard]"' in line
    assert snapshot(run_dir) == {}  # Hydra's output folder check made it; nothing went in
