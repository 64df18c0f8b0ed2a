"""The default training step on an idle machine and on one where another process keeps a core busy.

torch's CPU threads wait for each other at the end of every parallel operation, so when another
process holds one of their cores, every matrix product waits on a descheduled thread: an epoch of
the default network went from 2.4 s to 50-140 s on two cores. Each option below runs in a fresh
process (OpenMP reads its settings when torch loads), alone and then beside a process that spins
on one core, and times steps of the default network at the default batch of 128:

- ``threads=N``: torch.set_num_threads(N), with OpenMP's default (active) waiting;
- ``... OMP_WAIT_POLICY=PASSIVE``: the threads sleep instead of spinning while they wait;
- ``threads=null (default)``: the project's rule, one thread per core that is idle when the run starts.

``loaded / idle`` is each option's loaded time over its own idle time; ``vs best idle`` its idle time
over the fastest idle option's, in the same run. Run it on an otherwise idle machine.

    .venv/bin/python benchmarks/busy_machine.py [--steps 60] [--rounds 3]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from common import ROOT, add_results_argument, save_results, table

STEP_TIMER = r"""
import json, sys, time, torch
from pyro_vae.runs.configuration.config import compose_config
from pyro_vae.runs.configuration.builders import build_vae
from pyro_vae.runs.configuration.settings import apply_threads
from pyro_vae.runs.loop.steps import make_step
threads, steps = json.loads(sys.argv[1]), int(sys.argv[2])
apply_threads(threads)
torch.set_flush_denormal(True)
cfg = compose_config(["device=cpu"])
vae = build_vae(cfg, (1, 28, 28), 10)
vae.num_data = 60000
step = make_step(vae, cfg)
batches = [torch.bernoulli(torch.rand(cfg.batch_size, 1, 28, 28)) for _ in range(steps)]
for x in batches[:10]:
    step(x, None)
start = time.perf_counter()
for x in batches:
    step(x, None)
print(json.dumps({"ms": 1000 * (time.perf_counter() - start) / steps, "threads": torch.get_num_threads()}))
"""

OPTIONS = {
    "threads=2": (2, {}),
    "threads=1": (1, {}),
    "threads=2, OMP_WAIT_POLICY=PASSIVE": (2, {"OMP_WAIT_POLICY": "PASSIVE"}),
    "threads=null (default)": (None, {}),
}
STEPS_PER_EPOCH = 60000 // 128


def time_option(threads, env, steps: int) -> dict:
    environment = {**os.environ, **env}
    environment.pop("OMP_NUM_THREADS", None)
    result = subprocess.run(
        [sys.executable, "-c", STEP_TIMER, json.dumps(threads), str(steps)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def spinning_process() -> subprocess.Popen:
    """A process that keeps one core busy, as another user's job would."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="timed steps per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per option and load (the median is kept)")
    parser.add_argument("--options", nargs="+", default=list(OPTIONS), choices=list(OPTIONS), help="the options timed")
    add_results_argument(parser)
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores")
    measured = {name: {"idle": [], "loaded": []} for name in args.options}
    chosen_threads = {}
    for _ in range(args.rounds):
        for name in args.options:
            threads, env = OPTIONS[name]
            idle = time_option(threads, env, args.steps)
            busy = spinning_process()
            time.sleep(0.5)  # the spinner is running before the option counts idle cores
            try:
                loaded = time_option(threads, env, args.steps)
            finally:
                busy.kill()
                busy.wait()
            measured[name]["idle"].append(idle["ms"])
            measured[name]["loaded"].append(loaded["ms"])
            chosen_threads[name] = (idle["threads"], loaded["threads"])
    idle_ms = {name: statistics.median(m["idle"]) for name, m in measured.items()}
    best_idle = min(idle_ms.values())
    rows = []
    for name, m in measured.items():
        loaded_ms = statistics.median(m["loaded"])
        rows.append(
            {
                "option": name,
                "threads idle/loaded": "{}/{}".format(*chosen_threads[name]),
                "idle ms": idle_ms[name],
                "loaded ms": loaded_ms,
                "idle epoch s": idle_ms[name] * STEPS_PER_EPOCH / 1000,
                "loaded epoch s": loaded_ms * STEPS_PER_EPOCH / 1000,
                "loaded / idle": loaded_ms / idle_ms[name],
                "vs best idle": idle_ms[name] / best_idle,
            }
        )
    print(table(rows, list(rows[0])))
    print("epoch s = ms per step x 468 steps (60,000 images at batch 128), training steps only")
    print(f"wrote {save_results(args.results, 'busy_machine', {'rows': rows, 'steps': args.steps})}")


if __name__ == "__main__":
    main()
