"""``create_pipeline(config)``: the whole image classification pipeline in TFX.

ImageExampleGen -> ImageValidator (every image decoded and checked; only the
accepted ones go on) -> ImageValidationGate (stops the run when too much is
rejected or a class is too small) -> StatisticsGen -> ExampleValidator
(against the curated schema from ImportSchemaGen) -> Transform (label
vocabulary) -> Trainer (optionally warm-started from the latest blessed model)
-> Evaluator (against the latest blessed model) -> ServingPusher (a versioned,
atomic push into the TF Serving model directory); EvalInferrer (BulkInferrer:
the trained model's prediction for every eval image, for the run report).

With ``predict_dir``: PredictExampleGen (the unlabelled images) ->
PredictImageValidator (the same checks; what the model cannot read is reported,
not scored) -> BulkInferrer (the blessed model's ``score_examples`` signature;
nothing is scored when the model is not blessed).
"""

import dataclasses
import os
from typing import Optional

import tensorflow_model_analysis as tfma
from tfx import v1 as tfx

from components import features, image_folder, serving_signature
from components.image_ingest.component import create_image_example_gen, create_predict_example_gen
from components.image_validator.component import ImageValidator
from components.image_validator.gate import ImageValidationGate
from components.model_pusher.component import ServingPusher
from components.splits import EVAL, PREDICT, TRAIN
from pipeline.config import PipelineConfig

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Relative to the project folder: the repository here, the image's copy on Kubeflow.
SCHEMA_PATH = os.path.join("schemas", "image_examples.pbtxt")
SETUP_PATH = "setup.py"
SETUP_FILE = os.path.join(REPO_ROOT, SETUP_PATH)
# Beam flags that already say how workers get the code.
_DEPENDENCY_FLAGS = ("--setup_file", "--extra_package", "--extra_packages", "--requirements_file",
                     "--sdk_container_image", "--worker_harness_container_image")
PREPROCESSING_FN = "components.label_vocabulary.preprocessing.preprocessing_fn"
RUN_FN = "components.trainer.run.run_fn"
ACCURACY = "accuracy"
LOSS = "loss"
RECALL = "recall"
PRECISION = "precision"
CONFUSION_MATRIX = "MultiClassConfusionMatrixPlot"
_ARGMAX = '"top_k": 1, "thresholds": [0.0]'


def _flag_names(args) -> set:
    return {arg.split("=", 1)[0] for arg in args}


def _runner(args) -> str:
    """The Beam runner ``args`` name (``--runner=X`` or ``--runner X``), DirectRunner by default."""
    for index, arg in enumerate(args):
        if arg.startswith("--runner="):
            return arg.split("=", 1)[1]
        if arg == "--runner" and index + 1 < len(args):
            return args[index + 1]
    return "DirectRunner"


def beam_args_with_dependencies(beam_args, setup_file: str = SETUP_FILE) -> list:
    """Adds ``--setup_file`` (this project) unless the args already say how workers get code.

    Remote Beam runners need the components package on their workers; and without
    such a flag TFX builds a throw-away sdist of itself before every Beam step
    (about a second each, for nothing on the local runner).  ``setup_file`` is
    where the machine running the components sees it (inside the image on Kubeflow).
    """
    args = list(beam_args)
    if _flag_names(args) & set(_DEPENDENCY_FLAGS) or (setup_file == SETUP_FILE and not os.path.exists(SETUP_FILE)):
        return args
    return args + [f"--setup_file={setup_file}"]


# Below these, Beam's worker processes cost more than they bring (bench/bench_beam.py): each
# imports TensorFlow (about 10 s on 2 cores), and on 2 cores they compete with the main process.
MIN_CORES_FOR_WORKERS = 4
MIN_FILES_FOR_WORKERS = 10_000


def local_beam_workers(beam_workers: int, files: int, cores: Optional[int] = None) -> int:
    """The direct runner's workers for a local run: ``beam_workers`` when set, else (0)
    one per core when there are at least MIN_CORES_FOR_WORKERS cores and
    MIN_FILES_FOR_WORKERS files, and 1 (Beam in the component's own process) otherwise."""
    if beam_workers:
        return beam_workers
    cores = cores or os.cpu_count() or 1
    return cores if cores >= MIN_CORES_FOR_WORKERS and files >= MIN_FILES_FOR_WORKERS else 1


