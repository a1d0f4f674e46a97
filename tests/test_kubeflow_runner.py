"""The Kubeflow Pipelines v2 spec: compiled, loaded by the kfp SDK, checked, and run.

No cluster here: the launcher below plays the part of KFP's for every step of
the compiled spec.  For each step it builds the ExecutorInput KFP's launcher
would (the spec's parameter values, upstream output artifacts, fresh output URIs
under the pipeline root), puts it in place of ``{{$}}`` and runs the step's own
command and arguments as a process, as the pod would.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest
import tensorflow as tf
import yaml
from google.protobuf import json_format
from kfp import components as kfp_components
from kfp.pipeline_spec import pipeline_spec_pb2

import kubeflow_runner
from tests.helpers import (
    CLASS_COLOURS,
    REPO_ROOT,
    TINY_TRAINING_FLAGS,
    encode_distinct_image,
    encode_image,
    write_image_folder,
)

IMAGE = "registry.example.com/team/tfx-image-classifier:1.2.3"
RUN_EXECUTOR = ["python", "-m", "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"]
EXECUTORS = {
    "ImageExampleGen": "components.image_ingest.executor.Executor",
    "ImportSchemaGen": "tfx.components.schema_gen.import_schema_gen.executor.Executor",
    "ImageValidator": "components.image_validator.executor.Executor",
    "ImageValidationGate": "components.image_validator.gate.ImageValidationGate_Executor",
    "StatisticsGen": "tfx.components.statistics_gen.executor.Executor",
    "ExampleValidator": "tfx.components.example_validator.executor.Executor",
    "Transform": "tfx.components.transform.executor.Executor",
    "Trainer": "tfx.components.trainer.executor.GenericExecutor",
    "Evaluator": "tfx.components.evaluator.executor.Executor",
    "ServingPusher": "components.model_pusher.executor.Executor",
    "EvalInferrer": "tfx.components.bulk_inferrer.executor.Executor",
}
RESOLVERS = {"latest_blessed_model_resolver-model-resolver", "latest_blessed_model_resolver-model-blessing-resolver"}
# Each step's upstream steps: the pipeline's data flow, plus the gate every
# step after validation waits for.
DEPENDENCIES = {
    "ImageExampleGen": set(),
    "ImportSchemaGen": set(),
    "ImageValidator": {"ImageExampleGen", "ImportSchemaGen"},
    "ImageValidationGate": {"ImageValidator"},
    "StatisticsGen": {"ImageValidator", "ImportSchemaGen", "ImageValidationGate"},
    "ExampleValidator": {"StatisticsGen", "ImportSchemaGen"},
    "Transform": {"ImageValidator", "ImportSchemaGen", "ImageValidationGate"},
    "Trainer": {"ImageValidator", "Transform", "ImportSchemaGen"},
    "Evaluator": {"ImageValidator", "Trainer", "latest_blessed_model_resolver-model-resolver"},
    "ServingPusher": {"Trainer", "Evaluator", "ImageValidator"},
    "EvalInferrer": {"ImageValidator", "Trainer"},
}
BEAM_STEPS = {"ImageExampleGen", "ImageValidator", "StatisticsGen", "Transform", "Evaluator", "EvalInferrer"}


@pytest.fixture(scope="module")
def tiny_images(tmp_path_factory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("kfp_images")
    return write_image_folder(
        root,
        {
            # Distinct pictures: one layout at several sizes would be near-copies, rejected across splits.
            f"{name}/{name}_{i}.jpg": encode_distinct_image(colour, seed=10 * index + i, size=(40 + i, 30))
            for index, (name, colour) in enumerate(CLASS_COLOURS.items())
            for i in range(8)
        },
    )


@pytest.fixture(scope="module")
def compiled(tmp_path_factory, tiny_images):
    """Compiles through the command line, as a user would, with every Kubeflow setting given."""
    work = tmp_path_factory.mktemp("kfp")
    output = work / "pipeline.json"
    argv = [
        "--output", str(output), "--data-dir", str(tiny_images), "--output-dir", str(work / "out"),
        # Tiny and offline, so the compiled Trainer step can run here.
        *TINY_TRAINING_FLAGS, "--min-accuracy", "0",
        # 24 images: Beam in each step's own process (the default starts one worker per core).
        "--beam-workers", "1",
        "--kfp-pipeline-root", str(work / "root"), "--kfp-image", IMAGE,
        # This checkout stands in for the image's project folder.
        "--kfp-project-dir", str(REPO_ROOT),
        "--kfp-trainer-gpus", "2", "--kfp-gpu-type", "NVIDIA_TESLA_T4",
        "--kfp-trainer-cpus", "8", "--kfp-trainer-memory-gb", "30",
    ]
    result = subprocess.run(
        [sys.executable, "kubeflow_runner.py", *argv], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Wrote {output}: 13 steps" in result.stdout
    return work, json.loads(output.read_text())


def _container(spec: dict, task: str) -> dict:
    label = spec["components"][spec["root"]["dag"]["tasks"][task]["componentRef"]["name"]]["executorLabel"]
    return spec["deploymentSpec"]["executors"][label].get("container")


def _parameters(spec: dict, task: str) -> dict:
    parameters = spec["root"]["dag"]["tasks"][task]["inputs"].get("parameters", {})
    return {name: value["runtimeValue"]["constant"] for name, value in parameters.items()}


@pytest.mark.subprocess
def test_the_spec_loads_in_the_kfp_sdk_and_parses_into_the_pipeline_spec_proto(compiled):
    work, spec = compiled
    # Strict parse: no field the proto does not know.
    proto = json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())
    assert proto.pipeline_info.name == "image-classifier" and proto.schema_version == "2.1.0"
    assert proto.default_pipeline_root == str(work / "root")
    component = kfp_components.load_component_from_file(str(work / "pipeline.json"))
    assert component.name == "image-classifier"
    assert set(component.pipeline_spec.root.dag.tasks) == set(EXECUTORS) | RESOLVERS
    # KFP's client takes pipeline files as YAML: the same spec, written as YAML, loads too.
    kubeflow_runner.write_spec(spec, str(work / "pipeline.yaml"))
    assert yaml.safe_load((work / "pipeline.yaml").read_text()) == spec
    assert kfp_components.load_component_from_file(str(work / "pipeline.yaml")).pipeline_spec == proto


@pytest.mark.subprocess
def test_every_step_runs_its_executor_in_the_image_after_its_upstream_steps(compiled):
    _, spec = compiled
    tasks = spec["root"]["dag"]["tasks"]
    for task, executor in EXECUTORS.items():
        container = _container(spec, task)
        assert container["image"] == IMAGE and container["command"] == RUN_EXECUTOR, task
        args = container["args"]
        assert args[args.index("--executor_class_path") + 1] == executor, task
        assert args[args.index("--json_serialized_invocation_args") + 1] == "{{$}}", task
        assert set(tasks[task].get("dependentTasks", [])) == DEPENDENCIES[task], task
    # The resolver feeding the Evaluator's baseline runs in KFP itself, on its metadata.
    for resolver in RESOLVERS:
        label = spec["components"][tasks[resolver]["componentRef"]["name"]]["executorLabel"]
        assert "resolver" in spec["deploymentSpec"]["executors"][label], resolver
    # ExampleGen's driver runs first in the same pod and fingerprints the input.
    driver = _container(spec, "ImageExampleGen")["lifecycle"]["preCacheCheck"]
    assert driver["command"][-1] == "tfx.orchestration.kubeflow.v2.file_based_example_gen.driver"


@pytest.mark.subprocess
def test_settings_from_the_config_reach_their_steps(compiled, tiny_images):
    work, spec = compiled
    trainer = _container(spec, "Trainer")
    assert trainer["resources"] == {
        "accelerator": {"count": "2", "type": "NVIDIA_TESLA_T4"}, "cpuLimit": 8.0, "memoryLimit": 30.0,
    }
    assert all("resources" not in _container(spec, task) for task in EXECUTORS if task != "Trainer")
    assert _parameters(spec, "ImageExampleGen")["input_base"] == str(tiny_images)
    assert _parameters(spec, "ImportSchemaGen")["schema_file"] == str(REPO_ROOT / "schemas" / "image_examples.pbtxt")
    assert _parameters(spec, "ServingPusher")["serving_base_dir"] == str(work / "out" / "serving")
    assert json.loads(_parameters(spec, "Trainer")["custom_config"])["image_size"] == 32
    assert _parameters(spec, "Trainer")["run_fn"] == "components.trainer.run.run_fn"
    assert _parameters(spec, "Transform")["preprocessing_fn"] == (
        "components.label_vocabulary.preprocessing.preprocessing_fn")
    for task in BEAM_STEPS:  # one local Beam worker by default, and how remote workers get the code
        args = _container(spec, task)["args"]
        assert "--direct_running_mode=in_memory" in args and f"--setup_file={REPO_ROOT}/setup.py" in args, task


def test_distributed_beam_args_pass_through_a_cpu_trainer_asks_for_no_gpu_and_vertex_ai_takes_the_spec(tmp_path):
    dataflow = ["--runner=DataflowRunner", "--project=my-project", "--region=europe-west4",
                "--temp_location=gs://my-bucket/tmp"]
    spec = kubeflow_runner.compile_pipeline(kubeflow_runner.parse_config([
        "--output-dir", "gs://my-bucket/image-classifier", "--num-classes", "3",
        "--beam-args", " ".join(dataflow), "--kfp-trainer-gpus", "0",
    ]))
    assert spec["defaultPipelineRoot"] == "gs://my-bucket/image-classifier/pipeline_root"
    assert "resources" not in _container(spec, "Trainer")
    for task in BEAM_STEPS:
        args = _container(spec, task)["args"]
        assert args[-len(dataflow) - 1:] == dataflow + ["--setup_file=/pipeline/setup.py"], task
        assert not any(arg.startswith("--direct_") for arg in args), task
    # No --data-dir: the demo dataset the image holds.
    assert _parameters(spec, "ImageExampleGen")["input_base"] == "/pipeline/demo_data"
    assert _parameters(spec, "ServingPusher")["serving_base_dir"] == "gs://my-bucket/image-classifier/serving"

    # Vertex AI's SDK builds its PipelineJob from the file, pipeline root included (nothing is submitted).
    from google.auth.credentials import AnonymousCredentials  # pylint: disable=import-outside-toplevel
    from google.cloud import aiplatform  # pylint: disable=import-outside-toplevel

    kubeflow_runner.write_spec(spec, str(tmp_path / "pipeline.json"))
    job = aiplatform.PipelineJob(
        display_name="image-classifier", template_path=str(tmp_path / "pipeline.json"),
        project="my-project", location="europe-west4", credentials=AnonymousCredentials(),
    )
    resource = job._gca_resource  # pylint: disable=protected-access
    assert resource.runtime_config.gcs_output_directory == spec["defaultPipelineRoot"]
    assert set(resource.pipeline_spec["root"]["dag"]["tasks"]) == set(EXECUTORS) | RESOLVERS


def test_bad_kubeflow_flags_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as raised:
        kubeflow_runner.parse_config(["--kfp-trainer-gpus", "-1"])
    assert raised.value.code == 2 and "must not be negative" in capsys.readouterr().err


class _Launcher:
    """What KFP's launcher does around a step, for steps whose inputs come from steps it ran."""

    def __init__(self, spec: dict, pipeline_root: pathlib.Path):
        self.spec = spec
        self.root = pipeline_root
        self.produced = {}  # (task, output key) -> RuntimeArtifact dicts
        self.driver_output = {}  # task -> what its driver wrote (the executor then overwrites it)
        self.ran = []

    def resolve_nothing(self, task: str) -> None:
        """A resolver task on a first run: KFP's metadata holds no blessed model yet."""
        component = self.spec["components"][self.spec["root"]["dag"]["tasks"][task]["componentRef"]["name"]]
        for key in component["outputDefinitions"]["artifacts"]:
            self.produced[(task, key)] = []

    def run(self, task: str) -> dict:
        task_spec = self.spec["root"]["dag"]["tasks"][task]
        component = self.spec["components"][task_spec["componentRef"]["name"]]
        inputs = {}
        for key, source in task_spec["inputs"].get("artifacts", {}).items():
            upstream = source["taskOutputArtifact"]
            inputs[key] = {"artifacts": self.produced[(upstream["producerTask"], upstream["outputArtifactKey"])]}
        outputs = {}
        for key, definition in component.get("outputDefinitions", {}).get("artifacts", {}).items():
            title = yaml.safe_load(definition["artifactType"]["instanceSchema"])["title"]
            uri = str(self.root / task / key)
            outputs[key] = {"artifacts": [{"name": f"{task}-{key}", "type": {"schemaTitle": title}, "uri": uri}]}
        task_dir = self.root / task
        executor_input = json.dumps({
            "inputs": {"artifacts": inputs, "parameterValues": _parameters(self.spec, task)},
            "outputs": {"artifacts": outputs, "outputFile": str(task_dir / "executor_output.json")},
        })
        container = _container(self.spec, task)
        # The driver (ExampleGen's pre-cache check) first, then the executor, in one pod.
        for step in (container.get("lifecycle", {}).get("preCacheCheck"), container):
            if step is None:
                continue
            assert step["command"][0] == "python"
            args = [executor_input if arg == "{{$}}" else arg for arg in step["args"]]
            result = subprocess.run(
                [sys.executable, *step["command"][1:], *args],
                cwd=REPO_ROOT, capture_output=True, text=True, check=False,
            )
            assert result.returncode == 0, f"{task}: {' '.join(step['command'])}\n{result.stderr[-4000:]}"
            if step is not container:
                self.driver_output[task] = json.loads((task_dir / "executor_output.json").read_text())
        self.ran.append(task)
        # The launcher records what the executor reports about each output.
        reported = json.loads((task_dir / "executor_output.json").read_text()).get("artifacts", {})
        for key, artifacts in outputs.items():
            artifact = dict(artifacts["artifacts"][0])
            artifact["metadata"] = reported[key]["artifacts"][0].get("metadata", {})
            self.produced[(task, key)] = [artifact]
        return {key: artifacts[0] for (name, key), artifacts in self.produced.items() if name == task}


