"""The tabular outputs of a run: ``history.csv`` and ``metrics.json``."""

import csv
import io
from pathlib import Path
from typing import Any, Dict, Sequence

from ...atomic import write_json, write_text


def write_history(path: Path, history: Sequence[Dict[str, float]]) -> None:
    """One row per epoch, columns in the order of the first row."""
    buffer = io.StringIO()
    if history:
        writer = csv.DictWriter(buffer, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    write_text(path, buffer.getvalue())


def write_metrics(path: Path, metrics: Dict[str, Any]) -> None:
    write_json(path, metrics)
