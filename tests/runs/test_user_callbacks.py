"""A user adds a Lightning callback of their own module by configuration alone
(``+callbacks.NAME._target_=MODULE.CLASS``, docs/runs.md), through run.py; one that cannot be built,
or is not a callback, is refused in one line with nothing written. A logger of their own replaces the
logger option's ``_target_`` (``logger._target_=MODULE.CLASS``)."""

import json

from pyro_vae.runs.tasks.training_run import run_experiment

from ..helpers import compose_tiny, read_history, refused_leaving_nothing, run_py, tiny
from .user_callback import RecordingLogger

OWN = "tests.runs.user_callback"  # importable from the repository root, where run.py runs


def test_a_callback_of_the_users_module_runs_in_the_training_loop(tmp_path):
    record = tmp_path / "seen.json"
    run_dir = tmp_path / "run"
    run_py(
        *tiny("epochs=2", "eval.iwae_k=2"),
        f"+callbacks.record._target_={OWN}.RecordEpochs",
        f"+callbacks.record.path={record}",
        f"hydra.run.dir={run_dir}",
    )
    seen = json.loads(record.read_text())
    history = read_history(run_dir)
    assert seen["epochs"] == [1, 2]
    assert seen["val_elbo"] == float(history[-1]["val_elbo"])


def test_a_target_that_cannot_be_imported_is_refused_in_one_line(tmp_path):
    line = refused_leaving_nothing(tmp_path, "+callbacks.mine._target_=no_such_module.Callback")
    assert line.endswith(
        "callbacks.mine._target_=no_such_module.Callback: cannot be imported (ModuleNotFoundError: No module named "
        "'no_such_module'); is its module on the path (the directory run.py runs in, or PYTHONPATH)?"
    )


def test_a_class_that_is_not_a_callback_is_refused_in_one_line(tmp_path):
    line = refused_leaving_nothing(tmp_path, f"+callbacks.mine._target_={OWN}.NotACallback")
    assert line.endswith(
        f"callbacks.mine._target_={OWN}.NotACallback: builds a NotACallback, not a lightning.pytorch.Callback; "
        "subclass it"
    )


def test_a_logger_of_the_users_module_gets_every_epoch_and_the_results(tmp_path):
    RecordingLogger.seen.clear()
    run_experiment(compose_tiny("epochs=2", "eval.iwae_k=2", f"logger._target_={OWN}.RecordingLogger"), tmp_path)
    epochs = [(step, metrics) for kind, *rest in RecordingLogger.seen if kind == "metrics" for step, metrics in [rest]]
    history = read_history(tmp_path)
    assert [step for step, _ in epochs] == [1, 2, 2]  # each epoch, then the results at the last one
    assert [metrics["val/elbo"] for _, metrics in epochs[:2]] == [float(row["val_elbo"]) for row in history]
    assert "test/elbo" in epochs[2][1]
    assert any(kind == "hparams" and rest[0]["latent_dim"] == 4 for kind, *rest in RecordingLogger.seen)
