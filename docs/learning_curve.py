"""Draw the learning curve of a run, finished or still training, for the README: its history from
``last.pt``, the test bound of each ``task=evaluate`` of its best checkpoint so far (a star at the
epoch of the checkpoint scored), and the published figure it reproduces as a dashed line.

    .venv/bin/python docs/learning_curve.py RUN_DIR --evaluation EVAL_DIR/metrics.json [--evaluation ...] \
        --published -85.54 --source "Burda et al. (2016), IWAE k = 5, K = 5000" \
        --out docs/figures/burda_iwae5_elbo_curve.png

``--evaluation`` defaults to the run's own ``metrics.json`` (a finished run); ``--published`` is a
log-likelihood, so negative (minus the published NLL).
"""

import argparse
import json
import sys
from pathlib import Path

from omegaconf import OmegaConf

from pyro_vae.errors import DataError, PyroVAEError
from pyro_vae.runs.configuration.builders import training_bound_name
from pyro_vae.runs.directory import checkpoints
from pyro_vae.runs.tasks.tasks import figures


def scored_bound(metrics_path: Path) -> figures.Mark:
    """The star of one evaluation, at the epoch of the checkpoint it scored."""
    metrics = json.loads(metrics_path.read_text())
    if "best_epoch" not in metrics:
        raise DataError(
            f"{metrics_path}: does not say which checkpoint it scored (no best_epoch); evaluate the run again "
            "with task=evaluate"
        )
    return figures.test_bound_mark(metrics)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument(
        "--evaluation", type=Path, action="append", help="metrics.json of task=evaluate on the run (repeatable)"
    )
    parser.add_argument("--published", type=float, help="the published test log p(x), in nats (negative)")
    parser.add_argument("--source", default="published", help="the published figure's legend entry")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    last = checkpoints.read(args.run_dir / checkpoints.LAST)
    marks = [scored_bound(path) for path in args.evaluation or [args.run_dir / "metrics.json"]]
    if args.published is not None:
        marks.append(figures.Mark(args.source, args.published))
    train_bound = training_bound_name(OmegaConf.create(last["config"]))
    figures.elbo_curve(last["history"], args.out, train_bound, marks)
    scored = ", ".join(f"{mark.value:.2f} at epoch {mark.epoch}" for mark in marks if mark.epoch is not None)
    print(f"{args.out}: {len(last['history'])} epochs; test bounds {scored}")


if __name__ == "__main__":
    try:
        main()
    except (PyroVAEError, OSError) as error:  # a path or file to fix: one line, as run.py refuses
        print(error, file=sys.stderr)
        sys.exit(2)
