"""The commands the program prints (the resume line after Ctrl-C, a refused sweep, a missing extra)
take the form the README and the pages write them in, ``.venv/bin/python run.py ...`` from the
repository root after the README's first command, and still run as they are from anywhere else.
The pages' own form is checked by tests/test_docs.py; a real Ctrl-C by test_kill_resume.py."""

import shlex
import signal
import sys

import pytest

from pyro_vae.errors import ConfigError
from pyro_vae.runs.configuration import commands
from pyro_vae.runs.configuration.config import compose_config
from pyro_vae.runs.configuration.trainer_settings import require_logger_package
from pyro_vae.runs.directory import checkpoints
from pyro_vae.runs.loop import interrupts


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A repository root with the virtual environment of the README's first command, this process's
    interpreter in it."""
    root = tmp_path / "pyro-vae"
    (root / ".venv" / "bin").mkdir(parents=True)
    for program in ("python", "pip"):
        (root / ".venv" / "bin" / program).touch()
    monkeypatch.setattr(commands, "ROOT", root)
    monkeypatch.setattr(sys, "executable", str(root / ".venv" / "bin" / "python"))
    return root


def test_from_the_repository_root_a_printed_command_is_the_pages_form(checkout, monkeypatch):
    monkeypatch.chdir(checkout)
    assert commands.run_py("latent_dim=2", "resume=true") == ".venv/bin/python run.py latent_dim=2 resume=true"
    assert commands.pip_install_extra("tensorboard") == '.venv/bin/pip install -e ".[tensorboard]"'


def test_from_elsewhere_a_printed_command_names_the_interpreter_and_run_py_by_their_paths(checkout, monkeypatch):
    elsewhere = checkout.parent / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert shlex.split(commands.run_py("epochs=5")) == [
        str(checkout / ".venv" / "bin" / "python"),
        str(checkout / "run.py"),
        "epochs=5",
    ]
    assert commands.pip_install_extra("bench") == f'{checkout}/.venv/bin/pip install -e "{checkout}[bench]"'


def test_an_interpreter_without_pip_beside_it_installs_with_python_m_pip(checkout, monkeypatch):
    monkeypatch.chdir(checkout)
    (checkout / ".venv" / "bin" / "pip").unlink()
    assert commands.pip_install_extra("sweep") == '.venv/bin/python -m pip install -e ".[sweep]"'


def test_the_resume_line_after_ctrl_c_is_the_pages_form(checkout, monkeypatch):
    monkeypatch.chdir(checkout)
    run_dir = checkout / "outputs" / "x"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text("- latent_dim=2\n- hydra.run.dir=outputs/x\n")
    monkeypatch.setattr(checkpoints, "read", lambda path, *rest: {"history": [{"epoch": 1}, {"epoch": 2}]})
    (run_dir / checkpoints.LAST).touch()
    assert interrupts.interrupted_message(signal.SIGINT, run_dir) == (
        f"SIGINT: stopped after epoch 2, saved in {run_dir / checkpoints.LAST}; resume with: "
        f".venv/bin/python run.py latent_dim=2 hydra.run.dir={run_dir} resume=true"
    )


def test_the_refusals_that_name_a_command_name_it_in_the_pages_form(checkout, monkeypatch):
    monkeypatch.chdir(checkout)
    with pytest.raises(ConfigError, match=r"only in a multirun \(\.venv/bin/python run\.py -m \.\.\.\)"):
        compose_config(["latent_dim=2,10"])
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard raises ImportError
    with pytest.raises(ConfigError, match=r'; \.venv/bin/pip install -e "\.\[tensorboard\]" or use logger=none$'):
        require_logger_package("tensorboard")
