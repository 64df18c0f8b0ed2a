"""Every ``.venv/bin/python run.py`` command of the README and the documentation pages (``docs/*.md``), and
their Python snippet, run as written but shrunk; their settings tables and output contract checked
against the code.

Shrunk means: the data cut to a few hundred images, one epoch (two for a resumed run), K = 4
(a task on a finished run only K, the rest being the run's own),
at most two Optuna trials and two joblib workers, the first two values of each setting a sweep swept in
processes of its own (joblib, submitit: each job pays an interpreter's start), with outputs under a temporary
folder; everything else is the page's own command line. The commands run in-process through ``run.py``'s Hydra
entry point (``sys.argv`` set as the shell would), so that the CIFAR-10 commands can read a small archive
in the official format whose checksums are patched in. The SLURM command cannot run without a
cluster: its composed launcher configuration is checked instead; the torchrun line runs under torchrun.
"""

import re
import runpy
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from pyro_vae.data.mnist import SHIPPED_ROOT

from .helpers import ROOT, compose_config, read_metrics, run_python, write_cifar10_archive

pytestmark = pytest.mark.usefixtures("single_thread")

# The README and every documentation page: a command is checked wherever it lives.
PAGES = {
    path.relative_to(ROOT).as_posix(): path.read_text()
    for path in [ROOT / "README.md", *sorted(ROOT.glob("docs/*.md"))]
}
SHRINK = {
    "dataset.train_size": "192",
    "dataset.val_size": "64",
    "dataset.test_size": "32",
    "batch_size": "32",
    "epochs": "1",
    "eval.iwae_k": "4",
    "eval.val_iwae_k": "4",
    "hydra.launcher.n_jobs": "2",
}


def readme_commands(pages=PAGES):
    """Each ``.venv/bin/python run.py`` command of the README and the pages, from ``run.py`` on: every
    line of a code block that runs run.py (``.venv/bin/torchrun ... run.py`` too), and inline code that
    starts with the command; comments dropped, each once. (tests/test_docs.py checks that each is
    written in that one form.)"""
    commands = []
    for text in pages.values():
        for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
            for line in block.splitlines():
                line = line.split("#")[0].strip()
                if "run.py" in line:
                    commands.append(line[line.index("run.py") :])
        for inline in re.findall(r"`((?:\.venv/bin/)?python run\.py[^`]*)`", text):
            inline = " ".join(inline.split())
            commands.append(inline[inline.index("run.py") :])
    return list(dict.fromkeys(commands))


