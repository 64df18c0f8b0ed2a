"""Every refusal of a setting, in one table: the command line's overrides and the one line that refuses them.

A row is refused either by Hydra while it composes (unknown keys, wrong types, values outside a
closed set; ``pyro_vae.runs.configuration.refusals`` words them) or by ``settings.validate`` before any work
(ranges, and rules between settings). Either way the refusal is one line that names the setting.
``test_run_py_refuses_every_kind_in_one_line`` takes a row of each kind through ``python run.py``.
Refusals of files (archives, checkpoints, run directories, image files) stay beside the code that reads them;
the last tests here check that every kind of refusal, of a setting or of a file, leaves no folder behind.
"""

import re
import runpy
import sys
from pathlib import Path
from typing import List

import pytest
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig

from pyro_vae.data import cifar10
from pyro_vae.errors import ConfigError
from pyro_vae.runs.configuration.settings import validate

from ..helpers import ROOT, compose_config, md5, run_py_refused, snapshot, tiny_cifar10

TOP_LEVEL = (
    "batch_size, callbacks, dataset, decoder, device, early_stopping, epochs, eval, guide, kl_warmup_epochs, "
    "kl_weight, "
    "latent_dim, likelihood, logger, lr, model, net, objective, optimizer, prior, quality, resume, schedule, seed, "
    "svi_step, "
    "task, "
    "threads, "
    "trainer"
)


def exactly(line: str) -> str:
    return re.escape(line) + "$"


