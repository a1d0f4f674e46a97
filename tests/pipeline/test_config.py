"""The typed config: its presets, the runner's flags and the YAML config file."""

import dataclasses

import pytest

from components.trainer.params import AugmentParams
from pipeline import config as config_lib
from pipeline.config import PipelineConfig


def test_without_data_dir_the_demo_preset_is_used():
    config = config_lib.parse_args([])
    assert config == PipelineConfig.demo()
    assert config.data_dir is None and config.train.weights == "none"


def test_with_data_dir_the_full_preset_is_used():
    config = config_lib.parse_args(["--data-dir", "/data"])
    assert config == dataclasses.replace(PipelineConfig(), data_dir="/data")
    assert config.train.image_size == 224 and config.train.weights == "imagenet"
    # Beam's multi-processing direct runner, one worker per core.
    assert config.beam_workers == 0 and PipelineConfig.demo().beam_workers == 0


def test_flags_override_nested_fields():
    config = config_lib.parse_args(
        [
            "--data-dir", "/data", "--image-size", "64", "--epochs", "1", "--weights", "none",
            "--output-dir", "/tmp/h", "--augment-rotation", "0.2", "--augment-horizontal-flip", "0",
            "--augment-preset", "heavy", "--no-augment-color", "--cache", "none",
            "--beam-args", "--direct_running_mode=multi_processing --direct_num_workers=2",
            "--finetune-epochs", "3", "--min-accuracy", "0.7", "--seed", "5",
        ]
    )
    assert config.output_dir == "/tmp/h" and config.min_accuracy == 0.7
    assert config.train.image_size == 64 and config.train.weights == "none" and config.train.seed == 5
    # --weights none: the from-scratch recipe, one phase; --finetune-epochs given wins over --epochs.
    assert config.train.recipe == "from-scratch"
    assert (config.train.head_epochs, config.train.finetune_epochs) == (0, 3)
    fine_tune = config_lib.parse_args(["--data-dir", "/d", "--epochs", "1", "--finetune-epochs", "3"]).train
    assert (fine_tune.head_epochs, fine_tune.finetune_epochs) == (1, 3)
    # The preset sets every augment field, then single flags override.
    augment = config.train.augment
    assert augment.preset == "heavy" and augment.mixup_prob == 0.3 and augment.color is False
    assert augment.rotation == 0.2 and augment.horizontal_flip == 0.0
    assert config.train.cache == "none"
    assert config.beam_args == ("--direct_running_mode=multi_processing", "--direct_num_workers=2")


def test_every_field_has_a_flag_and_kubeflow_settings_only_in_the_kubeflow_runner():
    local_help = config_lib.build_arg_parser().format_help()
    kubeflow_help = config_lib.build_arg_parser(kubeflow=True).format_help()
    for flag, path, _ in config_lib._flag_fields(PipelineConfig):  # pylint: disable=protected-access
        assert f"--{flag}" in kubeflow_help
        assert (f"--{flag}" in local_help) == (path[0] != "kubeflow"), flag


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--image-size", "8"], "image_size must be at least 32"),
        (["--min-accuracy", "1.5"], "min_accuracy must be in"),
        (["--augment-zoom", "2"], "augment.zoom must be in"),
        (["--augment-preset", "sparkly"], "Unknown augmentation preset"),
        (["--augment-hue-prob", "1.5"], "augment.hue_prob is a probability"),
        (["--batch-size", "many"], "invalid int value"),
        (["--epochs", "0"], "Nothing would be trained"),
        (["--no-such-flag"], "unrecognized arguments"),
        (["--cache", "memroy"], "cache must be 'auto', 'memory', 'none' or a directory path"),
        (["--augment-mixup-prob", "0.7", "--augment-cutmix-prob", "0.5"], "mixup_prob + augment.cutmix_prob"),
        (["--augment-crop-aspect", "0.5"], "augment.crop_aspect is the largest aspect ratio: it must be at least 1, "
                                           "got 0.5"),
        (["--augment-cutmix-alpha", "0"], "augment.cutmix_alpha is a Beta alpha: it must be above 0, got 0.0"),
        (["--image-size", "64", "--augment-blur-prob", "0.5", "--augment-blur", "25"],
         "augment.blur 25.0 reaches 75 pixels (3 sigma), which must be less than the image size, 64"),
    ],
)
def test_bad_flags_exit_with_a_clear_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        config_lib.parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_validation_policy_flags():
    config = config_lib.parse_args(
        ["--validation-allowed-formats", "jpeg PNG", "--validation-max-rejected-fraction", "0.5",
         "--no-validation-convert-cmyk", "--validation-min-examples-per-class", "10"]
    )
    assert config.validation.allowed_formats == ("jpeg", "png")
    assert config.validation.max_rejected_fraction == 0.5 and config.validation.convert_cmyk is False
    assert config.validation.min_examples_per_class == 10


def test_beam_workers_must_not_be_negative(capsys):
    with pytest.raises(SystemExit):
        config_lib.parse_args(["--beam-workers", "-1"])
    assert "beam_workers must be 0 (one per core) or more" in capsys.readouterr().err


