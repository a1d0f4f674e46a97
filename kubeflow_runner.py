"""Compiles the pipeline for Kubeflow Pipelines v2 or Vertex AI Pipelines.

    python kubeflow_runner.py --output pipeline.json                  # the demo, as the image holds it
    python kubeflow_runner.py --output pipeline.yaml \\
        --data-dir gs://BUCKET/images --output-dir gs://BUCKET/image-classifier \\
        --kfp-image REGISTRY/tfx-image-classifier:0.1.0

The same ``create_pipeline(config)`` as ``local_runner.py``, compiled by TFX's
``KubeflowV2DagRunner`` into a KFP ``PipelineSpec`` (JSON, or YAML when
``--output`` ends in .yaml/.yml) whose default pipeline root is set.  Every step
runs in ``--kfp-image`` (built from the Dockerfile); the Trainer step asks for
``--kfp-trainer-gpus`` GPUs.  ``--beam-args`` go to every Beam step unchanged
(Dataflow, Flink, Spark); without them Beam runs inside each step's pod.
Every other flag is ``local_runner.py``'s.
"""

import dataclasses
import json
import os
import posixpath
import sys
import tempfile
from typing import Optional

from absl import logging

from pipeline import config as config_lib
from pipeline import noise

noise.silence()

DESCRIPTION = "Compile the image classification pipeline for Kubeflow Pipelines v2 / Vertex AI Pipelines."
TRAINER_ID = "Trainer"
# The Dockerfile generates the demo dataset here, inside the project folder.
IMAGE_DEMO_DATA = "demo_data"


def trainer_resources(params: config_lib.KubeflowParams):
    """The Trainer step's resource spec, or None when nothing is asked for."""
    from kfp.pipeline_spec import pipeline_spec_pb2  # pylint: disable=import-outside-toplevel

    spec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec(
        cpu_limit=params.trainer_cpus, memory_limit=params.trainer_memory_gb
    )
    if params.trainer_gpus:
        spec.accelerator.type = params.gpu_type
        spec.accelerator.count = params.trainer_gpus
    return None if spec.ByteSize() == 0 else spec


def compile_pipeline(config: config_lib.PipelineConfig) -> dict:
    """The KFP PipelineSpec of ``config``'s pipeline, as a JSON-ready dict."""
    from tfx import v1 as tfx  # pylint: disable=import-outside-toplevel

    from components.model_pusher.versioning import is_local  # pylint: disable=import-outside-toplevel
    from pipeline import demo_data  # pylint: disable=import-outside-toplevel
    from pipeline.pipeline import create_pipeline  # pylint: disable=import-outside-toplevel

    params = config.kubeflow
    project_dir = params.project_dir
    if is_local(config.output_dir):
        # A relative path is inside the pods, under the image's working directory (join keeps absolute ones).
        config = dataclasses.replace(config, output_dir=posixpath.join(project_dir, config.output_dir))
    for name, path in (("--output-dir", config.output_dir), ("--data-dir", config.data_dir)):
        if path and is_local(path):
            logging.warning(
                "%s %s is a path in the pods' own file systems: every step must see the same files there "
                "(a shared volume), or pass a gs:// URI.", name, path
            )
    pipeline_root = params.pipeline_root or config.pipeline_root
    with tempfile.TemporaryDirectory() as tmp:
        layout_dir = None
        if config.data_dir is None:
            # The image holds the demo dataset; a small local one tells its layout (the same class folders).
            layout_dir = demo_data.ensure_demo_dataset(os.path.join(tmp, "demo"), 4, config.train.seed)
            config = dataclasses.replace(config, data_dir=posixpath.join(project_dir, IMAGE_DEMO_DATA))
        # Kubeflow keeps its own ML Metadata.
        pipeline = create_pipeline(
            config, project_dir=project_dir, pipeline_root=pipeline_root, layout_dir=layout_dir, local_metadata=False
        )
    resources = trainer_resources(params)
    if resources is not None:
        next(c for c in pipeline.components if c.id == TRAINER_ID).with_platform_config(resources)
    # Schema 2.1: the steps read their parameters from `parameterValues`, which
    # is what KFP 2's launcher fills (2.0 reads the deprecated `parameters`).
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
            default_image=params.image, use_pipeline_spec_2_1=True
        )
    )
    job = runner.run(pipeline, write_out=False)
    spec = job["pipelineSpec"]
    # A PipelineSpec rather than TFX's PipelineJob wrapper: KFP's client and UI
    # take it as it is; the pipeline root travels inside it.
    spec["defaultPipelineRoot"] = pipeline_root
    return spec


def write_spec(spec: dict, output: str) -> None:
    import yaml  # pylint: disable=import-outside-toplevel

    parent = os.path.dirname(os.path.abspath(output))
    os.makedirs(parent, exist_ok=True)
    with open(output, "w", encoding="utf-8") as f:
        if output.endswith((".yaml", ".yml")):
            yaml.safe_dump(spec, f, sort_keys=False)
        else:
            json.dump(spec, f, indent=2, sort_keys=True)
            f.write("\n")


def build_arg_parser():
    parser = config_lib.build_arg_parser(DESCRIPTION, kubeflow=True)
    parser.add_argument(
        "--output", default="pipeline.json", help="Where the pipeline spec goes: .json, or .yaml/.yml for YAML."
    )
    return parser


def parse_config(argv: Optional[list[str]] = None) -> config_lib.PipelineConfig:
    """The config from flags (``--output`` aside); invalid values exit with a usage error."""
    return config_lib.parse_args(argv, build_arg_parser())


def main(argv: Optional[list[str]] = None) -> int:
    parser = build_arg_parser()
    config = config_lib.parse_args(argv, parser)
    output = parser.parse_args(argv).output
    logging.set_verbosity(logging.INFO)
    try:
        spec = compile_pipeline(config)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    write_spec(spec, output)
    steps = sorted(spec["root"]["dag"]["tasks"])
    print(f"Wrote {output}: {len(steps)} steps ({', '.join(steps)}) in {config.kubeflow.image}, "
          f"pipeline root {spec['defaultPipelineRoot']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
