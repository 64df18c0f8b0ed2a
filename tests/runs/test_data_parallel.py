"""Data-parallel training on the CPU: two processes (gloo) started by :mod:`pyro_vae.runs.loop.spawn`, each
fitting a LightningModule in the Trainer of :func:`pyro_vae.runs.loop.trainer.make_trainer` (DDP), whose
step is built as ``VAETraining`` builds it: ``TorchOptimizerStep`` on the Trainer's optimizer, with
``manual_backward``.

The gradient each process applies is checked against the gradient of the whole global batch
computed in this process by the project's own training step (``make_step``: the step of a
one-process float32 run, svi_step=torch on objective=trace, without a Trainer), on the same draws of z:
both sides draw their noise from one table of standard normals, each process the rows of its part
of the batch. The reference shares the step's code, so it pins the splitting and the gradient
exchange, not the step itself (tests/modelling/test_svi.py checks that against pyro.infer.SVI on
Trace_ELBO).
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch.distributions import normal
from torch.nn.parallel import DistributedDataParallel

import pyro_vae
from pyro_vae.data.batches import MinibatchSampler
from pyro_vae.errors import ConfigError
from pyro_vae.runs.configuration.builders import build_vae, make_objective
from pyro_vae.runs.configuration.config import compose_config
from pyro_vae.runs.configuration.settings import validate
from pyro_vae.runs.directory import checkpoints
from pyro_vae.runs.loop.optimizers import make_optimizer
from pyro_vae.runs.loop.processes import Processes, follows_rank_zero
from pyro_vae.runs.loop.spawn import launch
from pyro_vae.runs.loop.steps import TorchOptimizerStep, make_step
from pyro_vae.runs.loop.trainer import make_trainer

from ..helpers import ROOT, read_history, read_metrics, run_py, run_py_refused, tiny

NUM_DATA, GLOBAL_BATCH, STEPS = 1000, 8, 3
SHAPE = (1, 6, 6)


def _cfg(processes: int = 1):
    return compose_config(
        ["latent_dim=3", "net.widths=[16]", f"batch_size={GLOBAL_BATCH}", "device=cpu", f"trainer.devices={processes}"]
    )


def _batches():
    """STEPS global batches of binary images and, for each, the standard normals of its z draws."""
    generator = torch.Generator().manual_seed(7)
    images = torch.bernoulli(torch.full((STEPS, GLOBAL_BATCH, *SHAPE), 0.4), generator=generator)
    noise = torch.randn(STEPS, GLOBAL_BATCH, 3, generator=generator)
    return images, noise


def _drawing(noise_rows):
    """Normal.rsample's standard normals taken from ``noise_rows`` (one tensor a step), in order."""
    queue = list(noise_rows)
    return lambda shape, dtype, device: queue.pop(0).reshape(shape).to(dtype=dtype, device=device)


def _fresh_vae(cfg):
    torch.manual_seed(0)
    vae = build_vae(cfg, SHAPE, 10)
    vae.num_data = NUM_DATA
    return vae


def _weights(vae):
    return {name: p.detach().clone() for name, p in vae.named_parameters()}


class _Batches:
    """The batches in order, as one iterable (a list would be taken for one loader per batch)."""

    def __init__(self, batches: torch.Tensor) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        return iter(self.batches)


class _StepTraining(pl.LightningModule):
    """The step of ``VAETraining`` in Lightning's loop: manual optimization, ``TorchOptimizerStep`` on the
    Trainer's own optimizer with ``manual_backward``; ``batches``: this process's rows of each global batch.
    Keeps the gradient the first step applied."""

    def __init__(self, vae, cfg, batches: torch.Tensor) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.vae, self.cfg, self.batches = vae, cfg, batches
        self.objective = make_objective(cfg.objective)
        self.step = None
        self.first_gradients = None
        self.wrapped_by_ddp, self.steps_taken = False, 0

    def train_dataloader(self) -> _Batches:
        return _Batches(self.batches)

    def configure_optimizers(self):
        return make_optimizer(self.cfg.optimizer, self.cfg.lr, self.vae.parameters(), self.vae.num_data)

    def on_fit_start(self) -> None:
        optimizer = self.optimizers(use_pl_optimizer=False)
        self.step = TorchOptimizerStep(self.vae, self.objective, optimizer, self.manual_backward)
        self.wrapped_by_ddp = isinstance(self.trainer.strategy.model, DistributedDataParallel)

    def training_step(self, x: torch.Tensor, index: int) -> torch.Tensor:
        loss = self.step(x, None)
        self.steps_taken += 1
        if index == 0:  # the next step's zero_grad drops it
            self.first_gradients = {name: p.grad.clone() for name, p in self.vae.named_parameters()}
        return loss


