"""Samples stratified by class and drawn by the seed."""

import collections

from components import sampling


def _items(sizes: dict[str, int]):
    """Items listed class by class, as a folder lists them."""
    return [(f"{label}/{i:04d}.jpg", label) for label, size in sizes.items() for i in range(size)]


def test_every_class_gets_its_share_and_at_least_one():
    shares = sampling.allocate({"a": 900, "b": 90, "c": 10}, 100)
    assert sum(shares.values()) == 100 and min(shares.values()) >= 1
    assert shares["a"] > shares["b"] > shares["c"]
    assert abs(shares["a"] - 89) <= 1  # one each first, the rest in proportion
    # More places than items: every item; fewer places than classes: the largest classes first.
    assert sampling.allocate({"a": 2, "b": 1}, 10) == {"a": 2, "b": 1}
    assert sampling.allocate({"a": 5, "b": 50, "c": 7}, 2) == {"a": 0, "b": 1, "c": 1}
    assert sampling.allocate({"a": 3, "b": 0}, 5) == {"a": 3}


def test_a_sample_of_a_class_sorted_listing_covers_every_class_in_proportion():
    items = _items({f"class_{i:02d}": 500 for i in range(40)})
    chosen = sampling.choose(items, 100, seed=42)
    per_class = collections.Counter(path.split("/")[0] for path in chosen)
    assert len(chosen) == 100 and len(per_class) == 40 and set(per_class.values()) <= {2, 3}
    # Not the head of each class: drawn from anywhere in it.
    assert max(int(path.split("/")[1][:4]) for path in chosen) > 100


def test_the_seed_fixes_the_sample_whatever_the_order_of_the_items():
    items = _items({"ants": 120, "bees": 80})
    first = sampling.choose(items, 10, seed=1)
    assert first == sampling.choose(list(reversed(items)), 10, seed=1)
    assert set(first) != set(sampling.choose(items, 10, seed=2))
    assert sampling.describe([path.split("/")[0] for path in first]) == {"images": 10, "classes": 2}
