"""Multiruns through Hydra's launchers and sweepers, the sweep summary, and the experiment configs."""

import csv
import json
import os

import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir

from pyro_vae.runs.configuration.builders import make_objective
from pyro_vae.runs.configuration.settings import validate
from pyro_vae.runs.directory import checkpoints
from pyro_vae.runs.loop.optimizers import make_optimizer
from pyro_vae.runs.sweeps.sweep_summary import collect_jobs, running_status, write_summary

from ..helpers import CONF, compose_config, read_metrics, run_py, run_python, tiny

TINY_SWEEP = [o for o in tiny("epochs=1") if not o.startswith("latent_dim=")]  # the sweeps set latent_dim


def tiny_multirun(sweep_dir, *overrides, check=True):
    """``python run.py -m`` of the tiny configuration, one epoch, with ``overrides``, into ``sweep_dir``."""
    return run_py(
        "-m", *TINY_SWEEP, *overrides, f"hydra.sweep.dir={sweep_dir}", returncode=0 if check else None, timeout=600
    )


def summary_rows(sweep_dir):
    with (sweep_dir / "sweep_summary.csv").open() as f:
        return list(csv.DictReader(f))


def assert_rows_match_jobs(sweep_dir, key, values):
    rows = summary_rows(sweep_dir)
    assert [row[key] for row in rows] == [str(v) for v in values]
    for row in rows:
        metrics = read_metrics(sweep_dir / row["job"])
        assert row["status"] == "completed"
        assert float(row["test_log_likelihood"]) == pytest.approx(metrics["test_log_likelihood"])
    assert (sweep_dir / "sweep_summary.md").read_text().count("| completed |") == len(values)
    assert (sweep_dir / "sweep_summary.png").stat().st_size > 0


@pytest.mark.slow
def test_joblib_launcher_runs_jobs_in_parallel_sharing_the_cores(tmp_path):
    tiny_multirun(tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "latent_dim=2,3")
    assert_rows_match_jobs(tmp_path, "latent_dim", [2, 3])
    for job in ("0", "1"):
        assert "JoblibLauncher: 1 torch thread(s) for this job" in (tmp_path / job / "run.log").read_text()


@pytest.mark.slow
def test_a_killed_joblib_job_fails_alone_and_no_two_jobs_write_one_file(tmp_path):
    """Job 1's process is SIGKILLed after its first epoch; jobs 0 and 2 finish, the summary lists
    job 1 as killed, and every file is the sweep's own or inside exactly one job's directory."""
    result = tiny_multirun(
        tmp_path,
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "latent_dim=2,3,4",
        "epochs=3",
        "+hydra.callbacks.kill._target_=tests.job_killer.KillJobProcess",
        "+hydra.callbacks.kill.latent_dim=3",
        check=False,
    )
    assert result.returncode != 0  # Hydra reports the failed job once all have run
    rows = summary_rows(tmp_path)
    assert [(r["latent_dim"], r["status"]) for r in rows] == [("2", "completed"), ("3", "failed"), ("4", "completed")]
    assert rows[1]["error"].startswith("JobKilled: the job's process was killed by SIGKILL")
    assert len(checkpoints.read(tmp_path / "1" / checkpoints.LAST)["history"]) >= 1
    for job in ("0", "2"):
        assert read_metrics(tmp_path / job)["epochs_completed"] == 3
    sweep_files = {p.name for p in tmp_path.iterdir() if p.is_file()}
    assert sweep_files == {"multirun.yaml", "sweep_summary.csv", "sweep_summary.md", "sweep_summary.png"}
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["0", "1", "2"]


@pytest.mark.slow
def test_submitit_local_launcher(tmp_path):
    tiny_multirun(tmp_path, "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", "latent_dim=2,3")
    assert_rows_match_jobs(tmp_path, "latent_dim", [2, 3])


@pytest.mark.slow
@pytest.mark.parametrize(
    "launcher", [[], ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]], ids=["basic", "joblib"]
)
def test_failed_job_is_a_row_with_its_error_and_the_sweep_ends_in_one_line(launcher, tmp_path):
    """The sweep goes on past the failed job, and ends with exit status 2 and one line, no traceback."""
    result = tiny_multirun(tmp_path, *launcher, "latent_dim=2,0", check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .endswith(
            "[pyro_vae][ERROR] - 1 of 2 jobs failed (the first: latent_dim=0: must be a positive integer); each job's "
            f"status and error: {tmp_path / 'sweep_summary.md'}"
        )
    )
    assert "[pyro_vae][ERROR] - latent_dim=0: must be a positive integer" in (tmp_path / "1" / "run.log").read_text()
    rows = summary_rows(tmp_path)
    assert [(r["latent_dim"], r["status"]) for r in rows] == [("2", "completed"), ("0", "failed")]
    assert rows[1]["error"] == "ConfigError: latent_dim=0: must be a positive integer"
    assert rows[1]["test_elbo"] == "" and float(rows[0]["test_elbo"]) < 0


