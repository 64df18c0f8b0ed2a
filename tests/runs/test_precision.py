"""trainer.precision=bf16-mixed: the training step's matrix products in bfloat16, everything that is
kept or reported in float32."""

import pytest
import torch

from pyro_vae.errors import ConfigError
from pyro_vae.runs import checkpoints, training_run

from ..helpers import read_history, read_metrics, train_tiny_run


def test_bf16_mixed_trains_in_bfloat16_and_keeps_and_reports_float32(tmp_path, monkeypatch, cpu_with_bf16):
    decoded = []  # (was a gradient being taken, the dtype of the decoder's output)
    build_vae = training_run.build_vae

    def build_watched_vae(*args, **kwargs):
        vae = build_vae(*args, **kwargs)
        vae.decoder.register_forward_hook(
            lambda module, inputs, out: decoded.append((torch.is_grad_enabled(), out.dtype))
        )
        return vae

    monkeypatch.setattr(training_run, "build_vae", build_watched_vae)
    run_dir = train_tiny_run(tmp_path / "run", "trainer.precision=bf16-mixed")

    assert {dtype for training, dtype in decoded if training} == {torch.bfloat16}  # the steps
    assert {dtype for training, dtype in decoded if not training} == {torch.float32}  # validation, test, figures
    record = checkpoints.read(run_dir / checkpoints.LAST)
    assert {tensor.dtype for tensor in record["state_dict"].values()} == {torch.float32}
    moments = [value for state in record["optimizer"]["state"].values() for value in state.values()]
    assert {m.dtype for m in moments if m.numel() > 1} == {torch.float32}
    metrics = read_metrics(run_dir)
    assert metrics["precision"] == "bf16-mixed" and metrics["test_elbo"] < metrics["test_log_likelihood"] < 0
    assert all(float(row["train_elbo"]) < 0 for row in read_history(run_dir))


def test_float32_is_the_default_and_takes_no_autocast(tmp_path, monkeypatch):
    autocast = []
    build_vae = training_run.build_vae

    def build_watched_vae(*args, **kwargs):
        vae = build_vae(*args, **kwargs)
        vae.decoder.register_forward_hook(lambda *_: autocast.append(torch.is_autocast_enabled("cpu")))
        return vae

    monkeypatch.setattr(training_run, "build_vae", build_watched_vae)
    run_dir = train_tiny_run(tmp_path / "run")
    assert autocast and not any(autocast)
    assert read_metrics(run_dir)["precision"] == "32-true"


def test_bf16_mixed_is_refused_on_a_gpu_without_bfloat16(tmp_path, monkeypatch):
    monkeypatch.setattr(training_run, "resolve_device", lambda name: torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Tesla V100")
    with pytest.raises(ConfigError, match="Tesla V100 has no bfloat16.*trainer.precision=32-true"):
        train_tiny_run(tmp_path / "run", "trainer.precision=bf16-mixed")
    assert not (tmp_path / "run").exists()