COMMANDS = readme_commands()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A working folder holding ``outputs/``, a data folder with MNIST and a small CIFAR-10
    archive, and the image files the reconstruct command names."""
    folder = tmp_path_factory.mktemp("readme")
    data = folder / "data"
    data.mkdir()
    for gz in SHIPPED_ROOT.glob("*.gz"):
        (data / gz.name).symlink_to(gz)
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(folder / name)
    # The user's callback module that docs/runs.md's command names: the page's own code block.
    [callbacks] = [block for block in python_blocks(PAGES["docs/runs.md"]) if "class PrintBest" in block]
    (folder / "my_callbacks.py").write_text(callbacks)
    # The user's prior that docs/variants.md's command names: the page's own code block too.
    [prior] = [block for block in python_blocks(PAGES["docs/variants.md"]) if "class MixturePrior" in block]
    (folder / "my_priors.py").write_text(prior)
    return folder


def python_blocks(page: str) -> list:
    """The ```python blocks of a page."""
    return [part.split("```", 1)[0] for part in page.split("```python\n")[1:]]


def shrunk(command: str, workspace: Path, index: int):
    """The argument list of ``command`` with the shrinking overrides in place of its own values."""
    args = shlex.split(command)[1:]
    shrink = dict(SHRINK)
    if "resume=true" in args:
        shrink["epochs"] = "2"
    if any(arg.startswith("hparams_search=") for arg in args):
        shrink["hydra.sweeper.n_trials"] = "2"
    if "hydra/launcher=joblib" not in args:
        shrink.pop("hydra.launcher.n_jobs")
    if any(arg.startswith("task=") and arg != "task=train" for arg in args):  # the run's own settings
        shrink = {"eval.iwae_k": shrink["eval.iwae_k"]}
    if "task=sample_quality" in args:  # few samples of the tiny run, a classifier cached in the workspace
        shrink = {"task.n": "40", "task.kid_subset_size": "16", "task.kid_subsets": "5"}
        shrink["quality.cache_dir"] = str(workspace / "cache")
    if "model=gan" in args:  # no likelihood to estimate; narrow networks
        del shrink["eval.iwae_k"], shrink["eval.val_iwae_k"]
        shrink.update({"model.generator_width": "4", "model.discriminator_width": "4"})
    if "model=m2" in args or any(arg.startswith("experiment=") and "m2" in arg for arg in args):
        del shrink["eval.iwae_k"], shrink["eval.val_iwae_k"]  # bounds with and without labels, no log p(x)
    # A task's task.run_dir (outputs/my_run, RUN, ...) and M1+M2's M1 are the shared finished run; each command
    # writes its own outputs/.
    args = [
        f"{arg.split('=')[0]}={workspace}/outputs/my_run"
        if arg.startswith(("task.run_dir=", "model.features_from="))
        else arg.replace("=outputs/", f"={workspace}/{index}/outputs/")
        for arg in args
        if arg.split("=")[0].lstrip("+~") not in shrink
    ]
    args += [f"{key}={value}" for key, value in shrink.items()]
    if any(arg.startswith("hydra/launcher=") for arg in args):
        args = [first_two_values(arg) for arg in args]
    cifar10 = "likelihood=gaussian" in command and "dataset=mnist" not in command or "dataset=cifar10" in command
    if cifar10 or "bernoulli,gaussian" in command:
        args.append(f"dataset.root={workspace / 'data'}")  # CIFAR-10: the small archive (MNIST is there too)
    if "-m" in args or "hydra.sweeper.n_trials" in shrink:  # hparams_search configs are multiruns
        args.append(f"hydra.sweep.dir={workspace}/multirun/{index}")
    elif not any(arg.startswith("hydra.run.dir=") for arg in args):
        args.append(f"hydra.run.dir={workspace}/runs/{index}")
    return args


def first_two_values(arg: str) -> str:
    """A swept setting (``KEY=A,B,C``, or Hydra's ``choice`` or ``range``) as ``KEY=A,B``, read by Hydra's own
    override grammar (a list ``[a,b]`` is one value); any other argument (``-m``, ``KEY=VALUE``) as it is."""
    if "=" not in arg:
        return arg
    override = OverridesParser.create().parse_override(arg)
    if not override.is_discrete_sweep():
        return arg
    return f"{override.get_key_element()}={','.join(list(override.sweep_string_iterator())[:2])}"


def run_py_in_process(args, workspace, monkeypatch):
    """``.venv/bin/python run.py ARGS`` run from ``workspace`` in this process, through run.py's Hydra entry point."""
    monkeypatch.chdir(workspace)
    monkeypatch.setattr(sys, "argv", [str(ROOT / "run.py"), *args])
    try:
        runpy.run_path(str(ROOT / "run.py"), run_name="__main__")  # as `python run.py ARGS` runs it
    finally:  # a process ends with its run; here Hydra's global state must not leak into later tests
        HydraConfig.instance().cfg = None
        GlobalHydra.instance().clear()


@pytest.fixture(scope="module")
def my_run(workspace):
    """``outputs/my_run``: the README's main command, shrunk; the task commands work on it."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        args = shrunk("run.py", workspace, 0)
        run_py_in_process(
            [a for a in args if not a.startswith("hydra.run.dir")] + [f"hydra.run.dir={workspace}/outputs/my_run"],
            workspace,
            monkeypatch,
        )
    return workspace / "outputs" / "my_run"


def test_the_readme_has_its_commands():
    assert (
        len(COMMANDS) >= 20
        and "run.py" in COMMANDS
        and "run.py task=evaluate task.run_dir=outputs/my_run eval.iwae_k=5000" in COMMANDS
    )


def test_commands_are_read_from_run_py_on_as_the_pages_write_them():
    page = (
        "```bash\n"
        ".venv/bin/python run.py latent_dim=2 epochs=5       # a comment\n"
        ".venv/bin/torchrun --nproc_per_node=2 run.py trainer.devices=2\n"
        ".venv/bin/pip install -e .\n"
        "```\n"
        "Then `.venv/bin/python run.py task=sample\ntask.n=64`, `.venv/bin/python run.py` and"
        " `.venv/bin/python -m pytest`; once more `.venv/bin/python run.py latent_dim=2 epochs=5`.\n"
    )
    assert readme_commands({"page.md": page}) == [
        "run.py latent_dim=2 epochs=5",
        "run.py trainer.devices=2",
        "run.py task=sample task.n=64",
        "run.py",
    ]


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_runs(command, workspace, my_run, monkeypatch, capsys, request):
    index = COMMANDS.index(command) + 1
    args = shrunk(command, workspace, index)
    monkeypatch.syspath_prepend(str(workspace))  # as run.py's own folder is, where a user keeps a module of theirs
    if "trainer.precision=bf16-mixed" in args:  # refused on a CPU without native bfloat16: stand in one with it
        request.getfixturevalue("cpu_with_bf16")
    write_cifar10_archive(workspace / "data", monkeypatch, per_batch=64)
    if "+cluster=slurm" in args:  # no cluster here: the launcher it would submit to
        single = [a for a in args if a != "-m" and not a.startswith("hydra.sweep.dir") and "," not in a]
        run_py_in_process(single + ["--cfg", "hydra"], workspace, monkeypatch)
        assert "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher" in capsys.readouterr().out
        return
    if "trainer.strategy=ddp" in args:  # the torchrun line: the processes torchrun starts, as the page runs them
        devices = next(arg.split("=", 1)[1] for arg in args if arg.startswith("trainer.devices="))
        torchrun = ["-m", "torch.distributed.run", f"--nproc_per_node={devices}", str(ROOT / "run.py")]
        run_python(*torchrun, *args, "threads=1", cwd=workspace)
        assert read_metrics(run_dirs_of(args)[0])["processes"] == int(devices)
        return
    if "resume=true" in args:  # the run it resumes, as its first command would have left it
        run_py_in_process(
            [a for a in args if a != "resume=true" and not a.startswith("epochs=")] + ["epochs=1"],
            workspace,
            monkeypatch,
        )
    run_py_in_process(args, workspace, monkeypatch)
    if "--cfg" in args:
        assert "latent_dim:" in capsys.readouterr().out
        return
    task = next((arg.split("=", 1)[1] for arg in args if arg.startswith("task=")), "train")
    figure = {"sample": "samples.png", "reconstruct": "reconstructions.png", "interpolate": "interpolation.png"}.get(
        task
    )
    if figure:
        assert (run_dirs_of(args)[0] / figure).is_file()
        return
    metrics = [read_metrics(run_dir) for run_dir in run_dirs_of(args)]
    if task == "sample_quality":
        assert all(m["sample_quality"]["sets"] for m in metrics), command
    elif "model=gan" in args:
        assert metrics and all(m["likelihood"] is None and "no_likelihood" in m for m in metrics), command
    else:  # a VAE's test ELBO, or M2's test bound without the labels
        bound = "test_elbo_unlabelled" if "test_error" in metrics[0] else "test_elbo"
        assert metrics and all(np.isfinite(m[bound]) for m in metrics), command
    if "resume=true" in args:
        assert metrics[0]["epochs_completed"] == 2


