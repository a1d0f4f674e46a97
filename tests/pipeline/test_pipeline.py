"""The pipeline around its components: Beam's arguments and the local worker choice, and the
Evaluator's blessing config."""

import pytest

from pipeline.config import PipelineConfig


def test_beam_args_gain_the_setup_file_unless_dependencies_are_given():
    from pipeline.pipeline import SETUP_FILE, beam_args_with_dependencies  # pylint: disable=import-outside-toplevel

    assert beam_args_with_dependencies(["--direct_num_workers=1"]) == [
        "--direct_num_workers=1", f"--setup_file={SETUP_FILE}"]
    given = ["--runner=DataflowRunner", "--sdk_container_image=registry/image:1"]
    assert beam_args_with_dependencies(given) == given


@pytest.mark.parametrize(
    "workers, extra, expected",
    [
        (1, [], ["--direct_running_mode=in_memory", "--direct_num_workers=1"]),
        (2, [], ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]),
        (0, [], ["--direct_running_mode=multi_processing", "--direct_num_workers=0"]),
        # Direct-runner flags given by hand win; another runner gets none.
        (2, ["--direct_running_mode=multi_threading"], ["--direct_running_mode=multi_threading"]),
        (2, ["--runner=FlinkRunner", "--flink_master=host:8081"], ["--runner=FlinkRunner", "--flink_master=host:8081"]),
        (0, ["--runner", "SparkRunner"], ["--runner", "SparkRunner"]),
        (1, ["--runner=DirectRunner"], ["--direct_running_mode=in_memory", "--direct_num_workers=1",
                                        "--runner=DirectRunner"]),
    ],
)
def test_beam_workers_choose_the_direct_runner_mode(workers, extra, expected):
    from pipeline.pipeline import beam_pipeline_args  # pylint: disable=import-outside-toplevel

    args = beam_pipeline_args(extra, workers, setup_file="/p/setup.py")
    assert args == expected + ["--setup_file=/p/setup.py"]


def test_blessing_needs_the_absolute_threshold_and_no_regression():
    import tensorflow_model_analysis as tfma

    from pipeline.pipeline import ACCURACY, RECALL, create_eval_config

    config = create_eval_config(min_accuracy=0.7, max_accuracy_drop=0.01, num_classes=4)
    thresholds = {m.class_name: m.threshold for spec in config.metrics_specs for m in spec.metrics
                  if m.HasField("threshold")}
    accuracy = thresholds["SparseCategoricalAccuracy"]
    assert accuracy.value_threshold.lower_bound.value == 0.7
    assert accuracy.change_threshold.absolute.value == pytest.approx(-0.01)
    assert accuracy.change_threshold.direction == tfma.MetricDirection.HIGHER_IS_BETTER
    per_class = [spec for spec in config.metrics_specs if spec.HasField("binarize")]
    assert list(per_class[0].binarize.class_ids.values) == [0, 1, 2, 3]
    assert {f'"name": "{RECALL}"' in m.config for m in per_class[0].metrics} == {True, False}
    assert any(f'"name": "{ACCURACY}"' in m.config for spec in config.metrics_specs for m in spec.metrics)


@pytest.mark.parametrize(
    "workers, files, cores, expected",
    [
        (0, 400, 2, 1),  # few cores: in-process
        (0, 50_000, 2, 1),
        (0, 2_000, 16, 1),  # few files: in-process
        (0, 10_000, 4, 4),  # both: one per core
        (0, 200_000, 16, 16),
        (2, 400, 2, 2),  # --beam-workers wins
        (1, 200_000, 16, 1),
    ],
)
def test_local_beam_workers_pay_only_with_cores_and_files(workers, files, cores, expected):
    from pipeline.pipeline import local_beam_workers  # pylint: disable=import-outside-toplevel

    assert local_beam_workers(workers, files, cores) == expected


def test_a_local_pipeline_on_a_small_folder_runs_beam_in_process(tmp_path):
    from pipeline.pipeline import create_pipeline  # pylint: disable=import-outside-toplevel
    from tests.helpers import encode_image, write_image_folder  # pylint: disable=import-outside-toplevel

    data = write_image_folder(tmp_path / "data", {f"{c}/{n}.jpg": encode_image() for n in range(3) for c in "ab"})
    pipeline = create_pipeline(PipelineConfig(data_dir=str(data), output_dir=str(tmp_path / "out")))
    assert "--direct_running_mode=in_memory" in pipeline.beam_pipeline_args


def test_a_predict_dir_adds_its_ingest_validation_and_the_bulk_inferrer(tmp_path):
    from components import serving_signature  # pylint: disable=import-outside-toplevel
    from pipeline.pipeline import create_pipeline  # pylint: disable=import-outside-toplevel
    from tests.helpers import encode_image, write_image_folder  # pylint: disable=import-outside-toplevel

    data = write_image_folder(tmp_path / "data", {f"{c}/{n}.jpg": encode_image() for n in range(3) for c in "ab"})
    to_score = write_image_folder(tmp_path / "to_score", {"x.jpg": encode_image()})
    plain = create_pipeline(PipelineConfig(data_dir=str(data), output_dir=str(tmp_path / "out")))
    config = PipelineConfig(data_dir=str(data), output_dir=str(tmp_path / "out"), predict_dir=str(to_score))
    nodes = {node.id: node for node in create_pipeline(config).components}

    assert set(nodes) - {node.id for node in plain.components} == {
        "PredictExampleGen", "PredictImageValidator", "BulkInferrer"}
    inferrer = nodes["BulkInferrer"]
    assert inferrer.inputs["model"].producer_component_id == "Trainer"
    assert inferrer.inputs["model_blessing"].producer_component_id == "Evaluator"
    assert inferrer.inputs["examples"].producer_component_id == "PredictImageValidator"
    assert serving_signature.SCORE_EXAMPLES in inferrer.exec_properties["model_spec"]
    assert '"predict"' in inferrer.exec_properties["data_spec"]
    assert nodes["PredictExampleGen"].exec_properties["unlabelled"] == 1
