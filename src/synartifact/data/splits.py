"""Deterministic, seeded, multi-label stratified train/test splits.

Every kind that occurs in at least two images appears in both splits; images without artifacts are spread by
the split sizes. A fixed test list (the release's ``eval.txt``) overrides the stratification entirely, so the
published evaluation images are the ``test`` split.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["stratified_split"]


def stratified_split(
    labels: Sequence[Iterable[int]],
    test_size: float = 0.2,
    seed: int = 0,
    ids: Sequence[str] | None = None,
    test_ids: Iterable[str] | None = None,
) -> tuple[list[int], list[int]]:
    """Split rows into (train indices, test indices), each sorted.

    ``labels[i]`` holds the kinds of row ``i``. With ``test_ids`` (and the rows' ``ids``), exactly those rows
    form the test split. Otherwise an iterative stratification (rarest kind first, Sechidis et al. 2011) puts
    about ``test_size`` of each kind in test, then a repair pass makes every kind with two or more images
    present on both sides.
    """
    n = len(labels)
    if test_ids is not None:
        if ids is None:
            raise ValueError("stratified_split: test_ids needs the rows' ids")
        wanted = set(test_ids)
        test = [i for i, rid in enumerate(ids) if rid in wanted]
        return [i for i in range(n) if i not in set(test)], test
    if not 0.0 <= test_size < 1.0:
        raise ValueError(f"test_size must be in [0, 1), got {test_size}")
    if n == 0:
        return [], []
    sets = [set(map(int, row)) for row in labels]
    n_test = int(round(test_size * n))
    if test_size > 0 and n >= 2:
        n_test = min(max(n_test, 1), n - 1)
    if n_test == 0:
        return list(range(n)), []

    rng = np.random.default_rng(seed)
    order = [int(i) for i in rng.permutation(n)]
    frac = {"train": 1.0 - n_test / n, "test": n_test / n}
    counts = Counter(k for s in sets for k in s)
    desired = {sp: {k: c * f for k, c in counts.items()} for sp, f in frac.items()}
    total = {"train": float(n - n_test), "test": float(n_test)}
    assign: dict[int, str] = {}

    def put(i: int, split: str) -> None:
        assign[i] = split
        total[split] -= 1
        for k in sets[i]:
            desired[split][k] -= 1

    remaining = Counter(counts)
    while True:
        live = [k for k, c in remaining.items() if c > 0]
        if not live:
            break
        kind = min(live, key=lambda k: (remaining[k], k))
        for i in order:
            if i in assign or kind not in sets[i]:
                continue
            split = max(("test", "train"), key=lambda sp: (desired[sp][kind], total[sp]))
            put(i, split)
            for k in sets[i]:
                remaining[k] -= 1
    for i in order:
        if i not in assign:
            put(i, "test" if total["test"] >= total["train"] else "train")

    # Repair: a kind seen twice or more must be on both sides; move the lightest image that does not empty another kind.
    for kind in sorted(counts):
        if counts[kind] < 2:
            continue
        for missing in ("test", "train"):
            side = [i for i in order if assign[i] == missing and kind in sets[i]]
            if side:
                continue
            other = "train" if missing == "test" else "test"
            per_side = Counter(k for i in order if assign[i] == other for k in sets[i])
            candidates = [i for i in order if assign[i] == other and kind in sets[i]]
            candidates.sort(key=lambda i: (any(per_side[k] < 2 for k in sets[i]), len(sets[i])))
            if candidates:
                assign[candidates[0]] = missing
    train = sorted(i for i, sp in assign.items() if sp == "train")
    test = sorted(i for i, sp in assign.items() if sp == "test")
    return train, test


_SLICE_RE = re.compile(r"^(?P<name>[\w.-]+)(?:\[(?P<start>-?\d*%?):(?P<stop>-?\d*%?)\])?$")


def select_split(splits: Mapping[str, Any], spec: str, where: str = "dataset") -> Any:
    """The rows ``spec`` names: a split (``train``) or a slice of one in the ``datasets`` spelling (``train[:4000]``,
    ``train[50%:]``), so that two models can train on disjoint parts of one split."""
    match = _SLICE_RE.match(spec.strip())
    if not match:
        raise ValueError(f"Split {spec!r} of {where}: expected a split name or NAME[start:stop] (e.g. train[50%:]).")
    name = match["name"]
    if name not in splits:
        raise ValueError(f"{where} has no split {name!r}; its splits are {sorted(splits)}.")
    part = splits[name]
    if match["start"] is None:
        return part

    def bound(text: str, default: int) -> int:
        if not text:
            return default
        value = int(text[:-1]) * len(part) // 100 if text.endswith("%") else int(text)
        return max(0, min(len(part), value + len(part) if value < 0 else value))

    return part.select(range(bound(match["start"], 0), bound(match["stop"], len(part))))