@pytest.mark.slow
def test_optuna_search_of_two_trials(tmp_path):
    tiny_multirun(tmp_path, "hparams_search=optuna", "hydra.sweeper.n_trials=2", "net.widths=[32]")
    rows = summary_rows(tmp_path)
    assert len(rows) == 2 and all(r["status"] == "completed" for r in rows)
    assert {r["latent_dim"] for r in rows} <= {"2", "5", "10", "20", "50"}
    assert all(1e-4 <= float(r["lr"]) <= 3e-3 for r in rows)
    best = yaml.safe_load((tmp_path / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(max(float(r["val_elbo_best"]) for r in rows))


def test_summary_of_two_swept_settings(tmp_path):
    """Job directories written by hand: the summary needs nothing but the sweep directory."""
    for job, (latent, lr, value) in enumerate(
        [(2, "1e-3", -100.0), (2, "1e-4", -110.0), (10, "1e-3", -90.0), (10, "1e-4", None)]
    ):
        (tmp_path / str(job) / ".hydra").mkdir(parents=True)
        (tmp_path / str(job) / ".hydra" / "overrides.yaml").write_text(
            yaml.safe_dump([f"latent_dim={latent}", f"lr={lr}", "epochs=5"])
        )
        if value is not None:
            (tmp_path / str(job) / "metrics.json").write_text(json.dumps({"test_log_likelihood": value}))
            (tmp_path / str(job) / "job_status.json").write_text(json.dumps({"status": "completed"}))
    jobs = write_summary(tmp_path, "test_log_likelihood")
    assert [job.status for job in jobs] == ["completed", "completed", "completed", "running"]
    rows = summary_rows(tmp_path)
    assert [(r["latent_dim"], r["lr"], r["test_log_likelihood"]) for r in rows] == [
        ("2", "1e-3", "-100.0"),
        ("2", "1e-4", "-110.0"),
        ("10", "1e-3", "-90.0"),
        ("10", "1e-4", ""),
    ]
    assert collect_jobs(tmp_path)[0].overrides == {"latent_dim": "2", "lr": "1e-3", "epochs": "5"}
    assert (tmp_path / "sweep_summary.png").is_file()


def test_a_running_job_whose_process_is_gone_is_listed_as_failed(tmp_path):
    """job_status.json says running, in a process of this machine: alive, it stays running; gone, failed."""
    finished = run_python("-c", "import os; print(os.getpid())")
    for job, pid in enumerate([os.getpid(), int(finished.stdout)]):
        (tmp_path / str(job) / ".hydra").mkdir(parents=True)
        (tmp_path / str(job) / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"latent_dim={job + 2}"]))
        (tmp_path / str(job) / "job_status.json").write_text(json.dumps({**running_status(), "pid": pid}))
    jobs = collect_jobs(tmp_path)
    assert [job.status for job in jobs] == ["running", "failed"]
    assert jobs[1].error == f"its process {finished.stdout.strip()} ended without finishing (killed)"


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF / "experiment" / "fast_nll_screen").glob("*.yaml")))
def test_fast_nll_screening_candidates_compose_with_the_cosine_over_their_own_epochs(name):
    cfg = compose_config([f"experiment=fast_nll_screen/{name}"])
    validate(cfg)
    assert cfg.schedule.name == "cosine" and cfg.schedule.epochs == cfg.epochs <= 100
    assert cfg.net.activation in ("tanh", "elu") and cfg.latent_dim == 50 and cfg.optimizer.eps == 1e-4


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF / "experiment" / "hour_nll_screen").glob("*.yaml")))
def test_hour_nll_screening_candidates_pass_the_settings_checks(name):
    cfg = compose_config([f"experiment=hour_nll_screen/{name}"])
    validate(cfg)
    assert cfg.schedule.name == "cosine" and cfg.schedule.epochs == cfg.epochs <= 60


