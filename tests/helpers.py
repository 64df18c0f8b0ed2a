"""What the test modules share besides fixtures (those are in conftest.py): the tiny configuration,
``python run.py`` and other scripts run as a user runs them, and readers of what a run leaves."""

import copy
import csv
import functools
import gzip
import hashlib
import io
import json
import pickle
import struct
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from omegaconf import DictConfig

from pyro_vae.data import binarized_mnist, cifar10
from pyro_vae.data.idx import IdxFile, IdxRelease
from pyro_vae.runs.configuration import config
from pyro_vae.runs.configuration.config import CONF
from pyro_vae.runs.tasks.training_run import run_experiment

__all__ = [
    "CIFAR10_BATCHES",
    "CIFAR10_PER_BATCH",
    "CONF",
    "GAN_TINY",
    "ROOT",
    "TINY",
    "assert_same_loss_and_gradients",
    "cifar10_batch_pickle",
    "compose_config",
    "compose_tiny",
    "gan_tiny",
    "idx_bytes",
    "md5",
    "one_line",
    "parameter_gradients",
    "read_history",
    "read_metrics",
    "run_py",
    "run_py_refused",
    "run_python",
    "snapshot",
    "tiny",
    "tiny_cifar10",
    "train_tiny_run",
    "with_header_size",
    "write_cifar10_archive",
]

ROOT = Path(__file__).resolve().parents[1]

# A configuration small enough for CI: a few hundred MNIST images, one narrow hidden layer.
TINY = [
    "dataset.train_size=512",
    "dataset.val_size=256",
    "dataset.test_size=128",
    "net.widths=[64]",
    "latent_dim=4",
    "batch_size=64",
    "epochs=2",
    "eval.iwae_k=8",
    "eval.val_iwae_k=8",
    "device=cpu",
]


@functools.cache
def _composed(overrides: Tuple[str, ...]) -> DictConfig:
    return config.compose_config(overrides)


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """``pyro_vae.runs.configuration.config.compose_config(overrides)``, each call its own copy. Composition is
    deterministic and costs Hydra a fifth of a second, so each distinct list is composed once a
    session; a refused one raises every time."""
    return copy.deepcopy(_composed(tuple(overrides)))


def tiny(*overrides: str) -> List[str]:
    """TINY with ``overrides`` in place of its own value of each key they set (appended where
    TINY sets none), so that a command line names each key once: ``tiny("epochs=1")``."""
    keys = {override.split("=", 1)[0] for override in overrides}
    return [o for o in TINY if o.split("=", 1)[0] not in keys] + list(overrides)


def compose_tiny(*overrides: str) -> DictConfig:
    """The config of ``python run.py TINY OVERRIDES``."""
    return compose_config(tiny(*overrides))


def train_tiny_run(run_dir: Path, *overrides: str) -> Path:
    """A whole run of the tiny configuration with ``overrides``, in-process, into ``run_dir``."""
    run_experiment(compose_tiny(*overrides), run_dir)
    return run_dir


def read_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def read_history(run_dir: Path) -> List[dict]:
    """The rows of ``history.csv``, as strings."""
    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


def run_python(
    *args: str, cwd: Path = ROOT, returncode: Optional[int] = 0, env=None, timeout: int = 300
) -> subprocess.CompletedProcess:
    """``python ARGS`` in a fresh process from ``cwd``; asserts its exit status unless
    ``returncode`` is None."""
    result = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    if returncode is not None:
        assert result.returncode == returncode, result.stdout + result.stderr
    return result


