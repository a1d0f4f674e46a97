"""Every knob of the pipeline in one typed, frozen dataclass, plus its CLI flags.

``PipelineConfig()`` holds the full defaults (224x224, ImageNet weights);
``PipelineConfig.demo()`` the small and fast preset for the built-in demo data
and tests.  ``parse_args`` turns ``local_runner.py`` flags into a config: every
field has a flag, and only the flags given override the preset.
"""

import argparse
import dataclasses
import os
import typing
from typing import Any, Dict, List, Optional, Tuple

from components.image_validator.policy import ValidationPolicy
from components.knobs import HELP, add_flag, knob
from components.trainer.params import AugmentParams, TrainParams

# Field metadata: the flag prefix of a nested dataclass's fields ("" for none).
FLAG_PREFIX = "flag_prefix"

# The component image kubeflow_runner.py names by default (`make image` builds it).
DEFAULT_IMAGE = "tfx-image-classifier:0.1.0"
# Where the Dockerfile puts this project inside the image.
IMAGE_PROJECT_DIR = "/pipeline"


@dataclasses.dataclass(frozen=True)
class KubeflowParams:
    """What only ``kubeflow_runner.py`` reads: the image the steps run in, where they
    write, and what the Trainer step asks the cluster for."""

    image: str = knob(DEFAULT_IMAGE, "Container image of every step (built from the Dockerfile).")
    pipeline_root: Optional[str] = knob(
        None, "Where the steps write artifacts: a URI TensorFlow reads (gs://...) or a path every pod "
        "mounts; none: <output-dir>/pipeline_root."
    )
    project_dir: str = knob(IMAGE_PROJECT_DIR, "Where the image holds this project (the Dockerfile's WORKDIR).")
    trainer_gpus: int = knob(1, "GPUs the Trainer step requests; 0: none.")
    gpu_type: str = knob(
        "nvidia.com/gpu", "Accelerator type of those GPUs: the resource name on Kubeflow (nvidia.com/gpu), "
        "the accelerator on Vertex AI (e.g. NVIDIA_TESLA_T4)."
    )
    trainer_cpus: float = knob(0.0, "CPUs the Trainer step may use; 0: the cluster's default.")
    trainer_memory_gb: float = knob(0.0, "Memory (GB) the Trainer step may use; 0: the cluster's default.")

    def __post_init__(self):
        if not self.image:
            raise ValueError("kubeflow.image must not be empty.")
        if self.trainer_gpus < 0 or self.trainer_cpus < 0 or self.trainer_memory_gb < 0:
            raise ValueError("kubeflow trainer_gpus, trainer_cpus and trainer_memory_gb must not be negative.")
        if self.trainer_gpus and not self.gpu_type:
            raise ValueError("kubeflow.gpu_type must be set when trainer_gpus is.")


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    pipeline_name: str = knob("image-classifier", "TFX pipeline name.")
    data_dir: Optional[str] = knob(
        None, "Folder of <class>/<image> or <split>/<class>/<image>; none: built-in demo data."
    )
    output_dir: str = knob("output", "Where artifacts, metadata, served models and summary.json go.")
    serving_model_name: str = knob("image_classifier", "Model name under <output-dir>/serving/.")
    keep_versions: int = knob(3, "Served versions kept under <output-dir>/serving/<model-name>/; older ones go.")
    model_server_base_path: Optional[str] = knob(
        None, "Where TF Serving sees <output-dir>/serving, for models.config (e.g. /models in its container); "
        "none: the real path."
    )
    num_classes: Optional[int] = knob(
        None, "Class ids the per-class eval metrics cover; none: the class folders counted in --data-dir."
    )
    train: TrainParams = dataclasses.field(default_factory=TrainParams, metadata={FLAG_PREFIX: ""})
    validation: ValidationPolicy = dataclasses.field(default_factory=ValidationPolicy)
    train_hash_buckets: int = knob(4, "Hash buckets of the train split when the data has no split folders.")
    eval_hash_buckets: int = knob(1, "Hash buckets of the eval split when the data has no split folders.")
    min_accuracy: float = knob(0.6, "Eval accuracy a model needs to be blessed.")
    max_accuracy_drop: float = knob(
        0.0, "Accuracy a model may lose against the last blessed model and still be blessed."
    )
    beam_workers: int = knob(
        0, "Worker processes of the local Beam runner (its multi-processing mode); 1: Beam runs in the "
        "pipeline's own process; 0: chosen for you (one per core with 4 cores or more and 10,000 files or more, "
        "else 1: each worker imports TensorFlow, which small runs never earn back)."
    )
    beam_args: Tuple[str, ...] = knob(
        (), "More Beam pipeline args, as one quoted string: e.g. '--runner=DataflowRunner --project=P "
        "--region=R --temp_location=gs://B/tmp' (then --beam-workers does not apply)."
    )
    enable_cache: bool = knob(True, "Reuse component results when their inputs have not changed.")
    demo_images_per_class: int = knob(60, "Images per class in the generated demo data.")
    kubeflow: KubeflowParams = dataclasses.field(default_factory=KubeflowParams, metadata={FLAG_PREFIX: "kfp-"})

    def __post_init__(self):
        if not self.pipeline_name or not self.serving_model_name:
            raise ValueError("pipeline_name and serving_model_name must not be empty.")
        if not 0.0 <= self.min_accuracy <= 1.0:
            raise ValueError(f"min_accuracy must be in [0, 1], got {self.min_accuracy}.")
        if not 0.0 <= self.max_accuracy_drop <= 1.0:
            raise ValueError(f"max_accuracy_drop must be in [0, 1], got {self.max_accuracy_drop}.")
        if self.train_hash_buckets < 1 or self.eval_hash_buckets < 1:
            raise ValueError("train_hash_buckets and eval_hash_buckets must be at least 1.")
        if self.keep_versions < 1 or (self.num_classes is not None and self.num_classes < 2):
            raise ValueError("keep_versions must be at least 1 and num_classes (when set) at least 2.")
        if self.beam_workers < 0:
            raise ValueError(f"beam_workers must be 0 (one per core) or more, got {self.beam_workers}.")
        if self.demo_images_per_class < 4:
            raise ValueError(f"demo_images_per_class must be at least 4, got {self.demo_images_per_class}.")

    @classmethod
    def demo(cls, **overrides) -> "PipelineConfig":
        """Small images and a short schedule: a few minutes on 2 CPU cores."""
        train = TrainParams(
            image_size=64,
            batch_size=16,
            head_epochs=2,
            finetune_epochs=8,
            head_learning_rate=3e-3,
            # From random init the whole backbone trains (unfreeze_layers=-1), so
            # phase 2 uses a from-scratch learning rate rather than a fine-tuning one.
            finetune_learning_rate=1e-3,
            weights="none",
            unfreeze_layers=-1,
            shuffle_buffer=256,
            # From random init BatchNorm trains, so the eval loss swings for the
            # first epochs: early stopping would keep an early, worse model.
            early_stopping_patience=0,
            # The demo's classes differ by colour: no hue or saturation changes.
            augment=AugmentParams.from_preset("light"),
        )
        return dataclasses.replace(cls(train=train, min_accuracy=0.8, demo_images_per_class=100), **overrides)

    # Everything the pipeline writes lives under output_dir.
    @property
    def pipeline_root(self) -> str:
        return os.path.join(self.output_dir, "pipeline_root")

    @property
    def metadata_path(self) -> str:
        return os.path.join(self.output_dir, "metadata.sqlite")

    @property
    def serving_base_dir(self) -> str:
        """TF Serving's base: one folder per model, and models.config."""
        return os.path.join(self.output_dir, "serving")

    @property
    def serving_model_dir(self) -> str:
        return os.path.join(self.serving_base_dir, self.serving_model_name)

    @property
    def demo_data_dir(self) -> str:
        return os.path.join(self.output_dir, "demo_data")

    @property
    def summary_path(self) -> str:
        return os.path.join(self.output_dir, "summary.json")


