"""``python run.py`` reads its command line without the heavy modules: ``--help``, ``--cfg job`` and a
refused setting answer before torch, matplotlib, Pyro or the modelling wing load (they load when a run
starts). Untimed: each command runs in a fresh interpreter, which then lists what it loaded;
benchmarks/startup.py times them against ``import torch``."""

import json

import pytest

from ..helpers import ROOT, run_python

# What a command that does no work must not load: these packages, and the wings of pyro_vae that load them.
HEAVY = ("torch", "torchvision", "matplotlib", "pyro", "PIL")
WINGS = ("pyro_vae.modelling", "pyro_vae.data")

# run.py as ``python run.py ARGS`` runs it, then the heavy modules it loaded and its exit status, as JSON.
LOADED = """
import json, runpy, sys
sys.argv = [{run_py!r}, *{args!r}]
try:
    runpy.run_path({run_py!r}, run_name="__main__")
    status = 0
except SystemExit as exit:
    status = exit.code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r} or m.rpartition(".")[0] in {wings!r})
with open({out!r}, "w") as out:
    json.dump({{"status": status, "heavy": heavy}}, out)
"""


@pytest.mark.slow  # a fresh process each
@pytest.mark.parametrize(
    "args, status",
    [(["--help"], 0), (["--cfg", "job"], 0), (["latent_dim=-3"], 2), (["seed=-1"], 2), (["lr=-0.1"], 2)],
    ids=["--help", "--cfg job", "range latent_dim", "range seed", "range lr"],
)
def test_run_py_answers_without_loading_torch(tmp_path, args, status):
    out = tmp_path / "loaded.json"
    args = [*args, f"hydra.run.dir={tmp_path / 'run'}"] if status else args
    code = LOADED.format(run_py=str(ROOT / "run.py"), args=args, heavy=HEAVY, wings=WINGS, out=str(out))
    run_python("-c", code)
    loaded = json.loads(out.read_text())
    assert loaded["status"] == status
    assert loaded["heavy"] == [], f"python run.py {' '.join(args)} loaded {loaded['heavy'][:8]}"
    assert not (tmp_path / "run").exists()