def run_py(*args: str, returncode: Optional[int] = 0, env=None, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python run.py ARGS`` as a user runs it, from the repository root; asserts its exit
    status unless ``returncode`` is None."""
    return run_python(str(ROOT / "run.py"), *args, returncode=returncode, env=env, timeout=timeout)


def one_line(result: subprocess.CompletedProcess) -> str:
    """The single line a refused command prints (stdout and stderr together)."""
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def run_py_refused(*args: str, env=None, timeout: int = 300) -> str:
    """``python run.py ARGS``, which must refuse: exit status 2 and one line on stderr (stdout
    empty), no traceback; that line."""
    result = run_py(*args, returncode=2, env=env, timeout=timeout)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stdout == "", result.stdout
    return one_line(result)


def refused_leaving_nothing(tmp_path: Path, *overrides: str) -> str:
    """The one line of a tiny ``run.py OVERRIDES`` into ``tmp_path / "run"``, which must refuse it before
    anything is written there."""
    line = run_py_refused(*tiny(), *overrides, f"hydra.run.dir={tmp_path / 'run'}")
    assert not (tmp_path / "run").exists()
    return line


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` with its bytes and modification time: equal snapshots mean
    nothing there was written, rewritten or appended to."""
    return {p.relative_to(folder): (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def parameter_gradients(module: torch.nn.Module, loss: torch.Tensor) -> tuple:
    """d loss / d every parameter of ``module``, in ``module.parameters()`` order."""
    return torch.autograd.grad(loss, list(module.parameters()))


def assert_same_loss_and_gradients(vae, ours: torch.Tensor, hand: torch.Tensor) -> None:
    """Float32 sums over a few hundred terms in a different order: relative error 1e-5 at most,
    the gradients compared as whole tensors (relative to their norm) so cancellations do not count."""
    assert torch.allclose(ours, hand, rtol=1e-5, atol=1e-4), (ours.item(), hand.item())
    pairs = zip(vae.named_parameters(), parameter_gradients(vae, ours), parameter_gradients(vae, hand))
    for (name, _), g_ours, g_hand in pairs:
        assert (g_ours - g_hand).norm() <= 1e-5 * g_hand.norm() + 1e-6, name


# A small CIFAR-10 archive in the official format (python pickles in a tar.gz), its checksums patched in.
CIFAR10_PER_BATCH = 4
CIFAR10_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def md5(raw: bytes) -> str:
    return hashlib.md5(raw).hexdigest()


def cifar10_batch_pickle(data: np.ndarray, labels: list, name: str) -> bytes:
    batch = {
        b"batch_label": name.encode(),
        b"labels": labels,
        b"data": data,
        b"filenames": [f"{name}_{i}.png".encode() for i in range(len(labels))],
    }
    return pickle.dumps(batch, protocol=2)


def write_cifar10_archive(root, monkeypatch, replace=None, per_batch=CIFAR10_PER_BATCH):
    """Write a small cifar-10-python.tar.gz into ``root``, patch the checksums to match, return its content.

    ``replace`` maps a batch name to the bytes to store instead of the good pickle (their MD5 is patched in too).
    """
    rng = np.random.default_rng(0)
    members, content = {}, {}
    for name in CIFAR10_BATCHES:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=per_batch).tolist()
        content[name] = (data, labels)
        members[name] = (replace or {}).get(name, cifar10_batch_pickle(data, labels, name))
    members["batches.meta"] = pickle.dumps({b"label_names": [n.encode() for n in cifar10.CLASS_NAMES]}, protocol=2)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, raw in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            archive.addfile(info, io.BytesIO(raw))
    (root / "cifar-10-python.tar.gz").write_bytes(buffer.getvalue())
    monkeypatch.setattr(cifar10, "ARCHIVE_MD5", md5(buffer.getvalue()))
    monkeypatch.setattr(cifar10, "BATCH_MD5", {name: md5(members[name]) for name in CIFAR10_BATCHES})
    return content


def tiny_cifar10(folder: Path, monkeypatch) -> List[str]:
    """A small CIFAR-10 archive (24 images a batch) written into ``folder / "data"``, and the
    overrides of a short run on it: two epochs of a narrow convolutional VAE, on the CPU. A
    grey-level ``likelihood=`` override selects CIFAR-10."""
    (folder / "data").mkdir()
    write_cifar10_archive(folder / "data", monkeypatch, per_batch=24)
    return [
        f"dataset.root={folder / 'data'}",
        "dataset.val_size=24",
        "batch_size=32",
        "epochs=2",
        "latent_dim=3",
        "net.widths=[8,16]",
        "eval.iwae_k=4",
        "device=cpu",
    ]


def program(vae, num_data: int):
    """``vae``'s model and guide, its data plate standing for a data set of ``num_data`` images."""
    vae.num_data = num_data
    return vae.model, vae.guide


def inputs(vae, x, y):
    """What ``vae``'s model and guide take: the images, and the labels of a conditional VAE."""
    return (x, y) if vae.conditional else (x,)


def with_header_size(png: Path, width: int, height: int) -> Path:
    """``png`` with the width and height of its IHDR chunk (and the chunk's CRC) rewritten: a header that
    claims an image its data does not hold."""
    raw = bytearray(png.read_bytes())
    raw[16:24] = struct.pack(">II", width, height)  # after the signature (8), the chunk's length (4) and type (4)
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])))  # over the type and the 13 bytes of data
    png.write_bytes(raw)
    return png


