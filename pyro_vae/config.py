"""The project's configuration from Python: ``conf/`` composed by Hydra's compose API, as
``run.py`` composes it, so that a run can be set up and trained without a command line."""

from pathlib import Path
from typing import Sequence

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

# conf/ sits beside the package in the repository, where run.py finds it too.
CONF = Path(__file__).resolve().parents[1] / "conf"


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """The config of ``python run.py OVERRIDES`` (less Hydra's own ``hydra`` node), e.g.
    ``run_experiment(compose_config(["latent_dim=2", "epochs=5"]), run_dir)``."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))
