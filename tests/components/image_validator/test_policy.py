"""The validation policy checks its own values."""

import pytest

from components.image_validator.policy import ValidationPolicy


def test_policy_validates_its_values():
    with pytest.raises(ValueError, match="max_rejected_fraction"):
        ValidationPolicy(max_rejected_fraction=1.5)
    with pytest.raises(ValueError, match="Minimum image sides"):
        ValidationPolicy(min_width=100, max_width=50)
