"""Samples the product takes (calibration and evaluation images, galleries, previews):
stratified by class and drawn by the run's seed.

``allocate`` shares a sample's size among the classes in proportion to their
sizes, at least one each while the size allows; ``choose`` then takes each
class's share by a hash of the seed and each item's key, so a seed gives the
same sample whatever order the items come in (folder order is class order, and
the head of a split is one class).  Pure Python: the run report uses it too.
"""

import hashlib
from collections.abc import Hashable, Iterable, Sequence


def rank(seed: int, key: str) -> int:
    """A pseudo-random number for ``key``, fixed by ``seed``: sorting by it shuffles."""
    return int.from_bytes(hashlib.sha256(f"{seed}\0{key}".encode("utf-8", "surrogatepass")).digest()[:8], "big")


def allocate(counts: dict[Hashable, int], total: int, seed: int = 0) -> dict[Hashable, int]:
    """How many of a sample of ``total`` each class gets: one each first while ``total``
    allows, the rest in proportion to the classes' sizes (largest remainders first, ties
    by the seed), never more than a class holds."""
    counts = {label: count for label, count in counts.items() if count > 0}
    total = min(total, sum(counts.values()))
    shares = dict.fromkeys(counts, 0)
    # Which classes get one when there are more classes than places: the largest, then by the seed.
    order = sorted(counts, key=lambda label: (-counts[label], rank(seed, str(label))))
    for label in order[:total]:
        shares[label] = 1
    while sum(shares.values()) < total:
        left = total - sum(shares.values())
        room = {label: counts[label] - shares[label] for label in counts if counts[label] > shares[label]}
        weight = sum(counts[label] for label in room)
        quotas = {label: left * counts[label] / weight for label in room}
        given = {label: min(room[label], int(quota)) for label, quota in quotas.items()}
        if not any(given.values()):  # every quota below one: the largest remainders take one each
            for label in sorted(room, key=lambda label: (-quotas[label], rank(seed, str(label))))[:left]:
                given[label] = 1
        for label, extra in given.items():
            shares[label] += extra
    return shares


def choose(items: Iterable[tuple[str, Hashable]], total: int, seed: int) -> list[str]:
    """The keys of a sample of ``total`` of ``(key, label)`` items, stratified by label
    (``allocate``), each class's members drawn by ``rank``; in rank order."""
    by_label: dict[Hashable, list[str]] = {}
    for key, label in items:
        by_label.setdefault(label, []).append(key)
    shares = allocate({label: len(keys) for label, keys in by_label.items()}, total, seed)
    chosen = [key for label, keys in by_label.items()
              for key in sorted(keys, key=lambda key: rank(seed, key))[:shares.get(label, 0)]]
    return sorted(chosen, key=lambda key: rank(seed, key))


def describe(labels: Sequence[Hashable]) -> dict[str, int]:
    """What a sample holds, for reports: its images and classes."""
    return {"images": len(labels), "classes": len(set(labels))}
