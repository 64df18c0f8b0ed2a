"""The learning curve: its marks (a checkpoint's test bound, a published figure) are drawn and in view."""

import json

import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from pyro_vae.runs.configuration.builders import build_vae
from pyro_vae.runs.tasks import figures

from ..helpers import compose_config, read_metrics, run_python, train_tiny_run


@pytest.fixture
def drawn(monkeypatch) -> list:
    """Figures handed to ``figures.save``, kept instead of written."""
    kept = []
    monkeypatch.setattr(figures, "save", lambda fig, path: kept.append(fig))
    return kept


def history(epochs: int) -> list:
    return [{"epoch": e, "train_elbo": -90.0 - 10 / e, "val_elbo": -95.0 - 10 / e} for e in range(1, epochs + 1)]


def test_marks_are_a_point_at_their_epoch_and_a_line_across(drawn, tmp_path):
    metrics = {"likelihood_of": "log p(x)", "iwae_k": 5000, "test_log_likelihood": -86.8, "best_epoch": 60}
    marks = [figures.test_bound_mark(metrics), figures.Mark("published", -85.5)]
    figures.elbo_curve(history(80), tmp_path / "curve.png", "ELBO", marks)
    [fig] = drawn
    assert isinstance(fig, Figure)
    [ax] = fig.axes
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels[2:] == ["test log p(x) bound, K = 5000 (epoch 60)", "published"]
    point, line = ax.lines[2], ax.lines[3]
    assert list(point.get_xdata()) == [60] and list(point.get_ydata()) == [-86.8]
    assert set(line.get_ydata()) == {-85.5}
    low, high = ax.get_ylim()
    assert low < -95.0 and -85.5 < high  # the published line above the curves is not clipped away


def test_a_curve_without_marks_has_the_two_bounds_only(drawn, tmp_path):
    figures.elbo_curve(history(5), tmp_path / "curve.png", "IWAE bound (k = 5)")
    [ax] = drawn[0].axes
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels == ["train IWAE bound (k = 5) (minibatch estimate)", "validation ELBO"]


@pytest.mark.slow  # a run of its own, then the script in a fresh process
def test_the_readme_curve_script_draws_a_run_with_its_published_figure(tmp_path):
    run_dir = train_tiny_run(tmp_path / "run", "epochs=3")
    out = tmp_path / "curve.png"
    result = run_python(
        "docs/learning_curve.py", str(run_dir), "--published", "-85.54", "--source", "Burda et al.", "--out", str(out)
    )
    metrics = read_metrics(run_dir)
    assert out.stat().st_size > 0
    bound, epoch = metrics["test_log_likelihood"], metrics["best_epoch"]
    assert f"3 epochs; test bounds {bound:.2f} at epoch {epoch}" in result.stdout


def test_the_curve_script_refuses_a_missing_run_and_an_evaluation_without_its_checkpoint(tmp_path):
    run_dir, out = tmp_path / "run", tmp_path / "curve.png"
    run_dir.mkdir()
    missing = run_python("docs/learning_curve.py", str(run_dir), "--out", str(out), returncode=2)
    assert (
        missing.stderr.strip()
        == f"{run_dir / 'last.pt'}: no checkpoint here; is this the directory of a finished pyro-vae run?"
    )
    torch.save({"history": []}, run_dir / "last.pt")
    (run_dir / "metrics.json").write_text(json.dumps({"test_log_likelihood": -90.0}))  # as task=evaluate wrote before
    unnamed = run_python("docs/learning_curve.py", str(run_dir), "--out", str(out), returncode=2)
    assert unnamed.stderr.strip().startswith(f"{run_dir / 'metrics.json'}: does not say which checkpoint it scored")
    assert not out.exists()


# Each data set's shape with the net a run of it uses (MNIST-like, CIFAR-10 and SVHN, CelebA, a folder of odd
# sizes, grey and colour), and two models that between them draw every figure: a plane of z for the manifold, and
# a conditional VAE with a Bayesian decoder for the class samples and the uncertainty figure.
SHAPES = {
    "28x28x1 mlp": ((1, 28, 28), ["net.widths=[8]"]),
    "32x32x3 conv": ((3, 32, 32), ["likelihood=gaussian", "net.widths=[4,8]"]),
    "64x64x3 conv": ((3, 64, 64), ["likelihood=gaussian", "net.widths=[4,8,8]"]),
    "13x13x1 conv": ((1, 13, 13), ["net=conv", "net.widths=[4,8,8]"]),
    "20x20x3 mlp": ((3, 20, 20), ["likelihood=gaussian", "net=mlp", "net.widths=[8]"]),
    "20x24x1 mlp": ((1, 20, 24), ["net.widths=[8]"]),
}
MODELS = {
    "vae z2": ["latent_dim=2"],
    "cvae bayesian": ["model=cvae", "decoder.bayesian=true", "latent_dim=3"],
}
EVERY_FIGURE = {"encoding", "decoding", "reconstructions", "samples", "elbo_curve", "latent_space"}


@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_figure_is_drawn_at_every_size_and_channel_count(shape, model, tmp_path, monkeypatch):
    image_shape, overrides = SHAPES[shape]
    shown = []
    show = figures.show
    monkeypatch.setattr(figures, "show", lambda ax, images, *a: shown.append(images.shape[1:]) or show(ax, images, *a))
    vae = build_vae(compose_config([*overrides, *MODELS[model]]), image_shape, 3)
    images = torch.rand(12, *image_shape)
    labels = torch.arange(12) % 3
    written = figures.write_all(vae, (images[:4], labels[:4]), (images, labels), ["a", "b", "c"], history(2), tmp_path)
    extra = {"manifold"} if model == "vae z2" else {"class_samples", "uncertainty"}
    assert {path.stem for path in written} == EVERY_FIGURE | extra
    for path in written:
        with Image.open(path) as figure:
            assert figure.width > 50 and figure.height > 50, path
    # every panel of the data's size and channels (colour figures of colour data), or the uncertainty's grey spread
    assert set(shown) <= {image_shape, (1, *image_shape[1:])} and image_shape in shown