REFUSALS = [
    # --- Hydra, while it composes: unknown keys, with the closest setting or all of them
    (["latent_dimm=3"], exactly("latent_dimm=3: no such setting; did you mean latent_dim?")),
    (["eval.iwae=5"], exactly("eval.iwae=5: no such setting; did you mean eval.iwae_k?")),
    (
        ["optimizer.alpha=0.9"],
        exactly("optimizer.alpha=0.9: no such setting; the settings of optimizer=adam are betas, eps, fused, name"),
    ),
    (["task.n=3"], exactly("task.n=3: no such setting; the settings of task=train are name")),
    (["+foo=1"], exactly(f"foo=1: no such setting; the settings at the top level are {TOP_LEVEL}")),
    (["latent_dim.x=3"], exactly("latent_dim.x=3: latent_dim is a single value, with no settings under it")),
    # wrong types
    (["latent_dim=abc"], exactly("latent_dim=abc: must be an integer")),
    (["latent_dim=1.5"], exactly("latent_dim=1.5: must be an integer")),
    (["lr=abc"], exactly("lr=abc: must be a number")),
    (["threads=abc"], exactly("threads=abc: must be an integer, or null")),
    (["decoder.bayesian=maybe"], exactly("decoder.bayesian=maybe: must be true or false")),
    (["net.widths=abc"], exactly("net.widths=abc: must be a list of integers, e.g. [512,256]")),
    (["net.widths=[a]"], exactly("net.widths=[a]: must be a list of integers, e.g. [512,256]")),
    (
        ["decoder=3"],
        exactly(
            "decoder=3: not a value but a group of settings; "
            "set decoder.bayesian, decoder.weight_prior_scale, decoder.weight_init_scale"
        ),
    ),
    (["task=sample", "task.n=abc"], exactly("task.n=abc: must be an integer")),
    (
        ["task=reconstruct", "task.images=a.png"],
        exactly("task.images=a.png: must be a list of strings, e.g. [a,b], or null"),
    ),
    (["schedule=plateau", "schedule.patience=1.5"], exactly("schedule.patience=1.5: must be an integer")),
    (["likelihood=gaussian", "likelihood.fixed_scale=x"], exactly("likelihood.fixed_scale=x: must be a number")),
    (["schedule=plateau", "schedule.threshold=abc"], exactly("schedule.threshold=abc: must be a number")),
    (["decoder.weight_init_scale=abc"], exactly("decoder.weight_init_scale=abc: must be a number")),
    # closed sets: the Enum fields of the schema
    (["net.activation=swish"], exactly("net.activation=swish: choose one of relu, tanh, softplus, elu")),
    (["device=tpu"], exactly("device=tpu: choose one of auto, cpu, cuda")),
    (["dataset.binarize=otsu"], exactly("dataset.binarize=otsu: choose one of dynamic, static, none")),
    (["objective=iwae", "objective.gradient=x"], exactly("objective.gradient=x: choose one of standard, dreg")),
    (["svi_step=jax"], exactly("svi_step=jax: choose one of torch, pyro")),
    (
        ["likelihood=gaussian", "likelihood.scale_mode=calibrated"],
        exactly("likelihood.scale_mode=calibrated: choose one of learned, per_pixel, predicted, fixed, optimal"),
    ),
    # unknown group options: the group's files
    (["net=foo"], exactly("net=foo: unknown choice; choose one of conv, mlp")),
    (
        ["task=bogus"],
        exactly(
            "task=bogus: unknown choice; choose one of evaluate, interpolate, reconstruct, sample, "
            "sample_quality, train"
        ),
    ),
    (["optimizer=sgd"], exactly("optimizer=sgd: unknown choice; choose one of adagrad, adam, clipped_adam, rmsprop")),
    (["model=wgan"], exactly("model=wgan: unknown choice; choose one of cvae, gan, hvae, m2, vae")),
    (["guide=maf"], exactly("guide=maf: unknown choice; choose one of diagonal, full, iaf")),
    (
        ["objective=trace_pyro"],
        exactly("objective=trace_pyro: unknown choice; choose one of iwae, jit, meanfield, trace"),
    ),
    # what Hydra lets past the schema
    (["~latent_dim"], exactly("~latent_dim: latent_dim cannot be removed; every run reads it")),
    (["latent_dim=???"], exactly("latent_dim=???: needs a value")),
    # --- settings.validate, before any work: ranges
    (["latent_dim=0"], "latent_dim=0: must be a positive integer"),
    (["latent_dim=-3"], exactly("latent_dim=-3: must be a positive integer")),
    (["epochs=-1"], "epochs=-1: must be a positive integer"),
    (["eval.iwae_k=0"], "eval.iwae_k=0: must be a positive integer"),
    (["eval.weight_draws=0"], "eval.weight_draws=0: must be a positive integer"),
    (["objective.num_particles=0"], "objective.num_particles=0: must be a positive integer"),
    (["net.widths=[64,0]"], r"net.widths=\[64, 0\]: must be a list of positive integers"),
    (["net.min_encoder_scale=0"], r"net.min_encoder_scale=0(\.0)?: must be > 0"),  # a float setting: 0 arrives as 0.0
    (["seed=1.5"], "seed=1.5: must be an integer"),
    (["seed=-1"], exactly("seed=-1: must be an integer from 0 to 4294967295 (2**32 - 1)")),  # numpy's seeds
    (["seed=4294967296"], exactly("seed=4294967296: must be an integer from 0 to 4294967295 (2**32 - 1)")),
    (["threads=0"], "threads=0: must be a positive integer"),
    (["lr=-0.1"], "lr=-0.1: must be a positive finite number"),
    (["kl_weight=-1"], r"kl_weight=-1(\.0)?: must be a number >= 0"),
    (["kl_weight=inf"], r"kl_weight=inf: must be a number >= 0"),
    (
        ["likelihood=discretized_logistic", "likelihood.min_pixel_scale=0"],
        r"likelihood.min_pixel_scale=0(\.0)?: must be a number > 0",
    ),
    (["decoder.weight_init_scale=0"], r"decoder.weight_init_scale=0(\.0)?: must be a number >= 1e-09"),
    (["decoder.weight_init_scale=1e-12"], r"decoder.weight_init_scale=1e-12: must be a number >= 1e-09"),
    (["decoder.weight_prior_scale=0"], r"decoder.weight_prior_scale=0(\.0)?: must be a number >= 1e-09"),
    (["decoder.weight_prior_scale=-1"], r"decoder.weight_prior_scale=-1(\.0)?: must be a number >= 1e-09"),
    (["decoder.weight_prior_scale=inf"], r"decoder.weight_prior_scale=inf: must be a number"),
    (["schedule=plateau", "schedule.threshold=-0.1"], r"schedule.threshold=-0.1: must be a number of nats >= 0"),
    (["schedule=plateau", "schedule.patience=0"], r"schedule.patience=0: must be a positive integer"),
    (["schedule=cosine", "schedule.final_factor=1"], r"schedule.final_factor=1(\.0)?: must be a number in \[0, 1\)"),
    (["schedule=plateau", "schedule.factor=1"], r"schedule.factor=1(\.0)?: must be a number in \(0, 1\)"),
    (["schedule=plateau", "schedule.factor=0"], r"schedule.factor=0(\.0)?: must be a number in \(0, 1\)"),
    (["early_stopping.patience=0"], r"early_stopping.patience=0: must be a positive integer, or null"),
    (["early_stopping.threshold=-1"], r"early_stopping.threshold=-1(\.0)?: must be a number of nats >= 0"),
    (["logger=tensorboard", "logger.image_every=0"], "logger.image_every=0: must be a positive integer"),
    (["task=sample", "task.n=0"], exactly("task.n=0: must be a positive integer")),
    (["task=interpolate", "task.steps=1"], exactly("task.steps=1: must be an integer >= 2 (both ends count)")),
    (["task=interpolate", "task.start=-1"], "task.start=-1: must be the index of a test image, an integer >= 0$"),
    (["schedule=burda", "schedule.stages=0"], exactly("schedule.stages=0: must be a positive integer")),
    # the optimizers' settings, which torch would refuse with a traceback, or take and train on to NaN or garbage
    (["optimizer.eps=-1e-8"], r"optimizer.eps=-1e-08: must be a number >= 1.17549e-38, e.g. 1e-8: Adam divides"),
    (["optimizer.eps=0"], r"optimizer.eps=0(\.0)?: must be a number >= 1.17549e-38"),
    (["optimizer.eps=1e-300"], r"optimizer.eps=1e-300: must be a number >= 1.17549e-38"),  # 0 added to float32
    (["optimizer.betas=[1.5,0.999]"], r"optimizer.betas=\[1.5, 0.999\]: must be two numbers in \[0, 1\), e.g."),
    (["optimizer.betas=[0.9]"], r"optimizer.betas=\[0.9\]: must be two numbers in \[0, 1\)"),
    (["optimizer.betas=[0.9,0.99,0.999]"], r"optimizer.betas=\[0.9, 0.99, 0.999\]: must be two numbers"),
    (["optimizer=clipped_adam", "optimizer.betas=[0.9,1]"], r"optimizer.betas=\[0.9, 1(\.0)?\]: must be two"),
    (["optimizer=clipped_adam", "optimizer.eps=-1"], r"optimizer.eps=-1(\.0)?: must be a number >= 1.17549e-38"),
    (
        ["optimizer=clipped_adam", "optimizer.clip_norm=-1"],
        r"optimizer.clip_norm=-1(\.0)?: must be a number > 0, e.g. 10: the largest gradient norm per image$",
    ),
    (["optimizer=clipped_adam", "optimizer.clip_norm=0"], r"optimizer.clip_norm=0(\.0)?: must be a number > 0"),
    (
        ["optimizer=rmsprop", "optimizer.alpha=-1"],
        r"optimizer.alpha=-1(\.0)?: must be a number in \[0, 1\), e.g. 0.99: the decay rate of RMSprop's average",
    ),
    (["optimizer=rmsprop", "optimizer.alpha=1"], r"optimizer.alpha=1(\.0)?: must be a number in \[0, 1\)"),
    # a task's figure larger than a figure shows (settings.MAX_GRID_SIDE images a side)
    (
        ["task=sample", "task.n=100000"],
        exactly(
            "task.n=100000: a samples figure shows at most 4096 draws, 64 a side; draw several figures, each with "
            "its own seed=..."
        ),
    ),
    (
        ["task=sample", "task.per_class=true", "task.n=65"],
        exactly(
            "task.n=65: task.per_class=true draws a row of task.n per class, and a figure shows at most 64 images a "
            "row; set task.n <= 64"
        ),
    ),
    (
        ["task=reconstruct", "task.n=65"],
        "task.n=65: the reconstructions figure shows task.n test images in a row, .*; set task.n <= 64$",
    ),
    (
        ["task=reconstruct", f"task.images=[{','.join(f'{i}.png' for i in range(65))}]"],
        "task.images: 65 files, but the reconstructions figure shows them in a row, .*; reconstruct them 64 at a time$",
    ),
    (
        ["task=interpolate", "task.steps=63"],
        "task.steps=63: the interpolation figure shows task.steps images and the two ends in a row, .*; set "
        "task.steps <= 62$",
    ),
    # rules between settings
    (
        ["decoder.bayesian=true", "objective=iwae", "objective.num_particles=1"],
        "decoder.bayesian=true with objective=iwae",
    ),
    (
        ["decoder.bayesian=true", "objective.num_particles=2"],
        r"decoder.bayesian=true draws one set of decoder weights per step; set objective.num_particles=1 \(now 2\)",
    ),
    (["kl_weight=0.5", "objective=iwae"], "kl_weight/kl_warmup_epochs reweight the KL term, which objective=iwae does"),
    (["kl_warmup_epochs=2", "objective=jit"], "kl_warmup_epochs changes the KL weight every step, which objective=jit"),
    (
        ["likelihood=gaussian", "likelihood.scale_mode=optimal", "objective=jit"],
        "likelihood.scale_mode=optimal updates its running sigma",
    ),
    (
        ["svi_step=pyro", "schedule=cosine"],
        "schedule=cosine drives one torch optimizer, and svi_step=pyro trains .*; "
        "use svi_step=torch or schedule=constant",
    ),
    (
        ["likelihood=discretized_logistic", "likelihood.scale_mode=optimal"],
        exactly(
            "likelihood.scale_mode=optimal: choose one of learned, per_pixel, predicted, fixed "
            "for likelihood=discretized_logistic"
        ),
    ),
    (
        ["prior=vampprior", "objective=meanfield"],
        exactly(
            "objective=meanfield needs the KL to the prior in closed form, which prior=vampprior has not; use "
            "objective=trace"
        ),
    ),
    (
        ["prior=vampprior", "model=cvae"],
        "prior=vampprior mixes the guide's q\\(z\\|u_k\\) at pseudo-inputs that have no",
    ),
    (
        ["prior=vampprior", "prior.num_pseudo_inputs=0"],
        exactly("prior.num_pseudo_inputs=0: must be a positive integer"),
    ),
    (
        ["guide=iaf", "objective=meanfield"],
        exactly(
            "objective=meanfield needs the KL to the prior in closed form, which guide=iaf has not; use objective=trace"
        ),
    ),
    (
        ["model=hvae", "objective=meanfield"],
        "objective=meanfield needs the KL to the prior in closed form, which model=hvae \\(q\\(z2\\|z1\\)",
    ),
    (["prior=vampprior", "guide=iaf"], "prior=vampprior scores every z under q\\(z\\|u_k\\) .*; use guide=diagonal"),
    (["model=hvae", "prior=vampprior"], "prior=vampprior is a mixture of q\\(z\\|u_k\\), .*; use prior=standard or"),
    (
        ["guide=iaf", "objective=iwae", "objective.gradient=dreg"],
        "objective.gradient=dreg holds guide=iaf's parameters fixed, .*; use objective.gradient=standard with",
    ),
    (["model=hvae", "guide=iaf"], "guide=iaf with model=hvae: .*; use guide=diagonal or guide=full with model=hvae$"),
    (["model=hvae", "decoder.bayesian=true"], "decoder.bayesian=true is built for model=vae and model=cvae; set"),
    (["guide=iaf", "guide.steps=0"], exactly("guide.steps=0: must be a positive integer")),
    (
        ["guide=iaf", "guide.widths=[0]"],
        exactly("guide.widths=[0]: must be a list of positive integers, e.g. [512,256]"),
    ),
    (["prior=flow", "prior.steps=-1"], exactly("prior.steps=-1: must be a positive integer")),
    (["model=hvae", "model.top_latent_dim=0"], exactly("model.top_latent_dim=0: must be a positive integer")),
    (
        ["model=gan", "kl_weight=0.5"],
        exactly("kl_weight=0.5: model=gan has no KL term to weight; drop it with model=gan"),
    ),
    (["model=gan", "model.generator_width=0"], exactly("model.generator_width=0: must be a positive integer")),
    (["model=hvae", "model.top_widths=[4,-1]"], "model.top_widths=\\[4, -1\\]: must be a list of positive"),
    (["dataset.binarize=none"], "dataset.binarize=none: likelihood=bernoulli needs binary pixels"),
    (
        ["likelihood=gaussian", "dataset.binarize=dynamic"],
        exactly("dataset.binarize=dynamic: likelihood=gaussian models grey levels; set dataset.binarize=none"),
    ),
    (
        ["likelihood=discretized_logistic", "dataset.binarize=static"],
        "dataset.binarize=static: likelihood=discretized_logistic models grey levels",
    ),
    (
        ["net=conv", "net.widths=[2,2,2,2,2]"],
        exactly(
            "net.widths=[2, 2, 2, 2, 2]: 5 stride-2 convolutions shrink a 28x28 image to nothing; use at most 4 "
            "layers of dataset=mnist"
        ),
    ),
    # what a data set rules out (its DatasetReader), before any file is read
    (
        ["dataset=cifar10", "dataset.verify=false"],
        exactly(
            "dataset.verify=false: CIFAR-10's batches are Python pickles, which can run code, so pyro-vae unpickles "
            "only the official release once its MD5s match; set dataset.verify=true"
        ),
    ),
    (
        ["dataset=binarized_mnist", "model=cvae"],
        exactly("model=cvae conditions on the label, and dataset=binarized_mnist has no labels; use model=vae"),
    ),
    (
        ["dataset=binarized_mnist", "likelihood=gaussian"],
        exactly(
            "likelihood=gaussian: dataset=binarized_mnist holds binary pixels, which only likelihood=bernoulli "
            "models; use likelihood=bernoulli, or dataset=mnist for grey levels"
        ),
    ),
    (
        ["dataset=binarized_mnist", "likelihood=discretized_logistic", "net=mlp"],
        "likelihood=discretized_logistic: dataset=binarized_mnist holds binary pixels, which only",
    ),
    (
        ["dataset=binarized_mnist", "dataset.binarize=dynamic"],
        exactly(
            "dataset.binarize=dynamic: dataset=binarized_mnist is binarized already (one fixed draw); set "
            "dataset.binarize=static, which keeps its pixels as they are"
        ),
    ),
    (["dataset=binarized_mnist", "dataset.binarize=none"], "dataset.binarize=none: dataset=binarized_mnist is"),
]


