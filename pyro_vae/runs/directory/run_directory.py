"""Who may write into a run directory, decided before anything is written into it.

A new training run needs a directory without a run; ``resume=true`` needs the run's ``last.pt``
and the settings it was trained with (a few that only steer what comes next may change, and
are then applied); a task on a finished run writes into a directory of its own. A refused
command leaves the directory byte-identical: ``run.py`` writes Hydra's record of the config only
once the command is accepted (``hydra.output_subdir: null``; see :mod:`.run_record`).
"""

from pathlib import Path
from typing import Any, Dict, List, Tuple

from omegaconf import DictConfig, OmegaConf

from ...errors import ConfigError, DataError

# The files that hold a run (``checkpoints`` writes them), named here so that a run directory is checked
# before torch is loaded.
BEST = "checkpoint.pt"
LAST = "last.pt"
# Settings a resumed run takes from its new command line, all applied from the next epoch on:
# the epoch budget, early stopping, evaluation, where the sample-quality classifiers are cached, what
# watches the run, the device and threads, the processes and precision (trainer.*: README, "Scaling
# out", says what a resume on another number of processes keeps), and where the data files live.
CHANGEABLE_ON_RESUME = (
    "epochs",
    "early_stopping.",
    "eval.",
    "quality.",
    "logger.",
    "device",
    "threads",
    "trainer.",
    "dataset.root",
    "dataset.download",
)
# Keys that only choose what run.py does, not what the run is.
COMMAND_KEYS = ("resume", "task.")


class RunDirectoryInUse(ConfigError):
    """The directory holds a run this command must not touch."""


def check_output_dir(cfg: DictConfig, output_dir: Path) -> None:
    """Refuse, in one line, a command that would overwrite or misrecord the run in ``output_dir``."""
    held = next((name for name in (LAST, BEST) if (output_dir / name).exists()), None)
    if cfg.task.name != "train":
        if held:
            raise RunDirectoryInUse(
                f"hydra.run.dir={output_dir}: holds a run ({held}); task={cfg.task.name} writes into a directory of "
                "its own, choose another hydra.run.dir"
            )
        return
    if not cfg.resume:
        if held:
            raise RunDirectoryInUse(
                f"{output_dir} already holds a run ({held}); pass resume=true to continue it or choose another "
                "hydra.run.dir"
            )
        return
    last = output_dir / LAST
    if not last.is_file():
        raise ConfigError(
            f"resume=true: {output_dir} holds no {LAST} to continue; drop resume=true to start a new run there"
        )
    from . import checkpoints

    current = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    changed = settings_changed(checkpoints.read(last)["config"], current)
    best = output_dir / BEST
    mixed = settings_changed(checkpoints.read(best)["config"], current) if best.is_file() and not changed else []
    if mixed:
        listed = ", ".join(f"{key}={old}" for key, old, _ in mixed)
        raise DataError(
            f"{best}: was trained with {listed}, unlike {LAST} and this command; the directory mixes "
            "two runs: move one of the two files away or start a new run"
        )
    if changed:
        listed = ", ".join(f"{key}={new} (the run has {old})" for key, old, new in changed)
        raise RunDirectoryInUse(
            f"resume=true: {listed}: a resumed run keeps the settings it was trained with, except "
            f"{', '.join(key + '*' if key.endswith('.') else key for key in CHANGEABLE_ON_RESUME)}; drop these "
            "overrides or start a new run"
        )


def settings_changed(stored: Dict[str, Any], current: Dict[str, Any]) -> List[Tuple[str, Any, Any]]:
    """(key, stored value, current value) for every setting both configs hold that differs and
    may not change on resume; keys added to the project since the run began take their defaults."""
    old, new = flatten(stored), flatten(current)
    return [
        (key, old[key], new[key])
        for key in new
        if key in old and old[key] != new[key] and not changeable_on_resume(key)
    ]


def changeable_on_resume(key: str) -> bool:
    """Whether the setting ``key`` (dotted) may differ from the run's own when it resumes."""
    return any(
        key == prefix or (prefix.endswith(".") and key.startswith(prefix))
        for prefix in CHANGEABLE_ON_RESUME + COMMAND_KEYS
    )


def flatten(tree: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    """A nested config as {"net.widths": value, ...}."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
