"""threads=null: as many torch threads as there are cores that other processes leave idle.

torch's threads wait for each other at the end of every parallel operation, so one thread whose
core another process holds stalls them all: on two cores, with one kept busy, steps of the default
network took 2.6x as long on two threads (benchmarks/busy_machine.py; 18x and 50x on other machines).
Linux's /proc/stat counts the ticks every core spent busy; less this process's own ticks
(/proc/self/stat) they are the other processes' load. Elsewhere nothing is counted and torch keeps
its default of one thread per core.
"""

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

log = logging.getLogger(__name__)

SAMPLE_SECONDS = 0.1  # long enough for /proc/stat's 10 ms ticks to show a core kept busy
# The threads this module last set, and the count it lowered them from: a later run in the same
# process (a notebook, the tests) starts from that count, not from a load that may have gone.
_followed = {"set": None, "from": None}


@dataclass(frozen=True)
class CpuTicks:
    """Ticks since boot: every core's, the busy ones of every core, and this process's own."""

    total: int
    busy: int
    own: int


def cpu_ticks() -> Optional[CpuTicks]:
    """Now's counters, or None where /proc is not (not Linux)."""
    try:
        fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        own_fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle and iowait
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
    return CpuTicks(total=total, busy=total - idle, own=int(own_fields[11]) + int(own_fields[12]))


def cores_busy_elsewhere(since: CpuTicks, until: CpuTicks) -> float:
    """The cores that other processes kept busy between two readings, on average."""
    elapsed = until.total - since.total
    if elapsed <= 0:
        return 0.0
    cores = os.cpu_count() or 1
    others = (until.busy - since.busy) - (until.own - since.own)
    return max(0.0, others / elapsed * cores)


class ThreadsFollowLoad:
    """Sets torch's threads to the cores left idle (at least one, at most torch's default), when the
    run starts and again at each ``update`` (every 100 steps), from the ticks other processes took in between."""

    def __init__(self) -> None:
        current = torch.get_num_threads()  # torch's default, or what a sweep's ShareCores gave this job
        self.most = _followed["from"] if current == _followed["set"] else current
        self.usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        self.last = cpu_ticks()
        if self.last is not None:
            time.sleep(SAMPLE_SECONDS)
            # Said in run.log only when it changes during training: a refused command prints one line.
            self.update(logging.DEBUG)

    def update(self, level: int = logging.INFO) -> None:
        """Choose the threads from the load since the last reading; a change is logged at ``level``."""
        now = cpu_ticks()
        if now is None or self.last is None:
            return
        busy = cores_busy_elsewhere(self.last, now)
        self.last = now
        threads = max(1, min(self.most, self.usable - round(busy)))
        if threads != torch.get_num_threads():
            log.log(
                level,
                "threads=null: other processes keep %.1f of %d cores busy: %d torch thread(s)",
                busy,
                self.usable,
                threads,
            )
            torch.set_num_threads(threads)
            _followed.update({"set": threads, "from": self.most})
