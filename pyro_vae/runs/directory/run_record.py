"""Hydra's record of a job (``.hydra/*.yaml``) and its ``run.log``, held back until the command
starts writing.

Some refusals come only once the work has begun: data files that fail their checksum, a batch
larger than the data, a checkpoint that does not fit the settings. Until the task calls
:meth:`RunRecord.begin`, log records wait in memory and nothing is written, so such a refusal
leaves an existing run directory byte-identical, as a refusal of a setting does.
"""

import logging
from logging.handlers import MemoryHandler
from pathlib import Path
from types import TracebackType
from typing import Callable, List, Optional, Type

from omegaconf import DictConfig, OmegaConf

from ...atomic import write_text
from ...errors import PyroVAEError
from .run_directory import RunDirectoryInUse

Begin = Callable[[], None]  # what a task calls once it starts writing
_UNBOUNDED = 10**9  # records held back; a task begins writing long before it logs this many


def write_config_record(cfg: DictConfig, hydra_cfg: DictConfig, output_dir: Path) -> None:
    """Hydra's record of the job (``.hydra/config.yaml``, ``hydra.yaml``, ``overrides.yaml``);
    each file is replaced whole or not at all."""
    record_dir = output_dir / ".hydra"
    write_text(record_dir / "config.yaml", OmegaConf.to_yaml(cfg))
    write_text(record_dir / "hydra.yaml", OmegaConf.to_yaml(OmegaConf.create({"hydra": hydra_cfg})))
    write_text(record_dir / "overrides.yaml", OmegaConf.to_yaml(hydra_cfg.overrides.task))


def nothing_to_begin() -> None:
    """``begin`` of a task called from Python, where no record is held back."""


class RunRecord:
    """The job's record and log, written by :meth:`begin`, which then calls what :meth:`on_begin`
    was given (the run lock's announcement of its holder).

    In a sweep, a job refused before it began is recorded all the same, so that the sweep summary
    lists it by its overrides; a job refused because its directory is another's is not."""

    def __init__(self, cfg: DictConfig, hydra_cfg: DictConfig, output_dir: Path, multirun: bool):
        self.cfg, self.hydra_cfg, self.output_dir, self.multirun = cfg, hydra_cfg, output_dir, multirun
        self.begun = False
        self._on_begin: List[Callable[[], None]] = []
        self._held: List[MemoryHandler] = []

    def __enter__(self) -> "RunRecord":
        root = logging.getLogger()
        for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
            held = MemoryHandler(_UNBOUNDED, flushLevel=logging.CRITICAL + 1, target=handler, flushOnClose=False)
            held.setLevel(handler.level)
            root.removeHandler(handler)
            root.addHandler(held)
            self._held.append(held)
        return self

    def on_begin(self, call: Callable[[], None]) -> None:
        self._on_begin.append(call)

    def begin(self) -> None:
        """The command is accepted and starts writing: write the record, then the log so far."""
        if self.begun:
            return
        write_config_record(self.cfg, self.hydra_cfg, self.output_dir)
        for call in self._on_begin:
            call()
        self.begun = True
        self._release(keep=True)

    def __exit__(
        self, kind: Optional[Type[BaseException]], error: Optional[BaseException], trace: Optional[TracebackType]
    ) -> None:
        if self.begun:
            return
        if self.multirun and isinstance(error, PyroVAEError) and not isinstance(error, RunDirectoryInUse):
            self.begin()
        else:
            self._release(keep=False)  # refused: nothing written, and run.log stays closed

    def _release(self, keep: bool) -> None:
        """Put each file handler back with its held records (``keep``), or drop both."""
        root = logging.getLogger()
        for held in self._held:
            root.removeHandler(held)
            if keep:
                held.flush()
                root.addHandler(held.target)
            held.buffer.clear()
        self._held = []
