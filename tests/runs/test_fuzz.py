"""Settings drawn at random, valid and invalid, alone and in pairs, through the real ``run.py``
on tiny data: every command either finishes with its metrics or stops with a clean refusal. Every
``dataset=`` option is drawn, on small files in its own format that the module writes once (not the
official bytes: read with ``dataset.verify=false``, refused in one line without it; ``{data}`` in a
value is their folder).

Every refusal is one line with exit status 2, never a traceback: a value out of range as much as
what Hydra refuses while it composes against pyro_vae/schema.py (an unknown key, a value of the
wrong type, an unknown group option). The CI budget is small;
``PYRO_VAE_FUZZ_EXAMPLES=200 pytest tests/runs/test_fuzz.py`` runs a larger one by hand.

In-process and fast: every number setting, of the top level and of every option, declares a range
(``schema.setting``), and the optimizers' settings drawn at random are refused in one line or train to
finite parameters.
"""

import dataclasses
import os
import typing

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyro_vae.data import fashion_mnist
from pyro_vae.errors import ConfigError
from pyro_vae.runs.configuration.schema import OPTIONS, Config, every_setting
from pyro_vae.runs.configuration.settings import validate
from pyro_vae.runs.loop.optimizers import NOT_ARGUMENTS, make_optimizer

from ..data.test_celeba import write_celeba
from ..data.test_image_folder import write_folder
from ..data.test_omniglot import write_chardata
from ..data.test_svhn import write_svhn
from ..helpers import compose_config, run_py, write_amat_files, write_idx_release

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
    "optimizer": [
        "rmsprop",
        "adagrad",
        "clipped_adam",
        "sgd",
        # an option's own settings, with it (a value of several overrides is split at its spaces)
        "rmsprop optimizer.alpha=0.5",
        "rmsprop optimizer.alpha=-1",
        "rmsprop optimizer.alpha=1",
        "clipped_adam optimizer.clip_norm=1",
        "clipped_adam optimizer.clip_norm=0",
        "clipped_adam optimizer.betas=[0.9,1]",
        "clipped_adam optimizer.eps=-1",
    ],
    "optimizer.betas": ["[0.5,0.9]", "[1.5,0.999]", "[0.9]", "abc"],
    "optimizer.eps": ["1e-6", "0", "-1e-8", "1e-300", "nan"],
    "optimizer.fused": ["false", "maybe"],
    "elbo": ["meanfield", "iwae", "jit", "trace_pyro", "bogus"],
    "objective.num_particles": ["2", "0", "abc"],
    "schedule": ["plateau", "burda", "cosine", "bogus"],
    "kl_weight": ["0", "0.5", "-1", "abc"],
    "kl_warmup_epochs": ["2", "-1", "1.5"],
    "model": ["cvae", "gan"],
    "dataset.binarize": ["static", "none", "bogus"],
    "dataset": [
        "fashion_mnist dataset.root={data}/idx dataset.verify=false",
        "kmnist dataset.root={data}/idx",  # not the published MD5s: refused
        "kmnist dataset.root={data}/idx dataset.verify=false",
        "binarized_mnist dataset.root={data}/amat dataset.verify=false",
        "omniglot dataset.root={data}/omniglot dataset.verify=false",
        "svhn dataset.root={data}/svhn dataset.verify=false",
        "celeba dataset.root={data} dataset.verify=false dataset.image_size=16",
        "celeba dataset.root={data} dataset.image_size=149",
        "folder dataset.root={data}/folder",
        "folder dataset.root={data}/folder dataset.channels=3 dataset.image_size=12",
        "folder dataset.root={data}/folder dataset.image_size=257",
        "folder dataset.root={data}/absent",
        "cifar10 dataset.root={data}/idx",  # no archive there
        "cifar10 dataset.verify=false",
        "bogus",
    ],
    "dataset.verify": ["false", "maybe"],
    "dataset.image_size": ["16"],  # a key of dataset=celeba and folder only
    "eval.iwae_k": ["0", "abc", "3"],
    "eval.chunk_size": ["1", "0"],
    "decoder.bayesian": ["true", "maybe"],
    "decoder.weight_init_scale": ["0", "1e-12", "0.1"],
    "early_stopping.patience": ["1", "0", "abc"],
    "early_stopping.threshold": ["0", "-1", "abc"],
    "threads": ["1", "0", "abc"],
    "device": ["cuda", "tpu"],
    "likelihood": ["gaussian"],
    "task": [
        "evaluate",
        "sample",
        "bogus",
        "sample task.n=100000",
        "sample task.n=16 task.per_class=true",
        "sample task.n=65 task.per_class=true",
        "reconstruct task.n=65",
        "reconstruct task.images=[a.png] task.labels=[x]",
        "interpolate task.steps=63",
        "interpolate task.start=-1",
        "interpolate task.end=abc",
    ],
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
EXAMPLES = int(os.environ.get("PYRO_VAE_FUZZ_EXAMPLES", "6"))  # PYRO_VAE_FUZZ_EXAMPLES=60 for a longer search


def setting(key: str):
    return st.sampled_from(VALUES[key]).map(lambda value: f"{key}={value}")