def idx_bytes(array: torch.Tensor) -> bytes:
    """``array`` as an IDX file of unsigned bytes."""
    header = bytes([0, 0, 0x08, array.dim()]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.to(torch.uint8).numpy().tobytes()


def write_idx_release(root: Path, release: IdxRelease, monkeypatch=None, train: int = 96, test: int = 32) -> dict:
    """The four gzipped IDX files of ``release`` in ``root``, random images and labels; with ``monkeypatch``
    their checksums patched into ``release``, so that they read as the official ones. Returns the tensors by name."""
    generator = torch.Generator().manual_seed(0)
    content = {}
    for prefix, n in (("train", train), ("t10k", test)):
        content[f"{prefix}-images-idx3-ubyte"] = torch.randint(0, 256, (n, 28, 28), generator=generator)
        content[f"{prefix}-labels-idx1-ubyte"] = torch.randint(0, len(release.class_names), (n,), generator=generator)
    root.mkdir(parents=True, exist_ok=True)
    for name, array in content.items():
        raw = idx_bytes(array)
        gz = gzip.compress(raw, mtime=0)
        (root / f"{name}.gz").write_bytes(gz)
        if monkeypatch is not None:
            sha256 = hashlib.sha256(raw).hexdigest() if release.files[name].content_sha256 else None
            monkeypatch.setitem(release.files, name, IdxFile(md5(gz), sha256))
    return content


def write_amat_files(root: Path, monkeypatch=None, counts=(("train", 64), ("val", 32), ("test", 32))) -> dict:
    """binarized_mnist_{train,valid,test}.amat in ``root``, random 0/1 pixels, as the release writes them (one
    image a line, a space after each value); with ``monkeypatch`` their line counts patched in as the official
    ones. Returns the (N, 784) arrays by split."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    content = {split: rng.integers(0, 2, (n, 784), dtype=np.uint8) for split, n in counts}
    for split, pixels in content.items():
        lines = ("".join(f"{value} " for value in row) for row in pixels.tolist())
        (root / binarized_mnist.file_name(split)).write_text("\n".join(lines) + "\n")
    if monkeypatch is not None:
        monkeypatch.setattr(binarized_mnist, "IMAGES", {split: len(pixels) for split, pixels in content.items()})
    return content


def tiny_mnist_like(dataset: str, root: Path, *overrides: str) -> List[str]:
    """The overrides of a short run of ``dataset`` on the small files in ``root`` (written by
    :func:`write_idx_release` or :func:`write_amat_files`): one epoch, 64 training images, K = 2."""
    own = [
        f"dataset={dataset}",
        f"dataset.root={root}",
        "dataset.train_size=64",
        "dataset.val_size=32",
        "dataset.test_size=32",
        "batch_size=32",
        "epochs=1",
        "eval.iwae_k=2",
        "eval.val_iwae_k=2",
        "threads=1",
    ]
    keys = {override.split("=", 1)[0] for override in overrides}
    return tiny(*[o for o in own if o.split("=", 1)[0] not in keys], *overrides)


# A tiny DCGAN on a few hundred MNIST images: four channels a layer, two epochs of four steps.
GAN_TINY = [
    "model=gan",
    "dataset.train_size=256",
    "dataset.val_size=64",
    "dataset.test_size=64",
    "model.generator_width=4",
    "model.discriminator_width=4",
    "latent_dim=4",
    "batch_size=64",
    "epochs=2",
    "device=cpu",
    "threads=1",
]


def gan_tiny(*overrides: str) -> list:
    keys = {override.split("=", 1)[0] for override in overrides}
    return [o for o in GAN_TINY if o.split("=", 1)[0] not in keys] + list(overrides)
