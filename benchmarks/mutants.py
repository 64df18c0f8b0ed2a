"""Hand-picked mutants of the estimators, objectives, densities and metrics: does a test fail when the
arithmetic behind a reported figure goes wrong?

Each mutant is one exact snippet of the code replaced by a plausible mistake (a dropped term, a
wrong sign, a scale in the wrong place), the figure of the README or metrics.json it would corrupt,
and the few tests that should catch it. For each, the script copies the working tree's files (those
git tracks or does not ignore, edits included) into a temporary folder, makes the change there, and
runs the named tests on that copy, with the copy's ``pyro_vae`` on the path ahead of the installed
one (a probe checks which is imported). The working tree itself is never written; the copy is
removed however the script ends, Ctrl-C included. First the same tests run once on an unchanged
copy: a mutant only counts as killed by tests that pass without it.

A mutant is "killed" when its tests fail, and "SURVIVED" when they all pass: the figure it names is
then unguarded. Exits with status 1 if any survived (or a run could not tell). Prints a table and
the time taken, and writes benchmarks/results/mutants.json.

    .venv/bin/python benchmarks/mutants.py [--list] [--only NAME ...] [--no-baseline]
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from common import ROOT, add_results_argument, save_results, table

PYTHON = ROOT / ".venv" / "bin" / "python"
TIMEOUT = 900  # seconds for one mutant's tests


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str  # relative to the repository root
    original: str  # must occur exactly once in the file
    replacement: str
    tests: Tuple[str, ...]  # pytest node ids or files
    guards: str  # the figure it would corrupt


MUTANTS = (
    Mutant(
        "active_units_zero",
        "pyro_vae/modelling/estimators.py",
        "return int((means.var(0) > ACTIVE_UNIT_THRESHOLD).sum()) if len(means) > 1 else 0",
        "return 0",
        ("tests/modelling/test_evaluation.py",),
        'metrics.json test_active_units; README "12 / 20" active units',
    ),
    Mutant(
        "log_k_dropped",
        "pyro_vae/modelling/estimators.py",
        "(torch.logsumexp(log_w, 0) - math.log(num_samples)).sum()",
        "torch.logsumexp(log_w, 0).sum()",
        ("tests/modelling/test_evaluation.py", "tests/modelling/test_exact_references.py"),
        'metrics.json test_log_likelihood; README "-92.75 nats" (K = 1000)',
    ),
    Mutant(
        "elbo_max_of_weights",
        "pyro_vae/modelling/estimators.py",
        'totals["elbo"] += log_w.mean(0).sum().item()',
        'totals["elbo"] += log_w.max(0).values.sum().item()',
        ("tests/modelling/test_evaluation.py", "tests/modelling/test_exact_references.py"),
        'metrics.json test_elbo; README "-97.76 nats" test ELBO',
    ),
    Mutant(
        "kl_closed_form_0.9x",
        "pyro_vae/modelling/estimators.py",
        "    return kl_divergence(q, p)",
        "    return 0.9 * kl_divergence(q, p)",
        (
            "tests/modelling/test_guides.py::test_entropy_and_kl_to_the_standard_normal_equal_their_closed_forms",
            "tests/modelling/test_evaluation.py",
        ),
        "metrics.json test_kl; docs/likelihoods.md's KL column",
    ),
    Mutant(
        "bits_per_dim_log256_dropped",
        "pyro_vae/modelling/estimators.py",
        "nats = -log_likelihood + (num_dims * math.log(256) if dequantized else 0.0)",
        "nats = -log_likelihood",
        ("tests/modelling/test_evaluation.py::test_bits_per_dim_conversion",),
        'metrics.json test_bits_per_dim; docs/likelihoods.md "6.72" bits/dim (learned sigma, a density)',
    ),
    Mutant(
        "bernoulli_sign_of_xl",
        "pyro_vae/modelling/likelihoods.py",
        "return torch.mul(value, self.logits).sub_(",
        "return torch.mul(value, self.logits).neg_().sub_(",
        (
            "tests/modelling/test_likelihoods.py::test_bernoulli_log_probability_and_its_gradient_match_the_hand_density",
            "tests/modelling/test_exact_references.py::test_bernoulli_likelihood_matches_the_hand_written_log_density",
        ),
        'every binary figure: README "-97.76" ELBO, "-92.75" log p(x) bound',
    ),
    Mutant(
        "bernoulli_relu_for_softplus",
        "pyro_vae/modelling/likelihoods.py",
        "F.softplus(self.logits, threshold=threshold)",
        "F.relu(self.logits)",
        (
            "tests/modelling/test_likelihoods.py::test_bernoulli_log_probability_and_its_gradient_match_the_hand_density",
            "tests/modelling/test_exact_references.py::test_bernoulli_likelihood_matches_the_hand_written_log_density",
        ),
        'every binary figure: README "-97.76" ELBO, "-92.75" log p(x) bound',
    ),
    Mutant(
        "iwae_scale_before_logsumexp",
        "pyro_vae/modelling/objectives.py",
        "return log_w.reshape(self.num_particles, -1), scales.pop()",
        "scale = scales.pop()\n        return (scale * log_w).reshape(self.num_particles, -1), 1.0",
        ("tests/modelling/test_elbo.py::test_iwae_loss_and_gradients_equal_the_hand_written_bound",),
        'the IWAE-trained rows: README "86.23 nats" (burda_iwae k = 5), "85.01 nats" (hour_nll)',
    ),
    Mutant(
        "dreg_weight_not_squared",
        "pyro_vae/modelling/objectives.py",
        "z.register_hook(lambda grad, factor=factor: grad * factor)",
        "z.register_hook(lambda grad, factor=factor: grad)",
        ("tests/modelling/test_elbo.py::test_dreg_is_the_hand_written_doubly_reparameterized_surrogate",),
        "objective.gradient=dreg's gradient; benchmarks/results/dreg_variance.json",
    ),
    Mutant(
        "fd_trace_term_dropped",
        "pyro_vae/quality/metrics.py",
        "    return fd.compute().item()",
        "    return ((real.mean(0) - generated.mean(0)) ** 2).sum().item()",
        ("tests/quality/test_metrics.py",),
        'metrics.json fd; README "FD (LeNet)" column (171.27 for the default VAE)',
    ),
    Mutant(
        "metrics_iwae_k_from_val_iwae_k",
        "pyro_vae/runs/tasks/metrics.py",
        '"iwae_k": cfg.eval.iwae_k,',
        '"iwae_k": cfg.eval.val_iwae_k,',
        (
            "tests/runs/test_evaluation_phases.py::test_a_quick_run_estimates_every_bound_at_its_own_k_and_says_where_the_time_went",
        ),
        'metrics.json iwae_k; README "K = 1000" of the log p(x) bound',
    ),
    Mutant(
        "metrics_bits_per_dim_from_elbo",
        "pyro_vae/runs/tasks/metrics.py",
        'metrics["test_bits_per_dim"] = bits_per_dim(test.log_likelihood, num_dims, dequantized)',
        'metrics["test_bits_per_dim"] = bits_per_dim(test.elbo, num_dims, dequantized)',
        (
            "tests/modelling/test_likelihoods.py::test_bits_per_dim_of_an_exactly_known_log_likelihood",
            "tests/modelling/test_exact_references.py::test_bits_per_dim_equals_the_closed_form",
            # A run whose guide is not the posterior: its bits/dim come from log p(x), not the ELBO.
            "tests/modelling/test_likelihoods.py::test_both_grey_level_likelihoods_run_on_a_cifar10_archive",
        ),
        'metrics.json test_bits_per_dim; docs/likelihoods.md "1.51" bits/dim from log p(x)',
    ),
)


def working_tree_files() -> List[str]:
    """The files of the working tree as they are now: tracked ones and new ones git does not ignore."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted({name for name in listed.split("\0") if name and (ROOT / name).is_file()})


