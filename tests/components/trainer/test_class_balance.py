"""Class counts read from example files, and the balanced class weights."""

import pytest

from components.trainer import class_balance


def test_balanced_class_weights_equalise_each_classes_total():
    weights = class_balance.balanced_class_weights({"a": 30, "b": 10, "c": 20}, ["a", "b", "c"])
    assert weights == pytest.approx([60 / 90, 60 / 30, 60 / 60])
    assert [w * n for w, n in zip(weights, (30, 10, 20))] == pytest.approx([20, 20, 20])
    assert class_balance.balanced_class_weights({"a": 3}, ["a", "b"]) == pytest.approx([0.5, 0.0])


def test_class_counts_read_the_labels_of_example_files(examples_file):
    assert class_balance.class_counts(examples_file) == {"red": 4, "green": 4, "blue": 4}