def refusal(overrides) -> str:
    """The one line that refuses ``overrides``: Hydra's while composing, else ``validate``'s."""
    try:
        cfg = compose_config(overrides)
    except ConfigError as refused:
        return str(refused)
    with pytest.raises(ConfigError) as refused:
        validate(cfg)
    return str(refused.value)


@pytest.mark.parametrize("overrides, message", REFUSALS, ids=[" ".join(row[0]) for row in REFUSALS])
def test_a_bad_setting_is_refused_in_one_line_naming_it(overrides, message):
    line = refusal(overrides)
    assert re.match(message, line), line
    assert "\n" not in line


@pytest.mark.parametrize(
    "overrides",
    [
        ["task=sample", "task.n=4096"],
        ["task=sample", "task.per_class=true", "task.n=64"],
        ["task=reconstruct", "task.n=64"],
        ["task=reconstruct", f"task.images=[{','.join(f'{i}.png' for i in range(64))}]"],
        ["task=interpolate", "task.steps=62"],
        ["optimizer.eps=1.2e-38", "optimizer.betas=[0,0.999999]"],
        ["optimizer=rmsprop", "optimizer.alpha=0"],
        ["optimizer=clipped_adam", "optimizer.clip_norm=1e-6"],
        ["seed=0"],
        ["seed=4294967295"],
        ["dataset=binarized_mnist"],
        ["dataset=binarized_mnist", "net=conv", "net.widths=[8,16]"],
        ["dataset=fashion_mnist", "dataset.verify=false"],
        ["dataset=kmnist", "model=cvae"],
        ["dataset=omniglot", "model=cvae", "net=conv", "net.widths=[8,16]"],
        ["dataset=svhn", "dataset.verify=false"],  # a .mat file is parsed by scipy, never unpickled
        ["dataset=celeba", "likelihood=gaussian", "dataset.verify=false"],
        ["dataset=celeba", "dataset.image_size=148", "dataset.train_size=10000"],  # 3.1 GiB of the 4 GiB
    ],
    ids=" ".join,
)
def test_the_limits_themselves_are_accepted(overrides):
    validate(compose_config(overrides))


