"""threads=null: torch's threads follow the cores that other processes leave idle."""

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pyro_vae.runs.configuration import cores
from pyro_vae.runs.configuration.cores import CpuTicks, ThreadsFollowLoad, cores_busy_elsewhere


def test_the_cores_busy_elsewhere_are_the_busy_ticks_less_this_process_own(monkeypatch):
    monkeypatch.setattr(cores.os, "cpu_count", lambda: 4)
    # 400 ticks over 4 cores is 100 ticks each: 250 busy, of which 50 were this process's, leaves 2 cores.
    since, until = CpuTicks(total=1000, busy=300, own=10), CpuTicks(total=1400, busy=550, own=60)
    assert cores_busy_elsewhere(since, until) == pytest.approx(2.0)
    assert cores_busy_elsewhere(until, until) == 0.0


def test_threads_drop_when_other_processes_load_the_cores_and_come_back_when_they_stop(monkeypatch):
    readings = iter(
        [
            CpuTicks(total=0, busy=0, own=0),
            CpuTicks(total=200, busy=100, own=0),  # one of two cores busy elsewhere
            CpuTicks(total=400, busy=200, own=100),  # only this process
        ]
    )
    monkeypatch.setattr(cores, "cpu_ticks", lambda: next(readings))
    monkeypatch.setattr(cores.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(cores.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(cores.time, "sleep", lambda seconds: None)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        follow = ThreadsFollowLoad()  # reads twice as the run starts
        assert torch.get_num_threads() == 1
        follow.update()
        assert torch.get_num_threads() == 2  # never more than torch's default when the run began
    finally:
        torch.set_num_threads(previous)


@pytest.mark.skipif(not Path("/proc/stat").is_file(), reason="counts ticks in /proc/stat (Linux)")
def test_a_process_spinning_on_a_core_is_counted_as_one_busy_core():
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # started and spinning
        before = cores.cpu_ticks()
        time.sleep(0.5)
        busy = cores_busy_elsewhere(before, cores.cpu_ticks())
    finally:
        spinner.kill()
        spinner.wait()
    assert busy >= 0.8


def test_a_later_run_in_the_same_process_starts_from_the_threads_the_load_took_away(monkeypatch):
    readings = iter(
        [
            CpuTicks(total=0, busy=0, own=0),
            CpuTicks(total=200, busy=100, own=0),  # the first run starts beside a busy core
            CpuTicks(total=400, busy=100, own=0),  # the second on an idle machine
            CpuTicks(total=600, busy=100, own=0),
        ]
    )
    monkeypatch.setattr(cores, "cpu_ticks", lambda: next(readings))
    monkeypatch.setattr(cores.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(cores.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(cores.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(cores, "_followed", {"set": None, "from": None})
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        ThreadsFollowLoad()
        assert torch.get_num_threads() == 1
        ThreadsFollowLoad()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
