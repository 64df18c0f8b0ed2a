"""Long phases shown as they go: a progress bar with its rate and time left on a terminal, and in
the log (``run.log``, or a console that is no terminal) a line when a phase starts, saying the work
to do, and one when it ends, saying the time it took. A bound over 10,000 test images at K = 1000
takes minutes: without them a finished training looks hung."""

import logging
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from tqdm.auto import tqdm

log = logging.getLogger(__name__)

Advance = Callable[[int], None]  # called with the work just done, in the phase's unit


@contextmanager
def phase(name: str, total: int, unit: str, detail: str = "", shown: bool = True) -> Iterator[Advance]:
    """Show the phase ``name`` of ``total`` ``unit``s (``detail``: how, e.g. "K = 1000"); yields the
    function to call with each piece of work done. ``shown=False`` (a process that does not write)
    logs and shows nothing."""
    if not shown:
        yield lambda done: None
        return
    how = f", {detail}" if detail else ""
    log.info("%s: %s %s%s ...", name, f"{total:,}", unit, how)
    started = time.perf_counter()
    # disable=None: a bar on a terminal only, so that a log file gets the two lines and no bar.
    with tqdm(total=total, desc=name, unit=unit, leave=False, disable=None, dynamic_ncols=True) as bar:
        yield bar.update
    seconds = time.perf_counter() - started
    rate = f", {total / seconds:,.1f} {unit}/s" if seconds > 0 else ""
    log.info("%s: %s %s in %.1f s%s", name, f"{total:,}", unit, seconds, rate)
