"""Settings drawn at random, valid and invalid, alone and in pairs, through the real ``run.py``
on tiny data: every command either finishes with its metrics or stops with a clean refusal.

Ours are one line (exit 2). Hydra's own composition errors (an unknown group option or key)
are Hydra's multi-line message (exit 1), never a traceback. The CI budget is small;
``PYRO_VAE_FUZZ_EXAMPLES=200 pytest tests/test_fuzz.py`` runs a larger one by hand.
"""

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import run_py

TINY_DATA = [
    "data.train_size=128",
    "data.val_size=64",
    "data.test_size=32",
    "net.hidden_dims=[16]",
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
    "net.hidden_dims": ["[8,4]", "[]", "[0]", "abc"],
    "net.activation": ["tanh", "elu", "swish"],
    "net.min_scale": ["1e-3", "0", "-1"],
    "optimizer": ["rmsprop", "adagrad", "clipped_adam", "sgd"],
    "elbo": ["meanfield", "iwae", "jit", "trace_pyro", "bogus"],
    "elbo.num_particles": ["2", "0", "abc"],
    "schedule": ["plateau", "burda", "cosine", "bogus"],
    "kl_weight": ["0", "0.5", "-1", "abc"],
    "kl_warmup_epochs": ["2", "-1", "1.5"],
    "model": ["cvae", "gan"],
    "data.binarize": ["static", "none", "bogus"],
    "eval.iwae_k": ["0", "abc", "3"],
    "eval.chunk_size": ["1", "0"],
    "decoder.bayesian": ["true", "maybe"],
    "decoder.init_scale": ["0", "1e-12", "0.1"],
    "early_stopping.patience": ["1", "0", "abc"],
    "early_stopping.threshold": ["0", "-1", "abc"],
    "threads": ["1", "0", "abc"],
    "device": ["cuda", "tpu"],
    "likelihood": ["gaussian"],
    "task": ["evaluate", "bogus"],
}
EXAMPLES = int(os.environ.get("PYRO_VAE_FUZZ_EXAMPLES", "12"))

overrides = st.lists(st.sampled_from(sorted(VALUES)), min_size=1, max_size=2, unique=True).flatmap(
    lambda keys: st.tuples(*(st.sampled_from(VALUES[key]).map(lambda value, key=key: f"{key}={value}") for key in keys))
)


@settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(overrides)
def test_every_drawn_command_finishes_or_is_refused_cleanly(tmp_path_factory, drawn):
    out = tmp_path_factory.mktemp("fuzz")
    result = run_py(*TINY_DATA, *drawn, f"hydra.run.dir={out}", returncode=None, timeout=300)
    output = (result.stdout + result.stderr).strip()
    assert "Traceback" not in output, (drawn, output)
    if result.returncode == 0:
        assert (out / "metrics.json").is_file() or "task=" in " ".join(drawn), (drawn, output)
    elif result.returncode == 2:
        assert len(output.splitlines()) == 1, (drawn, output)
    else:
        assert result.returncode == 1 and "HYDRA_FULL_ERROR" in output, (drawn, result.returncode, output)
