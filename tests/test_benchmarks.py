"""The benchmark scripts run and write their figures (tiny sizes; no timing is asserted here)."""

import json

import pytest

from .helpers import ROOT, run_python

SCRIPTS = {
    "dreg_variance": ["--ks", "3", "--repeats", "4", "--batch", "2"],
    "step_overhead": ["--steps", "10", "--rounds", "1", "--batch-sizes", "32", "--nets", "burda", "--particles", "2"],
    "epoch_throughput": ["--images", "512", "--rounds", "1"],
    "loglik": ["--k", "20", "--subset", "8", "--skip-full"],
    "data_shapes": ["--steps", "2", "--test-images", "2", "--k", "4", "--rounds", "1"],
    "folder_read": ["--images", "40"],
    # Without JAX (the [bench] extra) it says so and times the torch rows.
    "peer_step": ["--steps", "5", "--rounds", "1", "--batch-sizes", "16", "--no-compile"],
    "busy_machine": ["--steps", "3", "--rounds", "1", "--options", "threads=null (default)"],
    # One process of one thread, twice: the two-process path is tests/runs/test_data_parallel.py's.
    "data_parallel": ["--images", "256", "--epochs", "2", "--devices", "1"],
    # The feature classifier of 512 training images, cached in the test's own folder ({tmp}).
    "sample_quality": ["--n", "400", "--train-size", "512", "--kid-subset-size", "50", "--cache-dir", "{tmp}/cache"],
    "startup": ["--repeats", "1"],
    "semi_supervised_step": ["--steps", "3", "--rounds", "1", "--batch-size", "8"],
    # One cheap mutant on a copy of the tree; the run of its tests on the unchanged copy is left out.
    "mutants": ["--only", "bits_per_dim_log256_dropped", "--no-baseline"],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_benchmark_script_runs_and_writes_its_json(name, tmp_path):
    args = [arg.format(tmp=tmp_path) for arg in SCRIPTS[name]]
    run_python(f"{name}.py", *args, "--results", str(tmp_path), cwd=ROOT / "benchmarks", timeout=600)
    figures = json.loads((tmp_path / f"{name}.json").read_text())
    assert figures["machine"]["torch"] and figures["rows"]
    for row in figures["rows"]:
        timings = [value for key, value in row.items() if key.endswith(("ms", "seconds", "per_s", "peak_mib"))]
        assert timings and all(value > 0 for value in timings)
