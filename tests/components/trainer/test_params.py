"""The Trainer's parameters: TrainParams through the custom config, the augmentation presets
as complete objects, and the README naming every preset."""

import dataclasses

import pytest

from components.trainer.params import PRESETS, AugmentParams, TrainParams
from tests.helpers import REPO_ROOT


def test_train_params_round_trip_through_custom_config():
    params = TrainParams(image_size=96, augment=AugmentParams(zoom=0.3))
    assert TrainParams.from_custom_config(params.to_custom_config()) == params


def test_a_preset_named_in_custom_config_or_code_sets_the_fields_left_unset():
    assert TrainParams.from_custom_config({"augment": {"preset": "none"}}).augment == PRESETS["none"]
    heavy = AugmentParams.from_preset("heavy", mixup_prob=0.0)
    assert heavy.cutmix_prob == 0.3 and heavy.mixup_prob == 0.0
    assert heavy == dataclasses.replace(PRESETS["heavy"], mixup_prob=0.0)
    assert TrainParams.from_custom_config({"augment": {"preset": "heavy", "mixup_prob": 0.0}}).augment == heavy


def test_presets_are_complete_objects_and_the_default_is_standard():
    assert list(PRESETS) == ["none", "light", "standard", "heavy"]
    for name, preset in PRESETS.items():
        assert isinstance(preset, AugmentParams) and preset.preset == name
        assert all(value is not None for value in dataclasses.asdict(preset).values())
    assert AugmentParams() == PRESETS["standard"]
    assert not any(PRESETS["none"].probabilities().values())
    with pytest.raises(ValueError, match=r"Unknown augmentation preset 'wild'.*'heavy'"):
        AugmentParams.from_preset("wild")


def test_readme_documents_every_preset():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert all(f"`{name}`" in readme for name in PRESETS)
