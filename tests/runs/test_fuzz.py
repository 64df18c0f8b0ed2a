"""Settings drawn at random, valid and invalid, alone and in pairs, through the real ``run.py``
on tiny data: every command either finishes with its metrics or stops with a clean refusal.

Every refusal is one line with exit status 2, never a traceback: a value out of range as much as
what Hydra refuses while it composes against pyro_vae/schema.py (an unknown key, a value of the
wrong type, an unknown group option). The CI budget is small;
``PYRO_VAE_FUZZ_EXAMPLES=200 pytest tests/runs/test_fuzz.py`` runs a larger one by hand.
"""

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ..helpers import run_py

TINY_DATA = [
    "dataset.train_size=128",
    "dataset.val_size=64",
    "dataset.test_size=32",
    "net.widths=[16]",
    "latent_dim=2",
    "batch_size=32",
    "epochs=1",
    "eval.iwae_k=2",
    "device=cpu",
]
VALUES = {
    "latent_dim": ["3", "0", "-2", "abc", "1.5", "null"],
    "epochs": ["2", "0", "x"],
    "batch_size": ["16", "0", "100000", "abc"],
    "lr": ["3e-3", "0", "-1", "abc", "inf", "nan"],
    "seed": ["1", "1.5", "abc"],
    "net.widths": ["[8,4]", "[]", "[0]", "abc"],
    "net.activation": ["tanh", "elu", "swish"],
    "net.min_encoder_scale": ["1e-3", "0", "-1"],
    "optimizer": ["rmsprop", "adagrad", "clipped_adam", "sgd"],
    "elbo": ["meanfield", "iwae", "jit", "trace_pyro", "bogus"],
    "objective.num_particles": ["2", "0", "abc"],
    "schedule": ["plateau", "burda", "cosine", "bogus"],
    "kl_weight": ["0", "0.5", "-1", "abc"],
    "kl_warmup_epochs": ["2", "-1", "1.5"],
    "model": ["cvae", "gan"],
    "dataset.binarize": ["static", "none", "bogus"],
    "eval.iwae_k": ["0", "abc", "3"],
    "eval.chunk_size": ["1", "0"],
    "decoder.bayesian": ["true", "maybe"],
    "decoder.weight_init_scale": ["0", "1e-12", "0.1"],
    "early_stopping.patience": ["1", "0", "abc"],
    "early_stopping.threshold": ["0", "-1", "abc"],
    "threads": ["1", "0", "abc"],
    "device": ["cuda", "tpu"],
    "likelihood": ["gaussian"],
    "task": ["evaluate", "sample", "bogus"],
    # keys the schema does not declare (for every option, or for the default one), and wrong types
    "latent_dimm": ["3"],
    "eval.iwae": ["5"],
    "decoder": ["3"],
    "net": ["conv", "foo"],
    "optimizer.alpha": ["0.9", "abc"],
    "schedule.patience": ["2", "1.5"],
    "logger.image_every": ["x"],
    "task.n": ["3", "abc", "-1"],
    "task.run_dir": ["/nonexistent", "null"],
    "task.images": ["abc", "[a.png]"],
}
EXAMPLES = int(os.environ.get("PYRO_VAE_FUZZ_EXAMPLES", "12"))

overrides = st.lists(st.sampled_from(sorted(VALUES)), min_size=1, max_size=2, unique=True).flatmap(
    lambda keys: st.tuples(*(st.sampled_from(VALUES[key]).map(lambda value, key=key: f"{key}={value}") for key in keys))
)


@pytest.mark.slow
@settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(overrides)
def test_every_drawn_command_finishes_or_is_refused_cleanly(tmp_path_factory, drawn):
    out = tmp_path_factory.mktemp("fuzz")
    result = run_py(*TINY_DATA, *drawn, f"hydra.run.dir={out}", returncode=None, timeout=300)
    output = (result.stdout + result.stderr).strip()
    assert "Traceback" not in output, (drawn, output)
    assert result.returncode in (0, 2), (drawn, result.returncode, output)
    if result.returncode == 0:
        assert (out / "metrics.json").is_file() or "task=" in " ".join(drawn), (drawn, output)
    else:
        assert len(output.splitlines()) == 1 and "[pyro_vae][ERROR] - " in output, (drawn, output)
        assert result.stdout == "", (drawn, output)  # on stderr, as every refusal
