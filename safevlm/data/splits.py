"""Splits fixed by hashing a key: the same request, family or image lands in the same split
on every machine and run, whatever else the data holds."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

SPLIT_FRACTIONS = (("train", 0.65), ("val", 0.10), ("test", 0.25))


def stratified_splits(keys: Sequence[str]) -> list[str]:
    """Splits for one stratum (e.g. one type and level): items ranked by the hash of their
    key, then cut at SPLIT_FRACTIONS, so even a small stratum has train and test items."""
    order = sorted(range(len(keys)), key=lambda i: hash_fraction(keys[i]))
    count = len(keys)
    sizes = {split: round(count * share) for split, share in SPLIT_FRACTIONS}
    if count >= 3:
        sizes["test"] = max(1, sizes["test"])
    if count >= 5:
        sizes["val"] = max(1, sizes["val"])
    splits = [""] * count
    for rank, index in enumerate(order):
        if rank < sizes["test"]:
            splits[index] = "test"
        elif rank < sizes["test"] + sizes["val"]:
            splits[index] = "val"
        else:
            splits[index] = "train"
    return splits


def hash_fraction(key: str) -> float:
    """A number in [0, 1) fixed by `key`, for splits with other shares."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2**64


def split_by_hash(key: str, shares: Sequence[tuple[str, float]]) -> str:
    """The split whose cumulative share first exceeds `hash_fraction(key)`."""
    value, edge = hash_fraction(key), 0.0
    for split, share in shares:
        edge += share
        if value < edge:
            return split
    return shares[-1][0]