# --- command-line flags ----------------------------------------------------


def _flag_fields(cls, prefix: str = "", path: Tuple[str, ...] = ()):
    """Yields (flag name, field path, field) for every leaf field of ``cls``."""
    for field in dataclasses.fields(cls):
        field_type = typing.get_type_hints(cls)[field.name]
        if dataclasses.is_dataclass(field_type):
            nested_prefix = field.metadata.get(FLAG_PREFIX, field.name + "-")
            yield from _flag_fields(field_type, prefix + nested_prefix, path + (field.name,))
        else:
            yield prefix + field.name.replace("_", "-"), path + (field.name,), field_type


LOCAL_DESCRIPTION = "Run the image classification pipeline locally (LocalDagRunner, Beam, ML Metadata in SQLite)."


def build_arg_parser(description: str = LOCAL_DESCRIPTION, kubeflow: bool = False) -> argparse.ArgumentParser:
    """Flags of every config field; the ``--kfp-*`` ones only when ``kubeflow``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--preset",
        choices=("demo", "full"),
        help="Starting values for every field: 'demo' (small and fast) or 'full' (224 px, ImageNet weights). "
        "Default: demo without --data-dir, full with it.",
    )
    parser.add_argument("--epochs", type=int, help="Shorthand: sets both --head-epochs and --finetune-epochs.")
    full, demo = _defaults(PipelineConfig()), _defaults(PipelineConfig.demo())
    for flag, path, field_type in _flag_fields(PipelineConfig):
        if path[0] == "kubeflow" and not kubeflow:
            continue
        dest = ".".join(path)
        default_text = f"full: {full[dest]!r}, demo: {demo[dest]!r}"
        help_text = f"{_help_for(path)} ({default_text})".strip().replace("%", "%%")
        add_flag(parser, flag, dest, field_type, help_text)
    return parser


def _help_for(path: Tuple[str, ...]) -> str:
    cls = PipelineConfig
    for name in path[:-1]:
        cls = typing.get_type_hints(cls)[name]
    field = {f.name: f for f in dataclasses.fields(cls)}[path[-1]]
    return field.metadata.get(HELP, "")


def _defaults(config) -> Dict[str, Any]:
    flat = {}
    for _, path, _ in _flag_fields(PipelineConfig):
        value = config
        for name in path:
            value = getattr(value, name)
        flat[".".join(path)] = value
    return flat


def from_dict(values: Dict[str, Any]) -> PipelineConfig:
    """Inverse of ``dataclasses.asdict`` for PipelineConfig."""
    values = dict(values)
    values["train"] = TrainParams.from_custom_config(values["train"])
    values["validation"] = ValidationPolicy.from_dict(values["validation"])
    values["kubeflow"] = KubeflowParams(**values["kubeflow"])
    values["beam_args"] = tuple(values["beam_args"])
    return PipelineConfig(**values)


def parse_args(
    argv: Optional[List[str]] = None, parser: Optional[argparse.ArgumentParser] = None
) -> PipelineConfig:
    """Builds the config from flags; invalid values exit with a usage error.

    ``parser`` (from ``build_arg_parser``) may carry more arguments; their values
    are ignored here.
    """
    parser = parser or build_arg_parser()
    known = set(_defaults(PipelineConfig())) | {"preset", "epochs"}
    args = {dest: value for dest, value in vars(parser.parse_args(argv)).items() if dest in known}
    preset = args.pop("preset") or ("demo" if args.get("data_dir") is None else "full")
    epochs = args.pop("epochs")
    if epochs is not None:
        for phase in ("train.head_epochs", "train.finetune_epochs"):
            if args[phase] is None:
                args[phase] = epochs
    values = dataclasses.asdict(PipelineConfig.demo() if preset == "demo" else PipelineConfig())
    try:
        augment_preset = args.pop("train.augment.preset")
        if augment_preset is not None:
            # A preset sets every augment field; the other --augment-* flags then override.
            values["train"]["augment"] = dataclasses.asdict(AugmentParams.from_preset(augment_preset))
        for dest, value in args.items():
            if value is not None:
                *parents, name = dest.split(".")
                target = values
                for parent in parents:
                    target = target[parent]
                target[name] = value
        return from_dict(values)
    except (TypeError, ValueError) as error:
        parser.error(str(error))
        raise  # unreachable: parser.error exits