def test_a_config_built_in_python_with_an_unknown_option_is_refused_by_validate():
    cfg = compose_config()
    cfg.logger.name = "wandb"
    with pytest.raises(ConfigError, match=exactly("logger=wandb: choose one of none, csv, tensorboard, mlflow")):
        validate(cfg)


def tree(folder: Path) -> dict:
    """Every file (its bytes and modification time, as ``snapshot``) and every folder (None) under ``folder``."""
    return {**snapshot(folder), **{p.relative_to(folder): None for p in folder.rglob("*") if p.is_dir()}}


def earlier_outputs(tmp_path: Path) -> Path:
    """An outputs folder as earlier commands left it: a finished run's file and an empty folder."""
    outputs = tmp_path / "outputs"
    (outputs / "2024-01-01" / "09-00-00").mkdir(parents=True)
    (outputs / "2024-01-01" / "09-00-00" / "metrics.json").write_text("{}\n")
    (outputs / "empty").mkdir()
    return outputs


@pytest.mark.slow  # four processes
@pytest.mark.parametrize(
    "overrides",
    [["latent_dimm=3"], ["net.activation=swish"], ["latent_dim=-3"], ["kl_weight=0.5", "objective=iwae"]],
    ids=["composition", "closed set", "range", "rule"],
)
def test_run_py_refuses_every_kind_in_one_line(tmp_path, overrides):
    message = dict((" ".join(row[0]), row[1]) for row in REFUSALS)[" ".join(overrides)]
    outputs = earlier_outputs(tmp_path)
    before = tree(outputs)
    line = run_py_refused(*overrides, f"hydra.run.dir={outputs / '2024-06-30' / '12-00-00'}")
    assert re.search(message.rstrip("$"), line), line
    assert tree(outputs) == before  # no run folder, no day folder; what was there, as it was


