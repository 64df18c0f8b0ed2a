"""A user's own prior (a ``LatentPrior`` of their own module) given as ``prior._target_`` with its own
settings trains through run.py, is saved with the run and loads again with ``pyro_vae.load``; a target
that cannot be imported, or is not a prior, is refused in one line with nothing written."""

import pytest

import pyro_vae

from ..helpers import read_metrics, refused_leaving_nothing, run_py, tiny
from .user_prior import MixturePrior

OWN = "tests.runs.user_prior"  # importable from the repository root, where run.py runs


@pytest.mark.slow
def test_a_prior_of_the_users_module_trains_saves_and_loads(tmp_path):
    run_dir = tmp_path / "run"
    run_py(
        *tiny("epochs=2", "eval.iwae_k=2"),
        f"prior._target_={OWN}.MixturePrior",
        "+prior.components=3",
        f"hydra.run.dir={run_dir}",
    )
    metrics = read_metrics(run_dir)
    prior = pyro_vae.load(run_dir).latent_prior
    assert isinstance(prior, MixturePrior) and prior.locs.shape == (3, 4)  # latent_dim=4
    assert prior.logits.abs().max() > 0  # trained with the model from its start at 0
    assert not prior.closed_form_kl  # the bounds are Monte Carlo ones, as for the VampPrior
    assert metrics["test_log_likelihood"] >= metrics["test_elbo"] > -800


@pytest.mark.parametrize(
    "overrides, refusal",
    [
        (
            ["prior._target_=no_such_module.Prior"],
            "prior._target_=no_such_module.Prior: cannot be imported (ModuleNotFoundError: No module named "
            "'no_such_module'); is its module on the path (the directory run.py runs in, or PYTHONPATH)?",
        ),
        (
            [f"prior._target_={OWN}.NotAPrior"],
            f"prior._target_={OWN}.NotAPrior: NotAPrior is not a pyro_vae.modelling.priors.LatentPrior; subclass it",
        ),
        (
            [f"prior._target_={OWN}.MixturePrior", "+prior.components_=3"],
            f"prior._target_={OWN}.MixturePrior: got an unexpected keyword argument 'components_' (its settings, "
            "prior.*, are its arguments after latent_dim and image_shape)",
        ),
    ],
    ids=["not importable", "not a prior", "a setting it does not take"],
)
def test_a_prior_that_cannot_be_built_is_refused_in_one_line(tmp_path, overrides, refusal):
    assert refused_leaving_nothing(tmp_path, *overrides).endswith(refusal)
