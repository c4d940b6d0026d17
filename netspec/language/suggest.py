"""'Did you mean ...?' — nearest names by edit distance, transpositions counting as one edit."""

from __future__ import annotations

from typing import Iterable


def distance(a: str, b: str) -> int:
    """Optimal string alignment distance (Damerau-Levenshtein without repeated edits)."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def nearest(name: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate, if it is close enough to be a plausible typo."""
    best: tuple[int, str] | None = None
    low = name.lower()
    for cand in sorted(set(candidates)):
        d = 0 if low == cand.lower() else distance(low, cand.lower())
        if d <= max(1, min(3, len(cand) // 3)) and (best is None or d < best[0]):
            best = (d, cand)
    return best[1] if best else None


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    match = nearest(name, candidates)
    return f"did you mean `{match}`?" if match else None
