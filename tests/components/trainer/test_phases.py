"""A phase's learning-rate schedule."""

import pytest

from components.trainer import phases
from components.trainer.params import TrainParams
from tests.components.trainer.sample_params import TINY


def test_cosine_schedule_warms_up_then_decays():
    schedule = phases.learning_rate(1e-3, 100, TINY)
    rates = [float(schedule(step)) for step in (0, 5, 10, 50, 99)]
    assert rates[0] == 0.0 and rates[1] == pytest.approx(5e-4) and rates[2] == pytest.approx(1e-3)
    assert rates[2] > rates[3] > rates[4] > 0
    assert phases.learning_rate(1e-3, 100, TrainParams(lr_schedule="constant", weights="none")) == 1e-3