# --- a refused command leaves nothing behind (docs/reliability.md): each kind of refusal, through run.py


def run_py_in_process(*args: str) -> int:
    """``python run.py ARGS`` in this process, through run.py's Hydra entry point; its exit status."""
    argv = sys.argv
    sys.argv = [str(ROOT / "run.py"), *args]
    try:
        runpy.run_path(str(ROOT / "run.py"), run_name="__main__")
        return 0
    except SystemExit as exit:
        return exit.code
    finally:  # a process ends with its command; here Hydra's global state must not leak into later tests
        sys.argv = argv
        HydraConfig.instance().cfg = None
        GlobalHydra.instance().clear()


def truncated_cifar10_archive(tmp_path: Path, monkeypatch) -> List[str]:
    """A CIFAR-10 archive cut short, whose (patched) checksum matches: the tar reader refuses it."""
    overrides = tiny_cifar10(tmp_path, monkeypatch)
    archive = tmp_path / "data" / "cifar-10-python.tar.gz"
    archive.write_bytes(archive.read_bytes()[:-200])
    monkeypatch.setattr(cifar10, "ARCHIVE_MD5", md5(archive.read_bytes()))
    return ["likelihood=gaussian", *overrides]


def empty_run_dir(tmp_path: Path, monkeypatch) -> List[str]:
    (tmp_path / "finished").mkdir()
    return ["task=evaluate", f"task.run_dir={tmp_path / 'finished'}"]