@pytest.fixture(scope="module")
def launched(compiled):
    """The first steps of the compiled pipeline, run as KFP pods run them."""
    work, spec = compiled
    launcher = _Launcher(spec, work / "root")
    for task in ("ImportSchemaGen", "ImageExampleGen", "ImageValidator", "ImageValidationGate"):
        launcher.run(task)
    return launcher


@pytest.mark.e2e
@pytest.mark.subprocess
def test_compiled_steps_run_as_a_kfp_pod_runs_them(launched):
    schema = launched.produced[("ImportSchemaGen", "schema")][0]
    assert (pathlib.Path(schema["uri"]) / "schema.pbtxt").is_file()

    examples = launched.produced[("ImageExampleGen", "examples")][0]
    assert json.loads(examples["metadata"]["split_names"]) == ["train", "eval"]
    driver = launched.driver_output["ImageExampleGen"]["parameterValues"]
    assert driver["span"] == 0 and "split:single_split" in driver["input_fingerprint"]
    written = sorted(p.parent.name for p in pathlib.Path(examples["uri"]).glob("Split-*/*.gz"))
    assert set(written) == {"Split-train", "Split-eval"}

    report_dir = pathlib.Path(launched.produced[("ImageValidator", "report")][0]["uri"])
    report = json.loads((report_dir / "report.json").read_text())
    assert report["counts"]["files_seen"] == 24 and report["counts"]["files_rejected"] == 0
    validated = launched.produced[("ImageValidator", "validated_examples")][0]
    assert (pathlib.Path(validated["uri"]) / "Split-train").is_dir()
    # The gate passed: every image is good (a failing gate exits non-zero, failing the run).
    assert "ImageValidationGate" in launched.ran


