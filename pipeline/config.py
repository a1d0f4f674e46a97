"""Every knob of the pipeline in one typed, frozen dataclass, plus its CLI flags and YAML file.

``PipelineConfig()`` holds the full defaults (224x224, ImageNet weights);
``PipelineConfig.demo()`` the small and fast preset for the built-in demo data
and tests.  ``parse_args`` builds a config from, in order: the preset, a YAML
file (``--config``, nested like the dataclasses), the training recipe that
follows the weights, and the flags given.  ``to_yaml`` writes a config in the
file's format (``--print-config``).
"""

import argparse
import dataclasses
import difflib
import os
import typing
from typing import Any, Optional

import yaml

from components.image_validator.policy import ValidationPolicy
from components.knobs import HELP, add_flag, knob
from components.trainer.params import FINE_TUNE, FROM_SCRATCH, RECIPES, AugmentParams, TrainParams

# Field metadata: the flag prefix of a nested dataclass's fields ("" for none).
FLAG_PREFIX = "flag_prefix"

# The component image kubeflow_runner.py names by default (`make image` builds it).
DEFAULT_IMAGE = "tfx-image-classifier:0.1.0"
# The effective config a local run saves in its output folder.
CONFIG_FILE = "config.yaml"
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
    predict_dir: Optional[str] = knob(
        None, "Folder of unlabelled images (any layout) the blessed model scores after the push, with TFX's "
        "BulkInferrer; the rows go to <output-dir>/predictions.csv."
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
    beam_args: tuple[str, ...] = knob(
        (), "More Beam pipeline args, as one quoted string: e.g. '--runner=DataflowRunner --project=P "
        "--region=R --temp_location=gs://B/tmp' (then --beam-workers does not apply)."
    )
    enable_cache: bool = knob(True, "Reuse component results when their inputs have not changed.")
    misclassified_per_class: int = knob(
        6, "Misclassified eval images the run report shows per true class, the most confident first, with "
        "Grad-CAM maps (misclassified.csv lists them all)."
    )
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
        if self.misclassified_per_class < 0:
            raise ValueError(f"misclassified_per_class must be 0 or more, got {self.misclassified_per_class}.")
        if self.demo_images_per_class < 4:
            raise ValueError(f"demo_images_per_class must be at least 4, got {self.demo_images_per_class}.")

    @classmethod
    def demo(cls, **overrides) -> "PipelineConfig":
        """Small images and a short schedule: a few minutes on 2 CPU cores."""
        train = TrainParams(
            image_size=64,
            batch_size=16,
            weights="none",
            recipe=FROM_SCRATCH,
            **{**RECIPES[FROM_SCRATCH], "finetune_epochs": 10},
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
    def config_path(self) -> str:
        return os.path.join(self.output_dir, CONFIG_FILE)

    @property
    def summary_path(self) -> str:
        return os.path.join(self.output_dir, "summary.json")

    @property
    def predictions_path(self) -> str:
        """The rows of the --predict-dir images (their failures beside it, in predictions.failed.csv)."""
        return os.path.join(self.output_dir, "predictions.csv")


# --- command-line flags ----------------------------------------------------


def _flag_fields(cls, prefix: str = "", path: tuple[str, ...] = ()):
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
    parser.add_argument("--epochs", type=int, help="Shorthand: epochs of each phase of the recipe (fine-tune: "
                        "--head-epochs and --finetune-epochs; from-scratch: its one phase).")
    add_config_file_flags(parser)
    # --help in sections, as the config file nests them; the fine-grained ones last.
    groups = {
        "": parser.add_argument_group("run"),
        "train": parser.add_argument_group("training (config file: train)"),
        "train.augment": parser.add_argument_group(
            "augmentation of the training split (config file: train.augment; a preset sets them all)"),
        "validation": parser.add_argument_group("image validation policy (config file: validation)"),
        "kubeflow": parser.add_argument_group("Kubeflow and Vertex AI (config file: kubeflow)"),
    }
    full, demo = _defaults(PipelineConfig()), _defaults(PipelineConfig.demo())
    for flag, path, field_type in _flag_fields(PipelineConfig):
        if path[0] == "kubeflow" and not kubeflow:
            continue
        dest = ".".join(path)
        default_text = f"full: {full[dest]!r}, demo: {demo[dest]!r}"
        help_text = f"{_help_for(path)} ({default_text})".strip().replace("%", "%%")
        add_flag(groups[".".join(path[:-1])], flag, dest, field_type, help_text)
    return parser


def _help_for(path: tuple[str, ...]) -> str:
    cls = PipelineConfig
    for name in path[:-1]:
        cls = typing.get_type_hints(cls)[name]
    field = {f.name: f for f in dataclasses.fields(cls)}[path[-1]]
    return field.metadata.get(HELP, "")


def _defaults(config) -> dict[str, Any]:
    flat = {}
    for _, path, _ in _flag_fields(PipelineConfig):
        value = config
        for name in path:
            value = getattr(value, name)
        flat[".".join(path)] = value
    return flat


def from_dict(values: dict[str, Any]) -> PipelineConfig:
    """Inverse of ``dataclasses.asdict`` for PipelineConfig."""
    values = dict(values)
    values["train"] = TrainParams.from_custom_config(values["train"])
    values["validation"] = ValidationPolicy.from_dict(values["validation"])
    values["kubeflow"] = KubeflowParams(**values["kubeflow"])
    values["beam_args"] = tuple(values["beam_args"])
    return PipelineConfig(**values)


CONFIG_FILE_HELP = ("YAML file of config fields, nested like --print-config prints them (any subset); "
                    "the flags given override it.")


def add_config_file_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help=CONFIG_FILE_HELP)
    parser.add_argument("--print-config", action="store_true",
                        help="Print the effective config as YAML (for --config) and exit.")


def to_yaml(config: PipelineConfig) -> str:
    """The config in the format ``--config`` reads: every field, nested."""
    def plain(value):
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        return list(value) if isinstance(value, tuple) else value
    return yaml.safe_dump(plain(dataclasses.asdict(config)), sort_keys=False, default_flow_style=False,
                          allow_unicode=True)


def _field_types(cls=PipelineConfig, path: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every dotted field name: its type, or the dataclass of a section."""
    types = {}
    for field in dataclasses.fields(cls):
        field_type = typing.get_type_hints(cls)[field.name]
        key = ".".join(path + (field.name,))
        types[key] = field_type
        if dataclasses.is_dataclass(field_type):
            types.update(_field_types(field_type, path + (field.name,)))
    return types


def _coerce(value: Any, field_type, key: str) -> Any:
    """A YAML value as the field's type (YAML reads 1e-5 as text, 3 where 3.0 is meant)."""
    optional = typing.get_origin(field_type) is typing.Union and type(None) in typing.get_args(field_type)
    base = next((t for t in typing.get_args(field_type) if t is not type(None)), field_type) if optional else field_type
    if value is None and optional:
        return None
    try:
        if base is bool and isinstance(value, bool):
            return value
        if base in (int, float) and not isinstance(value, bool) and isinstance(value, (int, float, str)):
            number = base(value) if base is float or not isinstance(value, float) else None
            if number is not None and (base is float or float(value) == number):
                return number
        if base is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        if base == tuple[str, ...] and isinstance(value, (list, tuple, str)):
            return tuple(value.split()) if isinstance(value, str) else tuple(str(item) for item in value)
    except ValueError:
        pass
    expected = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}.get(base, "a list")
    raise ValueError(f"{key} must be {expected}{' or null' if optional else ''}, got {value!r}.")


def load_config_file(path: str) -> dict[str, Any]:
    """The fields a YAML config file sets, by dotted name (``train.head_epochs``)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as error:
        raise ValueError(f"Cannot read the config file {path}: {error.strerror}.") from error
    except yaml.YAMLError as error:
        raise ValueError(f"{path} is not valid YAML: {error}") from error
    types = _field_types()
    values: dict[str, Any] = {}

    def walk(mapping, prefix: str) -> None:
        if not isinstance(mapping, dict):
            raise ValueError(f"{path}: {prefix.rstrip('.') or 'the file'} must be a mapping of fields, "
                             f"got {mapping!r}.")
        for name, value in mapping.items():
            key = f"{prefix}{name}"
            if key not in types:
                siblings = [k[len(prefix):] for k in types if k.startswith(prefix) and "." not in k[len(prefix):]]
                close = difflib.get_close_matches(str(name), siblings, n=1, cutoff=0.6)
                hint = f"; did you mean '{prefix}{close[0]}'?" if close else ""
                raise ValueError(f"{path}: unknown config key '{key}'{hint}")
            if dataclasses.is_dataclass(types[key]):
                walk(value, key + ".")
            else:
                values[key] = _coerce(value, types[key], f"{path}: {key}")

    walk({} if data is None else data, "")
    return values


def _set(values: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, name = dotted.split(".")
    for parent in parents:
        values = values[parent]
    values[name] = value


def parse_args(
    argv: Optional[list[str]] = None, parser: Optional[argparse.ArgumentParser] = None
) -> PipelineConfig:
    """Builds the config from flags and ``--config``; invalid values exit with a usage
    error, and ``--print-config`` prints the result and exits.

    ``parser`` (from ``build_arg_parser``) may carry more arguments; their values
    are ignored here.
    """
    parser = parser or build_arg_parser()
    namespace = parser.parse_args(argv)
    known = set(_defaults(PipelineConfig()))
    flags = {dest: value for dest, value in vars(namespace).items() if dest in known and value is not None}
    try:
        given = {**(load_config_file(namespace.config) if namespace.config else {}), **flags}
        data_dir = given.get("data_dir")
        preset = namespace.preset or ("demo" if data_dir is None else "full")
        values = dataclasses.asdict(PipelineConfig.demo() if preset == "demo" else PipelineConfig())
        train = values["train"]
        if "train.augment.preset" in given:
            # A preset sets every augment field; the other augment fields given then override.
            train["augment"] = dataclasses.asdict(AugmentParams.from_preset(given["train.augment.preset"]))
        _apply_recipe(train, given, namespace.epochs)
        for dotted, value in given.items():
            _set(values, dotted, value)
        config = from_dict(values)
    except (TypeError, ValueError) as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    if namespace.print_config:
        print(to_yaml(config), end="")
        parser.exit(0)
    return config


def _apply_recipe(train: dict[str, Any], given: dict[str, Any], epochs: Optional[int]) -> None:
    """Sets ``train``'s recipe from the weights (unless given) and the recipe's settings
    that were not given; ``epochs`` (--epochs) sets each phase the recipe has."""
    weights = given.get("train.weights", train["weights"])
    recipe = given.get("train.recipe", FROM_SCRATCH if weights == "none" else FINE_TUNE)
    if recipe not in RECIPES:
        return  # TrainParams refuses it, naming the recipes there are
    if recipe != train["recipe"]:
        total = train["head_epochs"] + train["finetune_epochs"]
        settings = dict(RECIPES[recipe])
        if recipe == FROM_SCRATCH:
            settings["finetune_epochs"] = total
        else:
            settings.update(head_epochs=max(1, total // 2), finetune_epochs=total - max(1, total // 2))
        train.update({name: value for name, value in settings.items() if f"train.{name}" not in given})
        train["recipe"] = recipe
    if epochs is not None:
        phases = ("finetune_epochs",) if recipe == FROM_SCRATCH else ("head_epochs", "finetune_epochs")
        train.update({phase: epochs for phase in phases if f"train.{phase}" not in given})