def test_new_flags_reach_the_config():
    config = config_lib.parse_args(["--keep-versions", "5", "--num-classes", "7", "--warm-start",
                                    "--label-smoothing", "0", "--class-weights", "none", "--mixed-precision", "off",
                                    "--model-server-base-path", "/models"])
    assert (config.keep_versions, config.num_classes, config.model_server_base_path) == (5, 7, "/models")
    assert config.train.warm_start and config.train.label_smoothing == 0 and config.train.class_weights == "none"
    assert config.train.mixed_precision == "off"
    with pytest.raises(SystemExit):
        config_lib.parse_args(["--keep-versions", "0"])


def test_print_config_feeds_back_through_a_config_file_and_flags_override_it(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        config_lib.parse_args(["--data-dir", "/data", "--print-config"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert config_lib.to_yaml(dataclasses.replace(PipelineConfig(), data_dir="/data")) == printed
    edited = tmp_path / "run.yaml"
    edited.write_text(printed.replace("  batch_size: 32\n", "  batch_size: 8\n").replace(
        "min_accuracy: 0.6\n", "min_accuracy: 0.75\n"))
    config = config_lib.parse_args(["--config", str(edited)])
    assert config.train.batch_size == 8 and config.min_accuracy == 0.75 and config.data_dir == "/data"
    assert config == dataclasses.replace(PipelineConfig(), data_dir="/data", min_accuracy=0.75,
                                         train=dataclasses.replace(PipelineConfig().train, batch_size=8))
    assert config_lib.parse_args(["--config", str(edited), "--batch-size", "4"]).train.batch_size == 4


def test_a_partial_config_file_sets_only_its_fields(tmp_path):
    partial = tmp_path / "partial.yaml"
    partial.write_text("train:\n  finetune_learning_rate: 1e-4\n  augment:\n    preset: heavy\n    mixup_prob: 0\n"
                       "validation:\n  max_rejected_fraction: 0.5\n")
    config = config_lib.parse_args(["--config", str(partial)])
    assert config.train.finetune_learning_rate == 1e-4  # YAML reads 1e-4 as text; the field's type wins
    assert config.train.augment == AugmentParams.from_preset("heavy", mixup_prob=0.0)
    assert config.validation.max_rejected_fraction == 0.5
    assert config.train.image_size == PipelineConfig.demo().train.image_size  # no data_dir: the demo preset


@pytest.mark.parametrize(
    "text, message",
    [
        ("train:\n  head_epoch: 3\n", "unknown config key 'train.head_epoch'; did you mean 'train.head_epochs'?"),
        ("trian:\n  seed: 3\n", "unknown config key 'trian'; did you mean 'train'?"),
        ("train:\n  augment:\n    mixup_pro: 0.1\n", "did you mean 'train.augment.mixup_prob'?"),
        ("train: 3\n", "train must be a mapping of fields"),
        ("train:\n  head_epochs: 2.5\n", "train.head_epochs must be a whole number, got 2.5"),
        ("train:\n  warm_start: maybe\n", "train.warm_start must be true or false"),
        ("[1, 2]\n", "the file must be a mapping of fields"),
    ],
)
def test_a_bad_config_file_is_refused_by_name(tmp_path, capsys, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SystemExit) as exit_info:
        config_lib.parse_args(["--config", str(path)])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_missing_config_file_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        config_lib.parse_args(["--config", str(tmp_path / "none.yaml")])
    assert f"Cannot read the config file {tmp_path / 'none.yaml'}" in capsys.readouterr().err


def test_the_recipe_follows_the_weights_and_explicit_settings_win(tmp_path):
    scratch = config_lib.parse_args(["--data-dir", "/d", "--weights", "none"]).train
    assert scratch.recipe == "from-scratch" and scratch.unfreeze_layers == -1
    assert (scratch.head_epochs, scratch.finetune_epochs) == (0, 5)  # the preset's 3 + 2, in one phase
    assert scratch.finetune_learning_rate == 1e-3 and scratch.early_stopping_patience == 0
    given = config_lib.parse_args(["--data-dir", "/d", "--weights", "none", "--finetune-learning-rate", "3e-4",
                                   "--epochs", "7"]).train
    assert given.finetune_learning_rate == 3e-4 and (given.head_epochs, given.finetune_epochs) == (0, 7)
    forced = config_lib.parse_args(["--data-dir", "/d", "--weights", "none", "--recipe", "fine-tune"]).train
    assert forced == dataclasses.replace(PipelineConfig().train, weights="none")
    # The demo preset trains from scratch; given ImageNet weights it fine-tunes.
    demo = config_lib.parse_args(["--weights", "imagenet"]).train
    assert demo.recipe == "fine-tune" and demo.unfreeze_layers == 30 and demo.finetune_learning_rate == 1e-5
    assert (demo.head_epochs, demo.finetune_epochs) == (5, 5)
    file = tmp_path / "recipe.yaml"
    file.write_text("train:\n  weights: none\n  unfreeze_layers: 10\n")
    from_file = config_lib.parse_args(["--data-dir", "/d", "--config", str(file)]).train
    assert from_file.recipe == "from-scratch" and from_file.unfreeze_layers == 10
    with pytest.raises(SystemExit):
        config_lib.parse_args(["--recipe", "transfer"])
