"""interpretation: misclassified images, the gallery's choice and calibration, on known numbers."""

import csv

import numpy as np
import pytest

from pipeline import interpretation
from pipeline.interpretation import EvalPrediction

LABELS = ["ants", "bees", "wasps"]


def _prediction(path, label, probabilities):
    return EvalPrediction(path, label, np.array(probabilities, dtype=np.float64))


PREDICTIONS = [
    _prediction("a1.jpg", 0, [0.9, 0.05, 0.05]),   # right, sure
    _prediction("a2.jpg", 0, [0.3, 0.6, 0.1]),     # wrong: bees 0.6
    _prediction("a3.jpg", 0, [0.1, 0.1, 0.8]),     # wrong: wasps 0.8
    _prediction("b1.jpg", 1, [0.45, 0.55, 0.0]),   # right, unsure
    _prediction("b2.jpg", 1, [0.95, 0.05, 0.0]),   # wrong: ants 0.95
    _prediction("w1.jpg", 2, [0.2, 0.2, 0.6]),     # right
]


def test_misclassified_are_the_wrong_ones_most_confident_first():
    assert [p.path for p in interpretation.misclassified(PREDICTIONS)] == ["b2.jpg", "a3.jpg", "a2.jpg"]


def test_the_gallery_takes_the_worst_few_per_true_class():
    chosen = interpretation.gallery(PREDICTIONS, LABELS, per_class=1)
    assert {name: [p.path for p in items] for name, items in chosen.items()} == {
        "ants": ["a3.jpg"], "bees": ["b2.jpg"], "wasps": []}


def test_the_right_answers_shown_are_a_seeded_sample_across_classes():
    # 30 right answers per class, listed class by class: the head of the list is all ants.
    many = [_prediction(f"{name}/{i:02d}.jpg", label, np.eye(3)[label]) for label, name in enumerate(LABELS)
            for i in range(30)]
    shown = interpretation.correct_sample(many, 3, seed=1)
    assert sorted(p.label for p in shown) == [0, 1, 2]  # one of each class, not the first three ants
    assert shown == interpretation.correct_sample(list(reversed(many)), 3, seed=1)  # whatever the order
    assert {p.path for p in shown} != {p.path for p in interpretation.correct_sample(many, 3, seed=2)}
    assert not {p.path for p in interpretation.correct_sample(PREDICTIONS, 6, seed=1)} & {
        "a2.jpg", "a3.jpg", "b2.jpg"}  # only right answers


def test_misclassified_csv_lists_every_mistake_with_both_probabilities(tmp_path):
    path = tmp_path / "misclassified.csv"
    assert interpretation.write_misclassified(PREDICTIONS, LABELS, str(path)) == 3
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    assert rows[0] == {"path": "b2.jpg", "true_class": "bees", "predicted_class": "ants", "probability": "0.950000",
                       "true_class_probability": "0.050000"}


def test_expected_calibration_error_by_hand():
    found = interpretation.calibration(PREDICTIONS, bins=10)
    # Bins with images: (0.5, 0.6] a2 0.6 wrong, b1 0.55 right, w1 0.6 right -> conf 0.5833, acc 0.6667;
    # (0.7, 0.8] a3 0.8 wrong; (0.8, 0.9] a1 0.9 right; (0.9, 1.0] b2 0.95 wrong.
    expected = (3 / 6) * abs(2 / 3 - (0.6 + 0.55 + 0.6) / 3) + (1 / 6) * 0.8 + (1 / 6) * 0.1 + (1 / 6) * 0.95
    assert found["ece"] == pytest.approx(expected, abs=1e-4)
    assert found["images"] == 6 and sum(b["count"] for b in found["bins"]) == 6
    assert found["accuracy"] == pytest.approx(0.5)
    by_low = {b["low"]: b for b in found["bins"]}
    assert by_low[0.5]["count"] == 3 and by_low[0.5]["accuracy"] == pytest.approx(0.6667, abs=1e-4)


def test_a_perfectly_calibrated_model_scores_zero():
    sure = [_prediction(f"{i}.jpg", 0, [1.0, 0.0, 0.0]) for i in range(4)]
    assert interpretation.calibration(sure)["ece"] == 0.0
