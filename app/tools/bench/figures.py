"""Benchmark figures: percentiles, one JSON line per figure, and the results history."""

import json
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Figure:
    figure: str
    value: float
    unit: str
    target: str | None = None


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


class Report:
    def __init__(self) -> None:
        self.figures: list[Figure] = []

    def add(self, figure: str, value: float, unit: str, target: str | None = None) -> None:
        item = Figure(figure, round(value, 2), unit, target)
        self.figures.append(item)
        print(json.dumps({k: v for k, v in asdict(item).items() if v is not None}), flush=True)

    def record(self, directory: Path, options: dict[str, object]) -> Path:
        return record_document(directory, None, options, [asdict(f) for f in self.figures], "figures")


def record_document(
    directory: Path, kind: str | None, options: dict[str, object], items: list[Any], name: str = "lines"
) -> Path:
    """Keep a run's results as `<time>-<commit>[-kind].json`, with the options it ran with."""
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stamp}-{commit}{'-' + kind if kind else ''}.json"
    document = {"commit": commit, "recorded_at": stamp, "options": options, name: items}
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