def beam_pipeline_args(beam_args, beam_workers: int, setup_file: str = SETUP_FILE) -> list:
    """The Beam args every Beam-powered component gets.

    Without another ``--runner`` Beam's direct runner runs the data components:
    in ``beam_workers`` processes (its multi-processing mode; 0 means one per
    core of the machine that runs the step), or in the component's own process
    for 1 worker, which spares starting workers that each import TensorFlow.
    ``--direct_*`` flags given in ``beam_args`` win.  A local run first picks
    the workers with ``local_beam_workers``.
    """
    args = list(beam_args)
    direct_flags = {"--direct_running_mode", "--direct_num_workers"}
    if _runner(args).lower() in ("directrunner", "direct") and not _flag_names(args) & direct_flags:
        mode = "in_memory" if beam_workers == 1 else "multi_processing"
        args = [f"--direct_running_mode={mode}", f"--direct_num_workers={beam_workers}"] + args
    return beam_args_with_dependencies(args, setup_file)


def count_classes_and_files(data_dir: str) -> tuple[int, int]:
    """Class folders under ``data_dir`` (in any split folder): the ids per-class metrics
    cover; and the files the ingest step will read."""
    splits = image_folder.detect_split_folders(data_dir) or {"": ""}
    names, files = set(), 0
    for folder in splits.values():
        split_listing = image_folder.list_split(data_dir, folder)
        names.update(name.split("/")[-1] for name in split_listing.class_folders)
        files += len(split_listing.files) + len(split_listing.outside_links)
    return len(names), files



def create_eval_config(min_accuracy: float, max_accuracy_drop: float, num_classes: int) -> tfma.EvalConfig:
    """Blessing needs eval accuracy >= ``min_accuracy`` and no more than
    ``max_accuracy_drop`` lost against the baseline (when there is one).

    Also computed: recall and precision of each class id (the top class counts
    as the prediction) and the confusion matrix.
    """
    accuracy_threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": min_accuracy}),
        # The tiny epsilon lets an equally good model through.
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER,
            absolute={"value": -max_accuracy_drop - 1e-10},
        ),
    )
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                # Signatures only (export.py): TFMA need not try loading it as a Keras model.
                model_type=tfma.TF_GENERIC,
                signature_name=serving_signature.SERVING_EXAMPLES,
                preprocessing_function_names=[serving_signature.TRANSFORM_FEATURES],
                label_key=features.LABEL_ID,
                prediction_key=serving_signature.PROBABILITIES,
            )
        ],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(class_name="ExampleCount"),
                    tfma.MetricConfig(
                        class_name="SparseCategoricalAccuracy",
                        config=f'"name": "{ACCURACY}"',
                        threshold=accuracy_threshold,
                    ),
                    tfma.MetricConfig(class_name="SparseCategoricalCrossentropy", config=f'"name": "{LOSS}"'),
                    tfma.MetricConfig(class_name=CONFUSION_MATRIX),
                ]
            ),
            tfma.MetricsSpec(
                metrics=[
                    # top_k 1: only the top class counts as predicted (its probability > 0).
                    tfma.MetricConfig(class_name="Recall", config=f'"name": "{RECALL}", {_ARGMAX}'),
                    tfma.MetricConfig(class_name="Precision", config=f'"name": "{PRECISION}", {_ARGMAX}'),
                ],
                binarize=tfma.BinarizationOptions(class_ids={"values": list(range(num_classes))}),
            ),
        ],
    )


def batch_scoring(config: PipelineConfig, model, blessing) -> list:
    """Ingest and validate ``config.predict_dir``, and score what passes with TFX's
    BulkInferrer (the PredictionLogs are turned into predictions.csv after the run)."""
    predict_gen = create_predict_example_gen(config.predict_dir,
                                             follow_outside_links=config.validation.follow_outside_links)
    # Copies are scored like any image, and classes mean nothing here: no copy search.
    predict_validator = ImageValidator(
        examples=predict_gen.outputs["examples"], listing=predict_gen.outputs["listing"],
        policy=dataclasses.replace(config.validation, near_duplicates=False),
    ).with_id("PredictImageValidator")
    bulk_inferrer = tfx.components.BulkInferrer(
        examples=predict_validator.outputs["validated_examples"],
        model=model,
        model_blessing=blessing,
        data_spec=tfx.proto.DataSpec(example_splits=[PREDICT]),
        model_spec=tfx.proto.ModelSpec(model_signature_name=[serving_signature.SCORE_EXAMPLES]),
    )
    return [predict_gen, predict_validator, bulk_inferrer]


