"""Read-only access to the packaged tables under ``accounting/data/``.

The tables are immutable package data, so each file is parsed once and cached; nothing here
holds mutable state that a test would need to reset.
"""

from __future__ import annotations

import csv
import difflib
import io
from collections.abc import Iterable
from functools import cache
from importlib import resources

DATA_FILES: tuple[str, ...] = (
    "intensity_countries.csv",
    "intensity_subnational.csv",
    "intensity_world.csv",
    "cloud_regions.csv",
    "hardware.csv",
    "embodied.csv",
    "pue.csv",
    "residual_mixes.csv",
    "water_countries.csv",
    "wue.csv",
)


@cache
def rows(name: str) -> tuple[dict[str, str], ...]:
    """The rows of one data file as dicts (header -> cell text)."""
    text = resources.files("mlflow_green.accounting").joinpath("data").joinpath(name).read_text("utf-8")
    return tuple(dict(r) for r in csv.DictReader(io.StringIO(text)))


def close_matches(word: str, candidates: Iterable[str], n: int = 4) -> list[str]:
    """Valid codes that look like ``word`` (case-insensitive), for error messages."""
    pool = sorted(set(candidates))
    lowered = {c.lower(): c for c in pool}
    hits = difflib.get_close_matches(word.lower(), list(lowered), n=n, cutoff=0.5)
    return [lowered[h] for h in hits]


def hint(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean X, Y?)`` or an empty string."""
    matches = close_matches(word, candidates)
    return f" (did you mean {', '.join(matches)}?)" if matches else ""
