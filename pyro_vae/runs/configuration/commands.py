"""The commands the program prints for its user to run (the one that resumes a stopped run, the one
that installs a missing extra), in the form the README and the pages write them: the interpreter
that runs this process, and the project's files, each relative to the working directory when they
lie inside it. After the README's first command, from the repository root, that is
``.venv/bin/python run.py ...`` and ``.venv/bin/pip install -e ".[EXTRA]"``, as written there;
from anywhere else, or with another interpreter, the printed command still runs as it is."""

import os
import shlex
import sys
from pathlib import Path

# run.py and pyproject.toml sit beside the package in the repository (conf/ too: see config.py).
ROOT = Path(__file__).resolve().parents[3]


def shown(path: Path) -> str:
    """``path`` as typed from the working directory: relative when inside it, else absolute."""
    path = Path(os.path.abspath(path))  # not resolve(): a virtual environment's python is a symlink out of it
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return path.as_posix()


def program(path: Path) -> str:
    """An executable's ``path`` as typed: a bare name would be looked up on PATH, so ``./NAME``."""
    typed = shown(path)
    return typed if "/" in typed else f"./{typed}"


def python() -> str:
    """The interpreter that runs this process, e.g. ``.venv/bin/python``."""
    return program(Path(sys.executable)) if sys.executable else "python3"


def run_py(*args: str) -> str:
    """``python run.py ARGS`` as this process would run it, e.g. ``.venv/bin/python run.py epochs=5``."""
    return shlex.join([python(), shown(ROOT / "run.py"), *args])


def pip_install_extra(extra: str) -> str:
    """The command that installs the project with ``extra`` into this interpreter's environment, e.g.
    ``.venv/bin/pip install -e ".[tensorboard]"`` (``python -m pip`` where no pip sits beside it)."""
    return f'{_pip()} install -e "{shown(ROOT)}[{extra}]"'


def pip_install(package: str) -> str:
    """The command that installs ``package`` into this interpreter's environment: ``.venv/bin/pip install mlflow``."""
    return f"{_pip()} install {package}"


def _pip() -> str:
    pip = Path(sys.executable).with_name("pip") if sys.executable else None
    return shlex.join([program(pip)] if pip is not None and pip.is_file() else [python(), "-m", "pip"])