def create_pipeline(
    config: PipelineConfig,
    project_dir: str = REPO_ROOT,
    pipeline_root: Optional[str] = None,
    layout_dir: Optional[str] = None,
    local_metadata: bool = True,
) -> tfx.dsl.Pipeline:
    """The pipeline for ``config``; the same for every runner.

    ``project_dir``: where the components find this project's schema and setup
    file (the image's copy on Kubeflow).  ``pipeline_root``: where artifacts go
    (default ``config.pipeline_root``).  ``layout_dir``: a local copy of the data
    folder to read its split folders and classes from when the pipeline is built
    (default ``config.data_dir`` itself).  ``local_metadata``: ML Metadata in
    SQLite under the output dir; off where the orchestrator keeps its own (Kubeflow).
    """
    if not config.data_dir:
        raise ValueError("config.data_dir is not set (the runner fills it with the demo data when omitted).")
    layout_dir = layout_dir or config.data_dir
    num_classes, num_files = count_classes_and_files(layout_dir)
    example_gen = create_image_example_gen(
        config.data_dir, config.train_hash_buckets, config.eval_hash_buckets, layout_dir=layout_dir,
        split_seed=config.train.seed, follow_outside_links=config.validation.follow_outside_links,
    )

    schema_gen = tfx.components.ImportSchemaGen(schema_file=os.path.join(project_dir, SCHEMA_PATH))
    schema = schema_gen.outputs["schema"]
    image_validator = ImageValidator(
        examples=example_gen.outputs["examples"], listing=example_gen.outputs["listing"], schema=schema,
        policy=config.validation, seed=config.train.seed,
    )
    gate = ImageValidationGate(report=image_validator.outputs["report"])
    # Everything downstream sees only the images the validator accepted, and
    # waits for the gate.
    examples = image_validator.outputs["validated_examples"]
    statistics_gen = tfx.components.StatisticsGen(examples=examples, schema=schema)
    statistics_gen.add_upstream_node(gate)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema
    )

    transform = tfx.components.Transform(
        examples=examples,
        schema=schema,
        preprocessing_fn=PREPROCESSING_FN,
        # Only the label vocabulary is learned: nothing to materialize, and
        # StatisticsGen already describes the data.
        materialize=False,
        disable_statistics=True,
        splits_config=tfx.proto.SplitsConfig(analyze=[TRAIN]),
    )
    transform.add_upstream_node(gate)

    # The latest blessed model: the Evaluator's baseline, and the Trainer's warm start.
    model_resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")

    trainer = tfx.components.Trainer(
        run_fn=RUN_FN,
        examples=examples,
        transform_graph=transform.outputs["transform_graph"],
        schema=schema,
        base_model=model_resolver.outputs["model"] if config.train.warm_start else None,
        train_args=tfx.proto.TrainArgs(splits=[TRAIN]),
        eval_args=tfx.proto.EvalArgs(splits=[EVAL]),
        custom_config=config.train.to_custom_config(),
    )

    evaluator = tfx.components.Evaluator(
        examples=examples,
        model=trainer.outputs["model"],
        baseline_model=model_resolver.outputs["model"],
        eval_config=create_eval_config(
            config.min_accuracy, config.max_accuracy_drop, config.num_classes or num_classes
        ),
        example_splits=[EVAL],
    )

    pusher = ServingPusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        examples=examples,
        serving_base_dir=config.serving_base_dir,
        model_name=config.serving_model_name,
        keep_versions=config.keep_versions,
        server_base_path=config.model_server_base_path,
        smoke_split=EVAL,
    )

    # Every eval image's prediction by the trained model, blessed or not: the run report's
    # misclassified gallery and calibration read them.
    eval_inferrer = tfx.components.BulkInferrer(
        examples=examples,
        model=trainer.outputs["model"],
        data_spec=tfx.proto.DataSpec(example_splits=[EVAL]),
        model_spec=tfx.proto.ModelSpec(model_signature_name=[serving_signature.SCORE_EXAMPLES]),
    ).with_id("EvalInferrer")
    components = [example_gen, schema_gen, image_validator, gate, statistics_gen, example_validator, transform,
                  trainer, model_resolver, evaluator, pusher, eval_inferrer]
    if config.predict_dir:
        components += batch_scoring(config, trainer.outputs["model"], evaluator.outputs["blessing"])

    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=pipeline_root or config.pipeline_root,
        components=components,
        enable_cache=config.enable_cache,
        metadata_connection_config=(
            tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path)
            if local_metadata
            else None
        ),
        beam_pipeline_args=beam_pipeline_args(
            config.beam_args,
            # On Kubeflow the step's machine is unknown here: 0 stays one worker per core.
            local_beam_workers(config.beam_workers, num_files) if local_metadata else config.beam_workers,
            os.path.join(project_dir, SETUP_PATH),
        ),
    )