# Any one or two settings, or, as often, a data set alone or with one other setting: among the other keys, a
# dataset= value would be drawn in one command of twenty, and a budget of 12 would miss most of them.
any_settings = st.lists(st.sampled_from(sorted(VALUES)), min_size=1, max_size=2, unique=True).flatmap(
    lambda keys: st.tuples(*map(setting, keys))
)
with_data = st.one_of(
    st.tuples(setting("dataset")),
    st.tuples(setting("dataset"), st.sampled_from(sorted(set(VALUES) - {"dataset"})).flatmap(setting)),
)
overrides = st.one_of(any_settings, with_data)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Small files of every data set with files, enough for TINY_DATA's splits (128 + 64 train, 32 test)."""
    root = tmp_path_factory.mktemp("data")
    write_idx_release(root / "idx", fashion_mnist.RELEASE, train=192, test=32)  # Fashion-MNIST's and KMNIST's names
    write_amat_files(root / "amat", counts=(("train", 128), ("val", 64), ("test", 32)))
    write_chardata(root / "omniglot", train=192, test=32)
    with pytest.MonkeyPatch.context() as patch:  # the writers patch the checksums in; the runs do not see them
        write_svhn(root / "svhn", patch, counts=(("train", 192), ("test", 32)))
        write_celeba(root, patch, counts={"0": 128, "1": 64, "2": 32})
    write_folder(root / "folder", per_class=80)
    return root


@pytest.mark.slow
@settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(overrides)
def test_every_drawn_command_finishes_or_is_refused_cleanly(tmp_path_factory, data, drawn):
    out = tmp_path_factory.mktemp("fuzz")
    args = [override.format(data=data) for value in drawn for override in value.split(" ")]
    result = run_py(*TINY_DATA, *args, f"hydra.run.dir={out}", returncode=None, timeout=300)
    output = (result.stdout + result.stderr).strip()
    assert "Traceback" not in output, (drawn, output)
    assert result.returncode in (0, 2), (drawn, result.returncode, output)
    if result.returncode == 0:
        assert (out / "metrics.json").is_file() or "task=" in " ".join(drawn), (drawn, output)
    else:
        assert len(output.splitlines()) == 1 and "[pyro_vae][ERROR] - " in output, (drawn, output)
        assert result.stdout == "", (drawn, output)  # on stderr, as every refusal


# Number settings whose range only the data or the run gives: checked once those are loaded, before any training.
CHECKED_AGAINST_THE_DATA = {"dataset.train_size", "dataset.test_size", "task.labels"}


def holds_numbers(kind) -> bool:
    """Whether a schema field of type ``kind`` holds ints or floats (a bool or an Enum is a closed set)."""
    return kind in (int, float) or any(holds_numbers(arg) for arg in typing.get_args(kind))


def number_settings(schema: type, prefix: str = ""):
    """The dotted names of the number settings of ``schema``, through its nested dataclasses."""
    for setting in dataclasses.fields(schema):
        if dataclasses.is_dataclass(setting.type):
            yield from number_settings(setting.type, f"{prefix}{setting.name}.")
        elif holds_numbers(setting.type):
            yield prefix + setting.name


def every_number_setting():
    yield from number_settings(Config)
    for group, options in OPTIONS.items():
        for declared in options.values():
            yield from number_settings(declared.schema, f"{group}.")


def test_every_number_setting_of_every_option_has_a_range():
    ranged = {name for name, setting in every_setting() if setting.metadata["check"]}
    assert set(every_number_setting()) - ranged - CHECKED_AGAINST_THE_DATA == set()


# Numbers of any kind, and as many in the ranges optimizers take (a rate in [0, 1), a positive size) and at their ends.
NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(0, 1, exclude_max=True),
    st.floats(min_value=0, exclude_min=True, allow_infinity=False),
    st.sampled_from([0.0, 1.0, -1.0, 1e-300, 1e-8, 0.5, 0.999999]),
)
BETAS = st.one_of(st.lists(NUMBERS, min_size=2, max_size=2), st.lists(NUMBERS, max_size=3))


def optimizer_settings(name: str):
    """Random values of every setting of ``optimizer=NAME`` its class takes (a list where the schema has one)."""
    values = {
        setting.name: BETAS if typing.get_origin(setting.type) is list else NUMBERS
        for setting in dataclasses.fields(OPTIONS["optimizer"][name].schema)
        if setting.name not in NOT_ARGUMENTS
    }
    return st.tuples(st.just(name), st.fixed_dictionaries(values))


# Gradients of a parameter of four entries, step by step: zeros (sqrt(v) = 0), tiny ones, large ones.
GRADIENTS = [[0.0, 0.0, 1.0, -1.0], [0.0, 1e-30, 3.0, -1e-3], [0.0, 1e-30, 1e4, 2.0], [0.0, -1e-30, 0.0, 1.0]]


@pytest.fixture
def subnormal_floats():
    """Training flushes subnormal floats to zero for the whole process, and hypothesis refuses to draw
    floats while they are flushed: a training run earlier in the session would fail this test."""
    torch.set_flush_denormal(False)
    yield
    torch.set_flush_denormal(True)


@settings(
    max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.sampled_from(sorted(OPTIONS["optimizer"])).flatmap(optimizer_settings))
def test_an_optimizer_setting_is_refused_in_one_line_or_trains_to_finite_parameters(subnormal_floats, drawn):
    name, values = drawn
    cfg = compose_config([f"optimizer={name}"])
    for setting, value in values.items():
        cfg.optimizer[setting] = value
    try:
        validate(cfg)
    except ConfigError as refused:
        line = str(refused)
        assert line.startswith("optimizer.") and "\n" not in line, line
        return
    parameter = torch.nn.Parameter(torch.ones(4))
    optimizer = make_optimizer(cfg.optimizer, 1e-3, [parameter], num_data=8)
    for gradient in GRADIENTS:
        parameter.grad = torch.tensor(gradient)
        optimizer.step()
    assert torch.isfinite(parameter).all(), (values, parameter)
