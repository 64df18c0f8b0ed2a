"""The project's configuration from Python: ``conf/`` composed by Hydra's compose API, as
``run.py`` composes it, so that a run can be set up and trained without a command line."""

from pathlib import Path
from typing import Sequence

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from ...errors import ConfigError
from .refusals import check_against_schema, composition_refusal
from .schema import register_schemas

# conf/ sits beside the package in the repository, where run.py finds it too.
CONF = Path(__file__).resolve().parents[3] / "conf"


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """The config of ``python run.py OVERRIDES`` (less Hydra's own ``hydra`` node), e.g.
    ``run_experiment(compose_config(["latent_dim=2", "epochs=5"]), run_dir)``.

    An unknown key, a value of the wrong type or an unknown group option raises ConfigError with
    the one line ``run.py`` prints for it (pyro_vae/schema.py declares every key and its type)."""
    register_schemas()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        try:
            cfg = compose(config_name="config", overrides=list(overrides))
        except Exception as error:
            refusal = composition_refusal(error, overrides)
            if refusal is None:
                raise
            raise ConfigError(refusal) from error
    check_against_schema(cfg)
    return cfg