def copy_tree(files: Sequence[str], to: Path) -> None:
    for name in files:
        target = to / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)


def mutate(copy: Path, mutant: Mutant) -> None:
    """Makes the mutant's change in ``copy`` (never in the working tree)."""
    path = copy / mutant.file
    text = path.read_text()
    found = text.count(mutant.original)
    if found != 1:
        raise SystemExit(
            f"{mutant.name}: its snippet occurs {found} times in {mutant.file} (once expected); "
            f"update the mutant to the code: {mutant.original!r}"
        )
    path.write_text(text.replace(mutant.original, mutant.replacement))


def environment(copy: Path) -> Dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(copy), PYTHONDONTWRITEBYTECODE="1")
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def probe(copy: Path, python: Path) -> None:
    """Refuses to go on unless the tests in ``copy`` would import the copy's ``pyro_vae``."""
    result = subprocess.run(
        [str(python), "-c", "import pyro_vae; print(pyro_vae.__file__)"],
        cwd=copy,
        env=environment(copy),
        capture_output=True,
        text=True,
    )
    imported = Path(result.stdout.strip()).resolve()
    if result.returncode != 0 or not imported.is_relative_to(copy.resolve()):
        raise SystemExit(f"the copy's tests would import pyro_vae from {imported}, not {copy}: {result.stderr}")