# Each kind of refusal: the overrides (a function of tmp_path and monkeypatch where it needs files) and a piece
# of its line.
REFUSED_COMMANDS = {
    "typo": (["latent_dimm=3"], "no such setting"),
    "wrong type": (["latent_dim=abc"], "must be an integer"),
    "range": (["latent_dim=-3"], "must be a positive integer"),
    "zero": (["latent_dim=0"], "must be a positive integer"),
    "seed": (["seed=-1"], "must be an integer from 0"),
    "rule": (["kl_weight=0.5", "objective=iwae"], "reweight the KL term"),
    "data set's rule": (["dataset=cifar10", "dataset.verify=false"], "set dataset.verify=true"),
    "missing dataset.root": (lambda tmp, _: [f"dataset.root={tmp / 'nowhere'}"], "file not found"),
    "truncated archive": (truncated_cifar10_archive, "not a readable tar.gz"),
    "empty task.run_dir": (empty_run_dir, "no checkpoint here"),
    "task without task.run_dir": (["task=evaluate"], "works on a finished run"),
}


def refused_overrides(kind: str, tmp_path: Path, monkeypatch) -> List[str]:
    overrides = REFUSED_COMMANDS[kind][0]
    return overrides(tmp_path, monkeypatch) if callable(overrides) else overrides


