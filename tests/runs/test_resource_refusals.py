"""Refusals of what this machine cannot do well or at all, in one line before any work:
``trainer.precision=bf16-mixed`` on a CPU without native bfloat16 dot products
(``pyro_vae/runs/configuration/cpu_features.py``), and a run whose estimated memory exceeds what the machine has
(``pyro_vae/runs/configuration/memory_estimate.py``). Each reads the machine through one function or file, for which
these tests stand in: a /proc/cpuinfo of their own, and the memory figure."""

import re
import runpy
import sys
from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig

from pyro_vae.errors import ConfigError
from pyro_vae.runs.configuration import cpu_features, memory_estimate
from pyro_vae.runs.configuration.builders import build_model, dataset_reader
from pyro_vae.runs.configuration.memory_estimate import GIB, Memory, estimate
from pyro_vae.runs.configuration.settings import validate

from ..helpers import ROOT, compose_config, run_py_refused, snapshot, train_tiny_run

# --- trainer.precision=bf16-mixed on the CPU

# /proc/cpuinfo as x86 and Arm kernels write it (abridged): the feature list is "flags" on x86, "Features" on Arm.
X86 = (
    "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: {model}\nflags\t\t: {flags}\n\n"
    "processor\t: 1\nvendor_id\t: AuthenticAMD\nmodel name\t: {model}\nflags\t\t: {flags}\n\n"
)
ARM = "processor\t: 0\nBogoMIPS\t: 2100.00\nFeatures\t: {flags}\nCPU implementer\t: 0x41\nCPU part\t: {part}\n\n"
ZEN3 = X86.format(model="AMD EPYC 7B13", flags="fpu sse sse2 avx f16c fma avx2 bmi2 vaes vpclmulqdq")
ZEN4 = X86.format(model="AMD EPYC 9B14", flags="fpu avx avx2 avx512f avx512bw avx512_bf16 avx512_vnni")
SAPPHIRE_RAPIDS = X86.format(
    model="Intel(R) Xeon(R) Platinum 8481C", flags="avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8"
)
AMX_ONLY = X86.format(model="a stand-in", flags="avx2 amx_bf16 amx_tile")
GRAVITON2 = ARM.format(part="0xd0c", flags="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics asimddp ssbs")
GRAVITON3 = ARM.format(part="0xd40", flags="fp asimd aes sha512 sve asimdfhm svei8mm svebf16 i8mm bf16 rng")
POWER9 = "processor\t: 0\ncpu\t\t: POWER9, altivec supported\nclock\t\t: 2300.000000MHz\n\n"  # no flags to read

NO_BF16_X86 = (
    "trainer.precision=bf16-mixed: AMD EPYC 7B13 has no native bfloat16 dot products (its /proc/cpuinfo flags lack "
    "avx512_bf16 and amx_bf16), so bfloat16 is emulated, measured 5x to 18x slower than float32; use "
    "trainer.precision=32-true"
)
NO_BF16_ARM = (
    "trainer.precision=bf16-mixed: this CPU has no native bfloat16 dot products (its /proc/cpuinfo Features lack "
    "bf16), so bfloat16 is emulated, measured 5x to 18x slower than float32; use trainer.precision=32-true"
)


def stand_in_cpuinfo(folder: Path, monkeypatch, text: str) -> None:
    cpuinfo = folder / "cpuinfo"
    cpuinfo.write_text(text)
    monkeypatch.setattr(cpu_features, "CPUINFO", str(cpuinfo))


@pytest.mark.parametrize(
    "text, refusal",
    [
        (ZEN3, NO_BF16_X86),
        (ZEN4, None),
        (SAPPHIRE_RAPIDS, None),
        (AMX_ONLY, None),
        (GRAVITON2, NO_BF16_ARM),
        (GRAVITON3, None),
        (POWER9, None),  # neither flags nor Features: not read, not refused
    ],
    ids=["zen3-avx2", "zen4-avx512_bf16", "sapphire-rapids", "amx_bf16", "graviton2", "graviton3", "power9"],
)
def test_bf16_is_refused_by_the_cpuinfo_flags_that_lack_native_bfloat16(tmp_path, monkeypatch, text, refusal):
    stand_in_cpuinfo(tmp_path, monkeypatch, text)
    assert cpu_features.bf16_refusal() == refusal


