"""The ImageValidator component refuses a policy that is not a ValidationPolicy."""

import pytest

from components.image_validator.component import ImageValidator


def test_component_rejects_a_bad_policy_argument():
    with pytest.raises(ValueError, match="ValidationPolicy"):
        ImageValidator(examples=None, policy={"min_width": 3})