@pytest.mark.parametrize("kind", sorted(REFUSED_COMMANDS))
def test_a_refused_command_leaves_no_folder_behind(kind, tmp_path, monkeypatch, capsys):
    overrides = refused_overrides(kind, tmp_path, monkeypatch)
    outputs = earlier_outputs(tmp_path)
    before = tree(outputs)
    assert run_py_in_process(*overrides, f"hydra.run.dir={outputs / '2024-06-30' / '12-00-00'}") == 2
    assert REFUSED_COMMANDS[kind][1] in capsys.readouterr().err
    assert tree(outputs) == before  # neither the run folder nor its day folder, which the command made


@pytest.mark.parametrize("kind", ["range", "missing dataset.root", "empty task.run_dir"])
def test_a_refused_command_leaves_a_folder_that_was_there(kind, tmp_path, monkeypatch, capsys):
    overrides = refused_overrides(kind, tmp_path, monkeypatch)
    outputs = earlier_outputs(tmp_path)
    before = tree(outputs)
    for existing in (outputs / "empty", outputs / "2024-01-01" / "09-00-00"):
        assert run_py_in_process(*overrides, f"hydra.run.dir={existing}") == 2
        assert tree(outputs) == before  # the empty folder too: it was not this command's
    assert REFUSED_COMMANDS[kind][1] in capsys.readouterr().err


def test_a_run_folder_that_cannot_be_made_is_refused_without_the_folders_made_before_it(tmp_path, capsys):
    outputs = earlier_outputs(tmp_path)
    before = tree(outputs)
    run_dir = outputs / "2024-06-30" / ("x" * 300)  # the day's folder is made, the run's name is too long
    assert run_py_in_process(f"hydra.run.dir={run_dir}") == 2
    assert "cannot be created or written (File name too long)" in capsys.readouterr().err
    assert tree(outputs) == before
