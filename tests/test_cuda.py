"""The CUDA path: data, model and sampling on the GPU, and no host synchronisation inside a step.

Skipped where torch sees no CUDA device (as on the CI machine); run on a GPU machine with
``python -m pytest tests/test_cuda.py``.
"""

import pyro
import pytest
import torch

from pyro_vae.runs.configuration.builders import build_vae, load_dataset, pixel_transform
from pyro_vae.runs.loop.steps import make_step

from .helpers import compose_tiny, read_metrics, train_tiny_run

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_one_epoch_on_cuda_end_to_end(tmp_path):
    metrics = read_metrics(train_tiny_run(tmp_path, "device=cuda", "epochs=1"))
    assert metrics["device"].startswith("cuda") and metrics["epochs_completed"] == 1
    assert (tmp_path / "figures" / "samples.png").is_file()


def test_training_steps_never_wait_on_the_host():
    cfg = compose_tiny("device=cuda")
    data = load_dataset(cfg, torch.device("cuda"))
    assert data.train.images.is_cuda
    vae = build_vae(cfg, data.image_shape, data.num_classes).cuda()
    vae.num_data = len(data.train)
    sampler = pixel_transform(cfg).minibatches(data.train, cfg.batch_size)
    step = make_step(vae, cfg)
    batches = sampler.epoch(1, cfg.seed)
    with pyro.validation_enabled(False):
        step(*next(batches))  # the first step allocates optimizer state
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for x, y in batches:
                loss = step(x, y)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert loss.is_cuda and torch.isfinite(loss)