def run_dirs_of(args):
    """The run directory of the command, or the job directories of its sweep."""
    for arg in args:
        if arg.startswith("hydra.sweep.dir="):
            return sorted(path.parent for path in Path(arg.split("=", 1)[1]).glob("*/.hydra"))
    return [next(Path(arg.split("=", 1)[1]) for arg in args if arg.startswith("hydra.run.dir="))]


def test_readme_python_snippet_runs(my_run):
    snippets = [s for text in PAGES.values() for s in re.findall(r"```python\n(.*?)```", text, flags=re.S)]
    (snippet,) = [s for s in snippets if "pyro_vae.load(" in s]  # the API page's own is run by test_wings
    path = re.search(r'pyro_vae\.load\("([^"]+)"\)', snippet).group(1)
    namespace = {}
    exec(snippet.replace(path, str(my_run)), namespace)
    assert namespace["p"].batch_shape == (8,) and namespace["q"].event_shape == (20,)


def settings_rows():
    """(overrides, key, documented default) for every row of the setting tables of the README and
    the pages; a row that names a choice (`net=conv`, `objective=iwae`) is read with it, those under the
    heading of the Gaussian decoder with likelihood=gaussian."""
    rows = []
    for text in PAGES.values():
        for match in re.finditer(r"\| setting \| default \| meaning \|\n\| --- .*\n((?:\|.*\n)+)", text):
            rows += table_rows(
                match.group(1), gaussian=bool(re.search(r"^#+ The Gaussian decoder", text[: match.start()], flags=re.M))
            )
    return rows


def table_rows(table: str, gaussian: bool):
    """(overrides, key, documented default) for each line of one settings table."""
    rows = []
    section = ["likelihood=gaussian"] if gaussian else []
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        names = re.findall(r"`([^`]+)`", cells[0])
        keys = [name for name in names if "=" not in name]
        overrides = section + [name for name in names if "=" in name]
        defaults = [d.strip().strip("`") for d in re.split(r",\s*(?![^\[]*\])", cells[1])]
        rows += [(overrides, key, default) for key, default in zip(keys, defaults[-len(keys) :])]
    return rows


@pytest.mark.parametrize("overrides, key, default", settings_rows())
def test_readme_settings_tables_give_the_real_defaults(overrides, key, default):
    value = OmegaConf.select(compose_config(overrides), key, default="MISSING")
    assert value != "MISSING", f"the documentation names {key}, which the config does not have"
    if isinstance(value, DictConfig):  # a config group: its chosen option
        value = value.name
    documented = yaml.safe_load(default)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        assert float(documented) == pytest.approx(value), key
    else:
        assert documented == (
            OmegaConf.to_container(value) if not isinstance(value, (str, bool, type(None))) else value
        ), key


def test_readme_output_contract_names_every_metric_and_column(my_run):
    contract = dict(
        re.findall(r"^\| `(metrics\.json|history\.csv)` \| (.*) \|$", "\n".join(PAGES.values()), flags=re.M)
    )
    # Gaussian and Bayesian decoders, two stochastic layers
    variant_only = {
        "test_bits_per_dim",
        "test_elbo_given_weights",
        "test_weight_kl",
        "test_active_units_z1",
        "test_active_units_z2",
    }
    documented = set(re.findall(r"`([a-z_]+)`", contract["metrics.json"])) - variant_only
    assert documented == set(read_metrics(my_run))
    columns = re.findall(r"`([a-z_]+(?:, [a-z_]+)+)`", contract["history.csv"])[0]
    assert columns.split(", ") == (my_run / "history.csv").read_text().splitlines()[0].split(",")