def _train(processes: Processes, images: torch.Tensor, noise: torch.Tensor, workdir: Path):
    """STEPS steps by the project's training step in Lightning's Trainer (DDP over the processes) on this
    process's part of each global batch; the gradient applied at the first step and the weights after
    the last, of every process."""
    # Given no ModelCheckpoint, the Trainer adds one of its own, which would write under the working directory
    # (it saves nothing here, as a raw optimizer's steps leave global_step at 0, but no file lands in the repository).
    os.chdir(workdir)
    cfg = _cfg(processes.world_size)
    vae = _fresh_vae(cfg)
    local = GLOBAL_BATCH // processes.world_size
    rows = slice(processes.rank * local, (processes.rank + 1) * local)
    normal._standard_normal = _drawing(noise[:, rows])
    module = _StepTraining(vae, cfg, images[:, rows])
    trainer = make_trainer(cfg, torch.device("cpu"), callbacks=[], max_epochs=1)
    trainer.fit(module)
    assert module.wrapped_by_ddp and module.steps_taken == STEPS, (
        f"{module.steps_taken} steps, DistributedDataParallel: {module.wrapped_by_ddp}"
    )
    return processes.gather_objects((module.first_gradients, _weights(vae)))


def _one_process(images: torch.Tensor, noise: torch.Tensor):
    """The reference: STEPS steps of ``make_step`` on the whole of each batch, in this process, without a
    Trainer; the gradient applied at the first step and the weights after the last."""
    vae = _fresh_vae(_cfg())
    step = make_step(vae, _cfg())
    original = normal._standard_normal
    normal._standard_normal = _drawing(noise)
    try:
        gradients = None
        for index in range(STEPS):
            step(images[index], None)
            if index == 0:
                gradients = {name: p.grad.clone() for name, p in vae.named_parameters()}
    finally:
        normal._standard_normal = original
    return gradients, _weights(vae)


@pytest.fixture(scope="module")
def two_processes_and_one(tmp_path_factory):
    images, noise = _batches()
    trainer = _cfg(2).trainer
    by_rank = launch(trainer, torch.device("cpu"), _train, images, noise, tmp_path_factory.mktemp("trainer"))
    return by_rank, _one_process(images, noise)


@pytest.mark.slow  # two spawned processes
def test_every_process_applies_the_gradient_of_the_whole_global_batch(two_processes_and_one):
    by_rank, (single_gradients, _) = two_processes_and_one
    for gradients, _ in by_rank:
        for name, expected in single_gradients.items():
            # float32 sums in another order: equal to 1e-6 of the tensor's largest entry
            torch.testing.assert_close(gradients[name], expected, rtol=1e-5, atol=1e-6 * expected.abs().max(), msg=name)