def test_bf16_is_not_refused_where_cpuinfo_cannot_be_read(tmp_path, monkeypatch):
    monkeypatch.setattr(cpu_features, "CPUINFO", str(tmp_path / "absent"))  # not Linux
    assert cpu_features.cpu_flags() is None and cpu_features.bf16_refusal() is None


@pytest.mark.parametrize("text, refusal", [(ZEN3, NO_BF16_X86), (GRAVITON2, NO_BF16_ARM)], ids=["x86", "aarch64"])
def test_a_bf16_mixed_run_on_a_cpu_without_bfloat16_is_refused_before_any_work(tmp_path, monkeypatch, text, refusal):
    stand_in_cpuinfo(tmp_path, monkeypatch, text)
    with pytest.raises(ConfigError) as refused:
        train_tiny_run(tmp_path / "run", "trainer.precision=bf16-mixed", "device=cpu")
    assert str(refused.value) == refusal
    assert not (tmp_path / "run").exists()


def run_py_here(args, monkeypatch, capsys):
    """``python run.py ARGS`` in this process, so that the stand-ins hold: (exit status, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", [str(ROOT / "run.py"), *args])
    try:
        with pytest.raises(SystemExit) as exited:
            runpy.run_path(str(ROOT / "run.py"), run_name="__main__")
    finally:  # Hydra's global state must not leak into later tests
        HydraConfig.instance().cfg = None
        GlobalHydra.instance().clear()
    captured = capsys.readouterr()
    return exited.value.code, captured.out, captured.err


def test_run_py_refuses_bf16_mixed_on_a_cpu_without_bfloat16_in_one_line(tmp_path, monkeypatch, capsys):
    stand_in_cpuinfo(tmp_path, monkeypatch, ZEN3)
    run_dir = tmp_path / "out"
    args = ["trainer.precision=bf16-mixed", "device=cpu", "epochs=1", "dataset.train_size=500"]
    status, out, err = run_py_here([*args, f"hydra.run.dir={run_dir}"], monkeypatch, capsys)
    assert status == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert err.strip().endswith(f" - {NO_BF16_X86}"), err  # after the log record's time and level
    assert not run_dir.exists() or snapshot(run_dir) == {}  # Hydra may have made the run folder; nothing went in


# --- the memory a run needs


def pretend_memory(monkeypatch, gib: float) -> None:
    """The machine has ``gib`` GiB available, whatever it has."""
    memory = Memory(int(gib * GIB), "this machine has available (stand-in)")
    monkeypatch.setattr(memory_estimate, "available_memory", lambda device, one_process=True: memory)


def refusal(overrides) -> str:
    with pytest.raises(ConfigError) as refused:
        validate(compose_config(overrides))
    return str(refused.value)


LATENT_REFUSAL = (
    re.escape(
        "latent_dim=1000000: training needs about 78.6 GiB (771,067,280 parameters with their gradients and optimizer "
        "state: 11.5 GiB; a step's activations: 5.7 GiB; evaluation: 67.1 GiB), more than the 16.0 GiB this machine "
        "has available (stand-in); lower latent_dim (up to "
    )
    + r"(\d+) fits the estimate\)$"
)


def test_latent_dim_1000000_is_refused_in_one_line_with_the_estimate_and_the_fix(monkeypatch):
    pretend_memory(monkeypatch, 16)
    line = refusal(["latent_dim=1000000"])
    fitting = re.match(LATENT_REFUSAL, line)
    assert fitting, line
    largest = int(fitting.group(1))  # the largest latent_dim that the estimate fits in 16 GiB
    assert estimate(compose_config([f"latent_dim={largest}"])).total <= 16 * GIB
    assert estimate(compose_config([f"latent_dim={largest + 1}"])).total > 16 * GIB


def test_run_py_refuses_latent_dim_1000000_with_exit_status_2_and_writes_nothing(tmp_path, monkeypatch, capsys):
    pretend_memory(monkeypatch, 16)
    run_dir = tmp_path / "out"
    status, out, err = run_py_here(["latent_dim=1000000", f"hydra.run.dir={run_dir}"], monkeypatch, capsys)
    assert status == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert re.search(f" - {LATENT_REFUSAL}", err.strip()), err  # after the log record's time and level
    assert snapshot(tmp_path) == {}  # Hydra may have made the run folder; nothing went in


@pytest.mark.slow  # a process of its own, on the machine's own memory
def test_python_run_py_latent_dim_1000000_is_refused_on_this_machine(tmp_path):
    needed = estimate(compose_config(["latent_dim=1000000"])).total
    memory = memory_estimate.available_memory("cpu")
    if memory is None or memory.bytes >= needed:
        pytest.skip(f"this machine's memory ({memory}) holds the estimated {needed / GIB:.1f} GiB")
    line = run_py_refused("latent_dim=1000000", "device=cpu", f"hydra.run.dir={tmp_path / 'run'}")
    assert " - latent_dim=1000000: training needs about 78.6 GiB" in line and "; lower latent_dim" in line
    assert snapshot(tmp_path) == {}


@pytest.mark.parametrize(
    "overrides, start, end",
    [
        (["net.widths=[10000000]"], "net.widths=[10000000]: training needs about 317.5 GiB", "; lower net.widths"),
        (["objective=iwae", "objective.num_particles=5000"], "objective.num_particles=5000: ", None),
        (["batch_size=100000"], "batch_size=100000: ", None),
        (["eval.chunk_size=1000000"], "eval.chunk_size=1000000: ", None),
        (["eval.iwae_k=1000000000"], "eval.iwae_k=1000000000: ", None),
        (["prior=vampprior", "prior.num_pseudo_inputs=100000"], "prior.num_pseudo_inputs=100000: ", None),
        (["guide=iaf", "guide.steps=10000"], "guide.steps=10000: ", None),
        (["model=hvae", "model.top_latent_dim=1000000"], "model.top_latent_dim=1000000: ", None),
        (["model=gan", "model.generator_width=4096"], "model.generator_width=4096: ", None),
        (
            ["dataset=celeba", "net=conv", "dataset.image_size=148", "dataset.train_size=10000"],
            "dataset.image_size=148: ",
            None,
        ),
        (
            ["trainer.devices=64", "threads=1", "device=cpu"],
            "trainer.devices=64: training needs about 2.5 GiB for its 64 processes",
            None,
        ),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else "",
)
def test_each_size_that_multiplies_is_bounded_by_the_estimate(monkeypatch, overrides, start, end):
    pretend_memory(monkeypatch, 1)
    line = refusal(overrides)
    assert line.startswith(start) and "more than the 1.0 GiB this machine has available (stand-in)" in line, line
    name = start.split("=")[0]
    assert (
        line.endswith(end) if end else re.search(rf"; lower {re.escape(name)} \(up to \d+ fits the estimate\)$", line)
    )
    assert "\n" not in line


EXPERIMENTS = sorted(
    str(path.relative_to(ROOT / "conf" / "experiment").with_suffix(""))
    for path in (ROOT / "conf" / "experiment").rglob("*.yaml")
)


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["dataset=cifar10", "net=conv", "likelihood=gaussian"],
        ["dataset=svhn", "net=conv", "likelihood=discretized_logistic"],
        *([f"experiment={name}"] for name in EXPERIMENTS),
    ],
    ids=" ".join,
)
def test_the_default_cifar10_conv_nets_and_every_experiment_fit_a_machine_of_1_gib(monkeypatch, overrides):
    pretend_memory(monkeypatch, 1)
    cfg = compose_config(overrides)
    validate(cfg)
    assert estimate(cfg).total < GIB / 2


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["guide=full"],
        ["guide=iaf"],
        ["prior=vampprior"],
        ["prior=flow"],
        ["model=hvae", "prior=flow"],
        ["model=cvae"],
        ["decoder.bayesian=true"],
        ["model=gan"],
        ["model=gan", "dataset=cifar10"],
        ["dataset=cifar10", "net=conv", "likelihood=gaussian", "likelihood.scale_mode=per_pixel"],
        ["dataset=cifar10", "net=conv", "likelihood=gaussian", "likelihood.scale_mode=predicted"],
        ["dataset=celeba", "net=conv", "dataset.image_size=40", "model=cvae"],
    ],
    ids=lambda overrides: " ".join(overrides) or "default",
)
def test_the_estimate_counts_every_parameter_of_the_model_it_would_build(overrides):
    cfg = compose_config(overrides)
    reader = dataset_reader(cfg)
    model = build_model(cfg, reader.image_shape, len(reader.class_names))
    assert estimate(cfg).parameters == sum(parameter.numel() for parameter in model.parameters())


def test_a_machine_whose_memory_cannot_be_read_refuses_nothing(monkeypatch):
    monkeypatch.setattr(memory_estimate, "available_memory", lambda device, one_process=True: None)
    validate(compose_config(["latent_dim=1000000"]))


MEMINFO = "MemTotal:       24683784 kB\nMemFree:        20251532 kB\nMemAvailable:   22128780 kB\n"


def test_the_cpu_memory_is_meminfos_available_lowered_to_a_cgroup_limit(tmp_path, monkeypatch):
    (tmp_path / "meminfo").write_text(MEMINFO)
    (tmp_path / "cgroup").write_text("0::/job\n")
    (tmp_path / "fs" / "job").mkdir(parents=True)
    monkeypatch.setattr(memory_estimate, "MEMINFO", str(tmp_path / "meminfo"))
    monkeypatch.setattr(memory_estimate, "SELF_CGROUP", str(tmp_path / "cgroup"))
    monkeypatch.setattr(memory_estimate, "CGROUP", str(tmp_path / "fs"))
    (tmp_path / "fs" / "job" / "memory.max").write_text("max\n")
    (tmp_path / "fs" / "job" / "memory.current").write_text(f"{GIB}\n")
    available = Memory(22128780 * 1024, "this machine has available (/proc/meminfo MemAvailable)")
    assert memory_estimate.available_memory("cpu") == available  # no limit
    (tmp_path / "fs" / "job" / "memory.max").write_text(f"{8 * GIB}\n")
    limited = Memory(7 * GIB, "this cgroup's memory limit leaves (memory.max)")
    assert memory_estimate.available_memory("cpu") == limited
    (tmp_path / "meminfo").write_text("MemTotal:       24683784 kB\n")  # a kernel before 3.14: no MemAvailable
    (tmp_path / "cgroup").write_text("4:memory:/job\n")  # cgroup v1, no limit file: the total
    assert memory_estimate.available_memory("cpu") == Memory(
        24683784 * 1024, "this machine has in all (/proc/meminfo MemTotal)"
    )
    monkeypatch.setattr(memory_estimate, "MEMINFO", str(tmp_path / "absent"))
    assert memory_estimate.available_memory("cpu") is None


def test_a_gpu_run_is_checked_against_the_memory_of_its_gpu(monkeypatch):
    """One process: the GPU's free memory. Several: each on a GPU of its own, against the GPU's total (its free
    memory would open a CUDA context on it in every process); the CPU's memory is not what they share."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: "NVIDIA A10G")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda index: (3 * GIB, 24 * GIB))
    line = refusal(["latent_dim=200000", "device=cuda"])
    assert line.startswith("latent_dim=200000: training needs about ")
    assert "more than the 3.0 GiB cuda:0 (NVIDIA A10G) has free; lower latent_dim (up to " in line
    total = type("Properties", (), {"total_memory": 8 * GIB})
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: total)
    monkeypatch.setenv("LOCAL_RANK", "1")
    line = refusal(["latent_dim=400000", "device=cuda", "trainer.devices=2"])
    assert "processes" not in line.split("(")[0] and "more than the 8.0 GiB cuda:1 (NVIDIA A10G) has;" in line
