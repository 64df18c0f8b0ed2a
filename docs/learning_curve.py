"""Draw the learning curve of a run, finished or still training, for the README: its history from
``last.pt``, the test bound that ``task=evaluate`` gave for its best checkpoint, and the published
figure it reproduces as a dashed line.

    python docs/learning_curve.py RUN_DIR --evaluation EVAL_DIR/metrics.json \
        --published -85.54 --source "Burda et al. (2016), IWAE k = 5" --out docs/figures/burda_iwae5_elbo_curve.png

``--evaluation`` defaults to the run's own ``metrics.json`` (a finished run); ``--published`` is a
log-likelihood, so negative (minus the published NLL).
"""

import argparse
import json
import sys
from pathlib import Path

from omegaconf import OmegaConf

from pyro_vae import checkpoints, figures
from pyro_vae.errors import DataError, PyroVAEError
from pyro_vae.objectives import training_bound_name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--evaluation", type=Path, help="metrics.json of task=evaluate on the run's best checkpoint")
    parser.add_argument("--published", type=float, help="the published test log p(x), in nats (negative)")
    parser.add_argument("--source", default="published", help="who published it, for the legend")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    last = checkpoints.read(args.run_dir / checkpoints.LAST)
    metrics_path = args.evaluation or args.run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    if "best_epoch" not in metrics:
        raise DataError(
            f"{metrics_path}: does not say which checkpoint it scored (no best_epoch); evaluate the run again "
            "with task=evaluate"
        )
    marks = [figures.test_bound_mark(metrics, metrics["best_epoch"])]
    if args.published is not None:
        marks.append(figures.Mark(f"{args.source}: test log p(x), K = 5000", args.published))
    train_bound = training_bound_name(OmegaConf.create(last["config"]))
    figures.elbo_curve(last["history"], args.out, train_bound, marks)
    bound, epoch = metrics["test_log_likelihood"], metrics["best_epoch"]
    print(f"{args.out}: {len(last['history'])} epochs, test bound {bound:.2f} of the checkpoint of epoch {epoch}")


if __name__ == "__main__":
    try:
        main()
    except (PyroVAEError, OSError) as error:  # a path or file to fix: one line, as run.py refuses
        print(error, file=sys.stderr)
        sys.exit(2)