EXPERIMENTS = {
    "paper": dict(
        latent_dim=10, hidden=[256], optimizer="rmsprop", lr=1e-3, batch_size=100, epochs=20, objective="trace"
    ),
    "kingma_welling": dict(latent_dim=20, hidden=[500], optimizer="adagrad", batch_size=100, objective="trace"),
    "burda_vae": dict(
        latent_dim=50, hidden=[200, 200], optimizer="adam", batch_size=20, objective="trace", particles=1
    ),
    "burda_iwae": dict(
        latent_dim=50, hidden=[200, 200], optimizer="adam", batch_size=20, objective="iwae", particles=50
    ),
    "burda_omniglot_vae": dict(
        latent_dim=50,
        hidden=[200, 200],
        optimizer="adam",
        batch_size=20,
        objective="trace",
        particles=1,
        dataset="omniglot",
    ),
    "burda_omniglot_iwae": dict(
        latent_dim=50,
        hidden=[200, 200],
        optimizer="adam",
        batch_size=20,
        objective="iwae",
        particles=50,
        dataset="omniglot",
    ),
    "fast_nll": dict(
        latent_dim=50,
        hidden=[200, 200],
        optimizer="adam",
        batch_size=100,
        objective="iwae",
        particles=5,
        lr=3e-3,
        epochs=280,
    ),
    "tomczak_vampprior": dict(
        latent_dim=40, hidden=[300, 300], optimizer="adam", batch_size=100, objective="trace", lr=5e-4, epochs=2000
    ),
    "tomczak_static_mnist": dict(
        latent_dim=40,
        hidden=[300, 300],
        optimizer="adam",
        batch_size=100,
        objective="trace",
        lr=5e-4,
        epochs=2000,
        dataset="binarized_mnist",
    ),
    "burda_hvae": dict(
        latent_dim=100, hidden=[200, 200], optimizer="adam", batch_size=20, objective="trace", model="hvae", top=50
    ),
    "burda_hiwae": dict(
        latent_dim=100,
        hidden=[200, 200],
        optimizer="adam",
        batch_size=20,
        objective="iwae",
        particles=50,
        model="hvae",
        top=50,
    ),
    "burda_iaf": dict(
        latent_dim=50, hidden=[200, 200], optimizer="adam", batch_size=20, objective="trace", guide="iaf"
    ),
    "hour_nll": dict(
        latent_dim=100,
        hidden=[200, 200],
        optimizer="adam",
        batch_size=100,
        objective="iwae",
        particles=5,
        lr=3e-3,
        epochs=135,
        model="hvae",
        top=50,
    ),
    "hour_nll_screen_base": dict(
        latent_dim=50, hidden=[200, 200], optimizer="adam", batch_size=100, objective="iwae", particles=5, lr=3e-3
    ),
    "fast_nll_screen_base": dict(
        latent_dim=50, hidden=[200, 200], optimizer="adam", batch_size=100, objective="trace", particles=1, lr=1e-3
    ),
    # Kingma et al. (2014), M2 with 100 labels; and the faster recipe chosen here on validation error.
    "kingma_m2": dict(
        latent_dim=50, hidden=[500], optimizer="adam", batch_size=100, objective="trace", lr=3e-4, model="m2", alpha=0.1
    ),
    "m2_fast": dict(
        latent_dim=50, hidden=[500], optimizer="adam", batch_size=100, objective="trace", lr=1e-3, model="m2", alpha=10
    ),
    # M1 of M1+M2: Kingma et al.'s networks (their activation, softplus), the project's optimizer.
    "m1": dict(
        latent_dim=50, hidden=[600, 600], optimizer="adam", batch_size=128, objective="trace", lr=1e-3, epochs=120
    ),
}


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF / "experiment").glob("*.yaml")))
def test_every_experiment_config_composes_to_its_published_setup(name):
    cfg = compose_config([f"experiment={name}"])
    validate(cfg)
    expected = EXPERIMENTS[name]
    assert cfg.latent_dim == expected["latent_dim"] and list(cfg.net.widths) == expected["hidden"]
    assert cfg.optimizer.name == expected["optimizer"] and cfg.batch_size == expected["batch_size"]
    assert cfg.objective.name == expected["objective"] and cfg.dataset.name == expected.get("dataset", "mnist")
    assert cfg.objective.num_particles == expected.get("particles", cfg.objective.num_particles)
    assert cfg.prior.name == ("vampprior" if name.startswith("tomczak") else "standard")
    assert (cfg.model.name, cfg.guide.name) == (expected.get("model", "vae"), expected.get("guide", "diagonal"))
    assert cfg.prior.get("num_pseudo_inputs", 500) == 500
    if "top" in expected:
        assert cfg.model.top_latent_dim == expected["top"] and list(cfg.model.top_widths) == [100, 100]
    if "alpha" in expected:
        assert (
            cfg.model.alpha == expected["alpha"] and cfg.dataset.num_labels == 100 and cfg.net.activation == "softplus"
        )
    for key in ("lr", "epochs"):
        assert cfg[key] == expected.get(key, cfg[key])
    params = [torch.nn.Parameter(torch.zeros(3))]
    make_optimizer(cfg.optimizer, cfg.lr, params, 50000)
    make_objective(cfg.objective)


def test_slurm_cluster_config_selects_the_submitit_slurm_launcher():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            config_name="config", overrides=["+cluster=slurm", "hydra.launcher.partition=gpu"], return_hydra_config=True
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.partition, launcher.gpus_per_node, launcher.timeout_min) == ("gpu", 1, 240)
    assert cfg.device == "cuda"
