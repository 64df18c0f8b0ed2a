"""A user adds a Lightning callback of their own module by configuration alone
(``+callbacks.NAME._target_=MODULE.CLASS``, docs/runs.md), through run.py; one that cannot be built,
or is not a callback, is refused in one line with nothing written."""

import json

from ..helpers import read_history, run_py, run_py_refused, tiny

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
    line = run_py_refused(
        *tiny(), "+callbacks.mine._target_=no_such_module.Callback", f"hydra.run.dir={tmp_path / 'run'}"
    )
    assert line.endswith(
        "callbacks.mine._target_=no_such_module.Callback: cannot be imported (ModuleNotFoundError: No module named "
        "'no_such_module'); is its module on the path (the directory run.py runs in, or PYTHONPATH)?"
    )
    assert not (tmp_path / "run").exists()


def test_a_class_that_is_not_a_callback_is_refused_in_one_line(tmp_path):
    line = run_py_refused(*tiny(), f"+callbacks.mine._target_={OWN}.NotACallback", f"hydra.run.dir={tmp_path / 'run'}")
    assert line.endswith(
        f"callbacks.mine._target_={OWN}.NotACallback: builds a NotACallback, not a lightning.pytorch.Callback; "
        "subclass it"
    )
    assert not (tmp_path / "run").exists()
