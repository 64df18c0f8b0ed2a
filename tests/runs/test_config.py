"""Config composition through Hydra's compose API, and clear refusals of bad settings."""

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf
from PIL import Image

from pyro_vae.errors import ConfigError
from pyro_vae.runs.configuration.builders import build_vae, make_objective
from pyro_vae.runs.configuration.ranges import MAX_SEED, MIN_EPS, POSITIVE_INTEGER
from pyro_vae.runs.configuration.schema import OPTIONS, Config, Option, PriorConfig, register_schemas, setting
from pyro_vae.runs.configuration.settings import apply_threads, resolve_device, validate
from pyro_vae.runs.loop import optimizers
from pyro_vae.runs.loop.optimizers import make_optimizer

from ..helpers import CONF, compose_config, one_line, run_py

# The groups chosen with `group=option`; experiment/ and cluster/ are appended with `+` (tests/runs/test_sweeps.py).
SELECTABLE = ("dataset", "likelihood", "net", "optimizer", "objective", "schedule")
GROUPS = {group: sorted(OPTIONS[group]) for group in SELECTABLE}


def test_defaults_are_the_mnist_bernoulli_vae():
    cfg = compose_config()
    assert (cfg.dataset.name, cfg.likelihood.name, cfg.net.name, cfg.objective.name, cfg.optimizer.name) == (
        "mnist",
        "bernoulli",
        "mlp",
        "trace",
        "adam",
    )
    assert cfg.dataset.binarize == "dynamic" and cfg.device == "auto"
    validate(cfg)


def test_the_documented_command_line_composes():
    cfg = compose_config(["likelihood=bernoulli", "latent_dim=20", "optimizer=rmsprop", "objective=iwae"])
    assert cfg.latent_dim == 20 and cfg.optimizer.name == "rmsprop" and cfg.objective.num_particles == 5


@pytest.mark.parametrize("group, option", [(g, o) for g, options in GROUPS.items() for o in options])
def test_every_config_group_option_composes_and_builds(group, option, tmp_path):
    overrides = [f"{group}={option}"]
    if option == "folder":  # checked against its folder before any work: a folder of three images
        for index in range(3):
            Image.new("L", (28, 28), color=index).save(tmp_path / f"{index}.png")
        overrides += [f"dataset.root={tmp_path}", "dataset.val_size=1"]
    cfg = compose_config(overrides)
    validate(cfg)
    make_objective(cfg.objective)
    params = [torch.nn.Parameter(torch.zeros(3))]
    make_optimizer(cfg.optimizer, cfg.lr, params, 1000)


