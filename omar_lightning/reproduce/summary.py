"""What a run's score is, how seeds are aggregated, and the per-run summary files.

The score of a run is defined here once and used by ``omar reproduce``, ``omar report`` and the
docs: the mean normalized score of its last ``LAST_EVALUATIONS`` evaluations (each the mean over
the data module's evaluation episodes, 10 on MPE), i.e. the last 100 of 2,000 updates on MPE and
the last 5,000 of 100,000 on HalfCheetah. The evaluation before the first update (update 0) is
the first point of the learning curve and never part of the score (:func:`curve_score`). Averaging a few evaluations smooths the noise of 10-episode
evaluations without reaching back into early training. Seeds are aggregated as mean +- standard
deviation over seeds (population std, ``ddof=0``), as the paper reports over 5 seeds.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from omar_lightning.update_version import UPDATE_VERSION

LAST_EVALUATIONS = 10
SCHEMA = 1


def run_score(values: Iterable[float], last: int = LAST_EVALUATIONS) -> float:
    """Mean of the last ``last`` evaluation values of one run (all of them if there are fewer)."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("a run with no evaluations has no score")
    return float(np.mean(values[-last:]))


def curve_score(curve: dict[str, list[float]], field: str = "normalized_score", last: int = LAST_EVALUATIONS) -> float:
    """A run's score from its curve (:func:`read_curve`): :func:`run_score` of ``field`` over the
    evaluations after update 0 (the evaluation before the first update is left out)."""
    return run_score([v for u, v in zip(curve["updates"], curve[field]) if u > 0], last)


def update_version(summary: dict[str, Any]) -> int:
    """The training update's version that made a summary (1 for summaries without the field)."""
    return int(summary.get("update_version", 1))


def is_current(summary: dict[str, Any]) -> bool:
    """Whether a summary was made by this version of the training update (``UPDATE_VERSION``)."""
    return update_version(summary) == UPDATE_VERSION


def aggregate(scores: Iterable[float]) -> dict[str, float]:
    """Mean, population standard deviation and count of per-seed scores."""
    x = np.asarray(list(scores), dtype=np.float64)
    if x.size == 0:
        return {"mean": math.nan, "std": math.nan, "n": 0}
    return {"mean": float(x.mean()), "std": float(x.std(ddof=0)), "n": int(x.size)}


def read_curve(log_dir: Path) -> dict[str, list[float]]:
    """Evaluation curve from a run's CSV logs: ``updates``, ``return``, ``normalized_score``.

    Rows come from every ``version_*`` (a resumed run logs into a new version); for an update
    evaluated twice, the later version's row is kept (an exact resume writes the same values).
    """
    by_update: dict[int, tuple[float, float]] = {}
    versions = sorted(log_dir.glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[-1]))
    for path in versions:
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                ret, norm, upd = row.get("eval/return"), row.get("eval/normalized_score"), row.get("updates")
                if ret and norm and upd:
                    by_update[int(float(upd))] = (float(ret), float(norm))
    updates = sorted(by_update)
    return {"updates": updates, "return": [by_update[u][0] for u in updates], "normalized_score": [by_update[u][1] for u in updates]}


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    from omar_lightning.atomic import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(summary, indent=1, sort_keys=True) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()))


def read_summary(path: Path) -> dict[str, Any] | None:
    """A finished run's summary, or None when the file is missing, partial or of another schema."""
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict) or summary.get("schema") != SCHEMA or "score" not in summary:
        return None
    return summary


def load_summaries(results: Path) -> list[dict[str, Any]]:
    """Every valid summary under ``results`` (sorted by path, so reports are deterministic)."""
    out = []
    for path in sorted(results.rglob("seed_*.json")):
        summary = read_summary(path)
        if summary is not None:
            out.append(summary)
    return out