@pytest.mark.slow  # two spawned processes
def test_after_a_few_steps_the_weights_agree_with_one_process(two_processes_and_one):
    by_rank, (_, single_weights) = two_processes_and_one
    for _, weights in by_rank:
        for name, expected in single_weights.items():
            torch.testing.assert_close(weights[name], expected, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.slow  # two spawned processes
def test_the_reference_gradient_is_not_one_process_half_of_the_batch(two_processes_and_one):
    """The check above can fail: a process's own half-batch gradient differs from the global one."""
    images, noise = _batches()
    half_gradients, _ = _one_process(images[:, : GLOBAL_BATCH // 2], noise[:, : GLOBAL_BATCH // 2])
    _, (single_gradients, _) = two_processes_and_one
    assert any(not torch.allclose(half_gradients[n], g, rtol=1e-3) for n, g in single_gradients.items())


def test_the_epoch_order_is_split_into_the_global_batches_of_one_process():
    """Two processes' parts of each step, side by side, are the global batch one process takes."""
    source = torch.arange(40.0).reshape(40, 1)
    sampler = MinibatchSampler(source, torch.zeros(40), 8, lambda x: x)
    single = [x for x, _ in sampler.epoch(3, seed=5)]
    halves = [[x for x, _ in sampler.epoch(3, seed=5, rank=rank, world_size=2)] for rank in (0, 1)]
    assert len(single) == 5
    for whole, first, second in zip(single, *halves):
        assert torch.equal(torch.cat([first, second]), whole)
    covered = torch.cat(single).flatten().sort().values
    assert torch.equal(covered, source.flatten())  # the epoch covers the data once
    assert not torch.equal(torch.cat(single), torch.cat([x for x, _ in sampler.epoch(4, seed=5)]))


# 128 steps an epoch, long enough for the killed-process test to kill one mid-run. The test bound at
# K = 256 (a quarter of a second a process) holds the test ELBO to a fraction of a nat.
TWO_PROCESSES = tiny(
    "trainer.devices=2", "dataset.train_size=2048", "batch_size=16", "epochs=3", "threads=1", "eval.iwae_k=256"
)


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("ddp") / "run"
    run_py(*TWO_PROCESSES, f"hydra.run.dir={run_dir}")
    return run_dir


@pytest.mark.slow  # two spawned processes
def test_two_processes_train_a_run_through_run_py(two_process_run):
    metrics = read_metrics(two_process_run)
    assert metrics["processes"] == 2 and metrics["epochs_completed"] == 3
    assert metrics["test_elbo"] < metrics["test_log_likelihood"] < 0
    assert len(read_history(two_process_run)) == 3
    log = (two_process_run / "run.log").read_text()
    assert "2 processes" in log and "epoch 3/3" in log and "wrote" in log


@pytest.mark.slow  # two spawned processes
def test_a_data_parallel_checkpoint_loads_in_one_process_without_a_wrapper_prefix(two_process_run, tmp_path):
    record = checkpoints.read(two_process_run / checkpoints.BEST)
    assert not any(key.startswith(("module.", "_forward_module.", "vae.")) for key in record["state_dict"])
    vae = pyro_vae.load(two_process_run)
    assert vae.latent_dim == 4
    run_py("task=evaluate", f"task.run_dir={two_process_run}", f"hydra.run.dir={tmp_path / 'evaluated'}")
    # The same test ELBO (about -185) by one process and by two, each with its own draws: the
    # difference's Monte Carlo standard deviation at K = 256 is sqrt(2) * 0.028 = 0.039 nat
    # (0.028 over 40 seeds); 0.2 is five of it (at K = 4 it was 0.31).
    assert read_metrics(tmp_path / "evaluated")["test_elbo"] == pytest.approx(
        read_metrics(two_process_run)["test_elbo"], abs=0.2
    )


def _spawned_workers(parent: int) -> list:
    """The processes that torch.multiprocessing spawned for ``parent`` (not its resource tracker)."""
    workers = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and "spawn_main" in cmdline:
            workers.append(int(entry.name))
    return sorted(workers)


def _start_until_an_epoch_is_saved(run_dir: Path, **popen) -> subprocess.Popen:
    """``python run.py TWO_PROCESSES`` into ``run_dir``, returned once its first epoch is saved (or it ended)."""
    command = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), *TWO_PROCESSES, f"hydra.run.dir={run_dir}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **popen,
    )
    deadline = time.monotonic() + 120
    while not (run_dir / checkpoints.LAST).exists() and command.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return command


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the spawned processes through /proc (Linux)")
@pytest.mark.slow  # two spawned processes
def test_a_process_killed_mid_run_fails_the_run_cleanly_and_resume_continues_it_exactly(two_process_run, tmp_path):
    run_dir = tmp_path / "killed"
    command = _start_until_an_epoch_is_saved(run_dir)
    workers = _spawned_workers(command.pid)
    assert command.poll() is None and len(workers) == 2, "the run ended before a process could be killed"
    os.kill(workers[-1], signal.SIGKILL)
    output, _ = command.communicate(timeout=120)
    assert command.returncode == 2, output
    [error] = [line for line in output.splitlines() if "[ERROR]" in line]
    assert re.search(r"a process of the run failed \(process \d terminated with signal SIGKILL\)", error), output
    assert "resume with:" in error and "Traceback" not in output, output
    saved = len(checkpoints.read(run_dir / checkpoints.LAST)["history"])
    assert 1 <= saved < 3 and not (run_dir / "metrics.json").exists()

    run_py(*TWO_PROCESSES, f"hydra.run.dir={run_dir}", "resume=true")
    assert [int(row["epoch"]) for row in read_history(run_dir)] == [1, 2, 3]
    # Every process's streams came back from last.pt: the weights are those of the run never stopped.
    expected, got = (checkpoints.read(d / checkpoints.LAST)["state_dict"] for d in (two_process_run, run_dir))
    for name, tensor in expected.items():
        assert torch.equal(tensor, got[name]), name


@pytest.mark.slow  # two spawned processes
def test_ctrl_c_stops_every_process_with_one_line_and_the_resume_command(tmp_path):
    run_dir = tmp_path / "interrupted"
    command = _start_until_an_epoch_is_saved(run_dir, start_new_session=True)  # its own group, as a terminal's job
    assert command.poll() is None, "the run ended before Ctrl-C"
    os.killpg(command.pid, signal.SIGINT)  # what Ctrl-C sends: every process of the group
    output, _ = command.communicate(timeout=120)
    assert command.returncode == 130, output
    [error] = [line for line in output.splitlines() if "[ERROR]" in line]
    assert "SIGINT: stopped after epoch" in error and "resume=true" in error and "Traceback" not in output, output


@pytest.mark.slow  # two spawned processes
def test_a_two_process_run_resumes_in_one_process(two_process_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(two_process_run, run_dir)
    args = [a for a in TWO_PROCESSES if not a.startswith(("trainer.devices", "epochs"))]
    run_py(*args, "epochs=4", f"hydra.run.dir={run_dir}", "resume=true")
    assert read_metrics(run_dir)["processes"] == 1
    assert [int(row["epoch"]) for row in read_history(run_dir)] == [1, 2, 3, 4]
    assert "resuming on 1 processes a run saved on 2" in (run_dir / "run.log").read_text()


@pytest.mark.parametrize(
    "overrides, named",
    [
        (["trainer.devices=3"], "batch_size=128"),
        (["trainer.devices=2", "svi_step=pyro"], "svi_step=pyro"),
        (["trainer.strategy=ddp", "trainer.devices=2"], "trainer.strategy=ddp"),
        (["trainer.strategy=ddp_spawn", "trainer.num_nodes=2"], "trainer.strategy=ddp_spawn"),
        (["trainer.devices=0"], "trainer.devices=0"),
        (["model=gan", "trainer.precision=bf16-mixed"], "trainer.precision=bf16-mixed"),
    ],
)
def test_trainer_settings_that_cannot_run_are_refused_in_one_line(overrides, named, monkeypatch):
    for variable in ("WORLD_SIZE", "RANK", "SLURM_NTASKS", "SLURM_PROCID"):
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(ConfigError, match=named.replace("[", r"\[")):
        validate(compose_config(overrides))


def test_a_refused_trainer_setting_writes_nothing(tmp_path):
    line = run_py_refused(*tiny("trainer.devices=3"), f"hydra.run.dir={tmp_path / 'run'}")
    assert "batch_size=64" in line and "trainer.devices" in line
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


@pytest.mark.parametrize(
    "environment, follows",
    [
        ({}, False),
        ({"RANK": "0", "WORLD_SIZE": "2"}, False),
        ({"RANK": "1", "WORLD_SIZE": "2"}, True),  # torchrun
        ({"SLURM_PROCID": "3", "SLURM_NTASKS": "8"}, True),  # srun
        ({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}, False),  # a one-task SLURM job starts no others
    ],
)
def test_only_the_processes_srun_or_torchrun_started_beside_rank_0_leave_it_the_directory(
    environment, follows, monkeypatch
):
    for variable in ("WORLD_SIZE", "RANK", "SLURM_NTASKS", "SLURM_PROCID"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    assert follows_rank_zero(compose_config(["trainer.strategy=ddp", "trainer.devices=2"]).trainer) is follows
    assert not follows_rank_zero(compose_config(["trainer.devices=2"]).trainer)  # ddp_spawn: this command is rank 0
