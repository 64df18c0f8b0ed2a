"""Config composition through Hydra's compose API, and clear refusals of bad settings."""

import pytest
import torch

from pyro_vae import optimizers
from pyro_vae.errors import ConfigError
from pyro_vae.objectives import make_objective
from pyro_vae.optimizers import make_optimizer
from pyro_vae.settings import apply_threads, resolve_device, validate

from .conftest import CONF, compose_config, one_line, run_py

# The groups chosen with `group=option`; experiment/ and cluster/ are appended with `+` (tests/test_sweeps.py).
SELECTABLE = ("dataset", "likelihood", "net", "optimizer", "elbo", "schedule")
GROUPS = {group: sorted(p.stem for p in (CONF / group).glob("*.yaml")) for group in SELECTABLE}


def test_defaults_are_the_mnist_bernoulli_vae():
    cfg = compose_config()
    assert (cfg.data.name, cfg.likelihood.name, cfg.net.name, cfg.elbo.name, cfg.optimizer.name) == (
        "mnist",
        "bernoulli",
        "mlp",
        "trace",
        "adam",
    )
    assert cfg.data.binarize == "dynamic" and cfg.device == "auto"
    validate(cfg)


def test_the_documented_command_line_composes():
    cfg = compose_config(["likelihood=bernoulli", "latent_dim=20", "optimizer=rmsprop", "elbo=iwae"])
    assert cfg.latent_dim == 20 and cfg.optimizer.name == "rmsprop" and cfg.elbo.num_particles == 5


@pytest.mark.parametrize("group, option", [(g, o) for g, options in GROUPS.items() for o in options])
def test_every_config_group_option_composes_and_builds(group, option):
    cfg = compose_config([f"{group}={option}"])
    validate(cfg)
    make_objective(cfg.elbo)
    params = [torch.nn.Parameter(torch.zeros(3))]
    make_optimizer(cfg.optimizer, cfg.lr, params, 1000)


@pytest.mark.parametrize(
    "override, message",
    [
        ("latent_dim=0", "latent_dim=0: must be a positive integer"),
        ("epochs=-1", "epochs=-1: must be a positive integer"),
        ("eval.iwae_k=0", "eval.iwae_k=0: must be a positive integer"),
        ("net.hidden_dims=[64,0]", r"net.hidden_dims=\[64, 0\]: must be a list of positive integers"),
        ("net.activation=swish", "net.activation=swish: choose one of relu, tanh, softplus, elu"),
        ("net.min_scale=0", "net.min_scale=0: must be > 0"),
        ("seed=1.5", "seed=1.5: must be an integer"),
        ("threads=0", "threads=0: must be a positive integer"),
    ],
)
def test_invalid_settings_are_refused_with_the_setting_named(override, message):
    with pytest.raises(ConfigError, match=message):
        validate(compose_config([override]))


def test_adam_falls_back_to_foreach_with_one_warning_where_torch_has_no_fused_cpu_adam(monkeypatch, caplog):
    """torch before 2.4 refuses fused=True for CPU tensors with a RuntimeError; imitated here."""
    real_adam = torch.optim.Adam

    def adam_without_fused_cpu(params, fused=None, **arguments):
        if fused:
            raise RuntimeError(
                "`fused=True` requires all the params to be floating point Tensors of supported devices: ['cuda']"
            )
        return real_adam(params, fused=fused, **arguments)

    monkeypatch.setattr(torch.optim, "Adam", adam_without_fused_cpu)
    optimizers.fused_adam_runs_on.cache_clear()
    cfg = compose_config()
    try:
        built = [make_optimizer(cfg.optimizer, cfg.lr, [torch.nn.Parameter(torch.zeros(3))], 1) for _ in range(3)]
    finally:
        optimizers.fused_adam_runs_on.cache_clear()
    assert all(o.defaults["foreach"] and not o.defaults["fused"] for o in built)
    warnings = [r.getMessage() for r in caplog.records if "fused" in r.getMessage()]
    assert len(warnings) == 1 and "has no fused Adam on cpu; using its foreach Adam" in warnings[0]


def test_invalid_objective_optimizer_and_device_are_refused():
    cfg = compose_config(["elbo.num_particles=0"])
    with pytest.raises(ConfigError, match="elbo.num_particles=0: must be a positive integer"):
        make_objective(cfg.elbo)
    with pytest.raises(ConfigError, match="lr=-0.1: must be a positive finite number"):
        make_optimizer(cfg.optimizer, -0.1, [torch.nn.Parameter(torch.zeros(3))], 1)
    with pytest.raises(ConfigError, match="device=tpu: choose auto, cpu or cuda"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="device=cuda: no CUDA device"):
            resolve_device("cuda")


def test_run_py_reports_a_bad_setting_in_one_line(tmp_path):
    result = run_py("latent_dim=0", f"hydra.run.dir={tmp_path}", returncode=2, timeout=120)
    assert "latent_dim=0: must be a positive integer" in one_line(result)
    assert "Traceback" not in result.stderr


def test_threads_setting_sets_torchs_cpu_threads():
    before = torch.get_num_threads()
    try:
        apply_threads(1)
        assert torch.get_num_threads() == 1
        apply_threads(None)  # null keeps what torch has
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_a_batch_larger_than_the_training_set_is_one_line(tmp_path):
    line = one_line(
        run_py("data.train_size=100", "batch_size=128", f"hydra.run.dir={tmp_path}", returncode=2, timeout=120)
    )
    assert "batch_size=128 exceeds the 100 training images; lower it or raise data.train_size" in line