@pytest.mark.e2e
@pytest.mark.subprocess
def test_the_rest_of_the_compiled_pipeline_trains_evaluates_and_pushes(launched, compiled):
    """Every other step from the spec, in order; the resolver finds no blessed model
    yet, as on a first run. The model is blessed, pushed as version 1 and serves."""
    work, _ = compiled
    for task in ("StatisticsGen", "ExampleValidator", "Transform", "Trainer"):
        launched.run(task)
    anomalies = pathlib.Path(launched.produced[("ExampleValidator", "anomalies")][0]["uri"])
    assert list(anomalies.glob("Split-*/SchemaDiff.pb"))
    launched.resolve_nothing("latest_blessed_model_resolver-model-resolver")
    blessing = launched.run("Evaluator")["blessing"]
    assert blessing["metadata"]["blessed"] == 1
    pushed = launched.run("ServingPusher")["pushed_model"]
    assert pushed["metadata"]["pushed"] == 1 and pushed["metadata"]["pushed_version"] == "1"
    version_dir = work / "out" / "serving" / "image_classifier" / "1"
    assert pushed["metadata"]["pushed_destination"] == str(version_dir)
    model = tf.saved_model.load(str(version_dir))
    encoded = tf.constant([encode_image(CLASS_COLOURS["red"], size=(40, 30))])
    result = model.signatures["serving_default"](image_bytes=encoded)
    assert result["class_name"].shape == (1,) and result["probabilities"].shape == (1, 3)


@pytest.mark.subprocess
def test_the_command_with_no_flags_compiles_the_demo_for_the_image(tmp_path):
    existed = os.path.exists("/pipeline")
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "kubeflow_runner.py"), "--output", "pipeline.json"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    spec = json.loads((tmp_path / "pipeline.json").read_text())
    assert _container(spec, "Trainer")["image"] == "tfx-image-classifier:0.1.0"
    assert _container(spec, "Trainer")["resources"] == {"accelerator": {"count": "1", "type": "nvidia.com/gpu"}}
    assert _parameters(spec, "ImageExampleGen")["input_base"] == "/pipeline/demo_data"
    assert spec["defaultPipelineRoot"] == "/pipeline/output/pipeline_root"
    # Beam in each step's pod: multi-processing, one worker per core of the pod.
    args = _container(spec, "ImageValidator")["args"]
    assert "--direct_running_mode=multi_processing" in args and "--direct_num_workers=0" in args
    assert "a path in the pods' own file systems" in result.stderr
    # Paths meant for the pods are not created on the compiling machine.
    assert os.path.exists("/pipeline") == existed