def test_adam_falls_back_to_foreach_with_one_warning_where_torch_has_no_fused_cpu_adam(monkeypatch, caplog):
    """torch before 2.4 refuses fused=True for CPU tensors with a RuntimeError; imitated here."""

    class AdamWithoutFusedCpu(torch.optim.Adam):
        def __init__(self, params, fused=None, **arguments):
            if fused:
                raise RuntimeError(
                    "`fused=True` requires all the params to be floating point Tensors of supported devices: ['cuda']"
                )
            super().__init__(params, fused=fused, **arguments)

    monkeypatch.setattr(torch.optim, "Adam", AdamWithoutFusedCpu)
    optimizers.fused_adam_runs_on.cache_clear()
    cfg = compose_config()
    try:
        built = [make_optimizer(cfg.optimizer, cfg.lr, [torch.nn.Parameter(torch.zeros(3))], 1) for _ in range(3)]
    finally:
        optimizers.fused_adam_runs_on.cache_clear()
    assert all(o.defaults["foreach"] and not o.defaults["fused"] for o in built)
    warnings = [r.getMessage() for r in caplog.records if "fused" in r.getMessage()]
    assert len(warnings) == 1 and "has no fused Adam on cpu; using its foreach Adam" in warnings[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_a_gpu_is_refused():
    with pytest.raises(ConfigError, match="device=cuda: no CUDA device"):
        resolve_device("cuda")


@pytest.mark.slow
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


def test_the_bounds_settings_writes_out_are_torchs_and_numpys():
    """settings.py loads neither torch nor numpy (run.py checks the settings before they load): their bounds,
    written out there, are theirs."""
    assert MIN_EPS == torch.finfo(torch.float32).tiny
    np.random.RandomState(MAX_SEED)  # numpy's legacy seeding, which pyro.set_rng_seed(seed) calls
    with pytest.raises(ValueError, match=r"2\*\*32 - 1"):
        np.random.RandomState(MAX_SEED + 1)
    with pytest.raises(ValueError):
        np.random.RandomState(-1)


@pytest.mark.slow
def test_a_batch_larger_than_the_training_set_is_one_line(tmp_path):
    line = one_line(
        run_py("dataset.train_size=100", "batch_size=128", f"hydra.run.dir={tmp_path}", returncode=2, timeout=120)
    )
    assert "batch_size=128 exceeds the 100 training images; lower it or raise dataset.train_size" in line


# Composition against the schema (pyro_vae/schema.py): the override, then what it accepts.


def test_every_option_of_a_config_group_composes_with_its_declared_settings():
    """conf/ holds no option of a group but the two likelihoods that change other groups' defaults: each
    option is its declaration (schema.OPTIONS), and composing it gives its node that type and those values."""
    assert {p.parent.name for p in CONF.glob("*/*.yaml")} & set(OPTIONS) == {"likelihood"}
    for group, options in OPTIONS.items():
        for name, declared in options.items():
            assert (CONF / group / f"{name}.yaml").exists() == declared.file, (group, name)
            node = compose_config([f"{group}={name}"])[group]
            assert OmegaConf.get_type(node) is declared.schema, (group, name)
            assert OmegaConf.to_container(node) == OmegaConf.to_container(OmegaConf.structured(declared.node)), name
            if declared.builds is not None:
                assert declared.component() is not None  # what it builds imports
    assert OmegaConf.get_type(compose_config()) is Config


def test_an_option_is_one_declaration(monkeypatch):
    """docs/settings.md's 'Adding an option': a prior declared in OPTIONS (its settings' dataclass and node)
    composes, has its range checked, and builds the class its _target_ names, nothing else written."""

    @dataclass
    class MixturePriorConfig(PriorConfig):
        components: int = setting(10, "the Gaussians of the mixture", POSITIVE_INTEGER)

    node = MixturePriorConfig(name="mixture", _target_="tests.runs.user_prior.MixturePrior")
    monkeypatch.setitem(OPTIONS["prior"], "mixture", Option(node))
    register_schemas()
    try:
        cfg = compose_config(["prior=mixture", "prior.components=5"])
        validate(cfg)
        vae = build_vae(cfg, (1, 28, 28), 10)
        assert type(vae.latent_prior).__name__ == "MixturePrior" and vae.latent_prior.locs.shape == (5, 20)
        with pytest.raises(ConfigError, match=r"^prior.components=0: must be a positive integer$"):
            validate(compose_config(["prior=mixture", "prior.components=0"]))
    finally:  # the other tests of this process list the project's options only
        del ConfigStore.instance().repo["prior"]["mixture.yaml"]


def test_schemas_register_twice_and_floats_take_integers():
    register_schemas()
    register_schemas()
    cfg = compose_config(["lr=1", "kl_weight=0", "optimizer.betas=[0,1]", "threads=null"])
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float) and isinstance(cfg.kl_weight, float)
    assert list(cfg.optimizer.betas) == [0.0, 1.0] and cfg.threads is None


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, message",
    [
        (["latent_dimm=3"], "latent_dimm=3: no such setting; did you mean latent_dim?"),
        (["latent_dim=abc"], "latent_dim=abc: must be an integer"),
        (
            ["task=bogus"],
            "task=bogus: unknown choice; choose one of evaluate, interpolate, reconstruct, sample, "
            "sample_quality, train",
        ),
        (["-m", "latent_dim=2,abc"], "latent_dim=abc: must be an integer"),  # before any job runs
    ],
)
def test_run_py_refuses_a_composition_error_in_one_line_on_stderr(tmp_path, args, message):
    result = run_py(
        *args, f"hydra.run.dir={tmp_path}/run", f"hydra.sweep.dir={tmp_path}/sweep", returncode=2, timeout=120
    )
    line = one_line(result)
    assert line in result.stderr and line.endswith(f"[pyro_vae][ERROR] - {message}"), line
    assert not (tmp_path / "run").exists()


def test_any_torch_optimizer_takes_an_options_place_by_its_target():
    cfg = compose_config(
        [
            "optimizer=adagrad",
            "optimizer._target_=torch.optim.SGD",
            "+optimizer.momentum=0.5",
            "+optimizer.nesterov=true",
        ]
    )
    validate(cfg)
    optimizer = make_optimizer(cfg.optimizer, cfg.lr, [torch.nn.Parameter(torch.zeros(3))], 1000)
    assert type(optimizer) is torch.optim.SGD
    assert optimizer.defaults["momentum"] == 0.5 and optimizer.defaults["nesterov"] is True


@pytest.mark.parametrize(
    "overrides, refusal",
    [
        (
            ["optimizer._target_=collections.OrderedDict"],
            "optimizer._target_=collections.OrderedDict: OrderedDict is not a torch.optim.optimizer.Optimizer; "
            "subclass it",
        ),
        (
            ["optimizer=adagrad", "optimizer._target_=torch.optim.SGD", "+optimizer.momentun=0.5"],
            "optimizer._target_=torch.optim.SGD: got an unexpected keyword argument 'momentun' (its settings, "
            "optimizer.*, are its arguments beside the parameters and lr)",
        ),
    ],
)
def test_an_optimizer_that_cannot_be_built_is_refused_in_one_line(overrides, refusal):
    with pytest.raises(ConfigError) as refused:
        validate(compose_config(overrides))
    assert str(refused.value) == refusal