def run_tests(copy: Path, python: Path, tests: Sequence[str], stop_at_first: bool) -> Tuple[int, List[str], str]:
    """pytest's exit status on ``tests`` in ``copy``, the tests that failed, and its output's tail."""
    # -n 0: in this process, not setup.cfg's workers, so that -x ends with exit status 1 at the first failure
    # (under pytest-xdist it is 2, "interrupted") and the copies' tests do not contend with each other's.
    command = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE", "-n", "0"]
    command += ["-x"] if stop_at_first else []
    result = subprocess.run(
        [*command, *tests], cwd=copy, env=environment(copy), capture_output=True, text=True, timeout=TIMEOUT
    )
    output = result.stdout + result.stderr
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", output, flags=re.M)
    return result.returncode, failed, "\n".join(output.strip().splitlines()[-15:])


def check(mutant: Mutant, files: Sequence[str], python: Path) -> Tuple[str, List[str]]:
    """The mutant's outcome ("killed", "SURVIVED" or "ERROR ...") and the tests that failed."""
    with tempfile.TemporaryDirectory(prefix="pyro-vae-mutant-") as folder:
        copy = Path(folder)
        copy_tree(files, copy)
        mutate(copy, mutant)
        probe(copy, python)
        status, failed, tail = run_tests(copy, python, mutant.tests, stop_at_first=True)
    if status == 1:  # pytest: some tests failed
        return "killed", failed
    if status == 0:
        return "SURVIVED", []
    print(f"{mutant.name}: pytest exited with {status}:\n{tail}", file=sys.stderr)
    return f"ERROR (pytest exit {status})", failed


def baseline(mutants: Sequence[Mutant], files: Sequence[str], python: Path) -> None:
    """Refuses to go on unless every test the mutants name passes on an unchanged copy."""
    tests = list(dict.fromkeys(test for mutant in mutants for test in mutant.tests))
    with tempfile.TemporaryDirectory(prefix="pyro-vae-mutant-") as folder:
        copy = Path(folder)
        copy_tree(files, copy)
        probe(copy, python)
        status, failed, tail = run_tests(copy, python, tests, stop_at_first=False)
    if status != 0:
        raise SystemExit(
            f"the unchanged tree fails its own tests (pytest exit {status}: {', '.join(failed) or 'see below'}); "
            f"a mutant could not be told apart:\n{tail}"
        )


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="list the mutants and their tests, run nothing")
    parser.add_argument("--only", action="append", metavar="NAME", help="run this mutant only (repeatable)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run of the tests on the unchanged tree")
    add_results_argument(parser)
    args = parser.parse_args(argv)
    names = [mutant.name for mutant in MUTANTS]
    unknown = sorted(set(args.only or ()) - set(names))
    if unknown:
        parser.error(f"--only {', '.join(unknown)}: choose among {', '.join(names)}")
    mutants = [mutant for mutant in MUTANTS if not args.only or mutant.name in args.only]
    if args.list:
        for mutant in mutants:
            print(f"{mutant.name}  ({mutant.file})\n  guards: {mutant.guards}\n  tests:  {' '.join(mutant.tests)}")
        return 0
    python = PYTHON if PYTHON.exists() else Path(sys.executable)
    files = working_tree_files()
    start = time.perf_counter()
    if not args.no_baseline:
        baseline(mutants, files, python)
        print(f"unchanged tree: its tests pass ({time.perf_counter() - start:.0f} s)", flush=True)
    rows = []
    for mutant in mutants:
        began = time.perf_counter()
        outcome, failed = check(mutant, files, python)
        row = {
            "mutant": mutant.name,
            "outcome": outcome,
            "killed_by": failed[0] if failed else "",
            "seconds": time.perf_counter() - began,
            "guards": mutant.guards,
        }
        rows.append(row)
        print(f"{mutant.name}: {outcome} {row['killed_by']} ({row['seconds']:.0f} s)", flush=True)
    total = time.perf_counter() - start
    print()
    print(table(rows, ["mutant", "outcome", "killed_by", "seconds"]))
    killed = sum(row["outcome"] == "killed" for row in rows)
    survived = [row["mutant"] for row in rows if row["outcome"] != "killed"]
    print(
        f"\n{killed} of {len(rows)} mutants killed"
        + (f"; not killed: {', '.join(survived)}" if survived else "")
        + f"; {total:.0f} s in all"
    )
    path = save_results(args.results, "mutants", {"rows": rows, "seconds": total})
    print(f"wrote {path}")
    return 1 if survived else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # the copies are removed on the way out; the working tree was never written
        print("interrupted: no mutant was left behind (each lived in a temporary copy)", file=sys.stderr)
        sys.exit(130)
