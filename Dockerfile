# The component image: every step of the pipeline kubeflow_runner.py compiles runs in it.
#
#   make image                                  # docker build -t tfx-image-classifier:0.1.0 .
#   docker build --build-arg TENSORFLOW_EXTRAS= -t tfx-image-classifier:0.1.0-cpu .   # no CUDA (smaller)
#
# Python 3.10 (TFX 1.16 needs it), the pinned set from constraints.txt, and this
# project installed as a package, so every component module imports in any step.
# The project's own files stay in /pipeline (schemas/, setup.py for remote Beam
# workers) together with the demo dataset, so the pipeline compiled with no
# flags runs on a cluster as it is.
FROM python:3.10.13-slim-bookworm

# "and-cuda" brings the CUDA libraries TensorFlow needs on a GPU (pinned exactly
# by TensorFlow itself); empty for a CPU-only image.
ARG TENSORFLOW_EXTRAS=and-cuda
# 1: fetch ResNet50's ImageNet weights into the image's Keras cache at build
# time, so the Trainer step needs no network; 0: the step fetches them.
ARG IMAGENET_WEIGHTS=1

# KERAS_HOME: the weights cache is found whatever user the pods run as.
# TF_ENABLE_ONEDNN_OPTS: TFX's entry point loads TensorFlow before the components
# package can switch its oneDNN CPU kernels on (docs/training.md#training-speed).
ENV PYTHONDONTWRITEBYTECODE=1 \
    TF_ENABLE_ONEDNN_OPTS=1 \
    PYTHONUNBUFFERED=1 \
    KERAS_HOME=/opt/keras \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /pipeline

# Dependencies first, from the package metadata alone: a code change rebuilds
# only the layers below.
COPY pyproject.toml setup.py README.md constraints.txt ./
RUN pip install "pip==24.2" \
    && pip install -c constraints.txt . \
    && if [ -n "$TENSORFLOW_EXTRAS" ]; then \
         pip install -c constraints.txt "tensorflow[$TENSORFLOW_EXTRAS]==2.16.2"; \
       fi \
    && pip uninstall -y tfx-image-classifier

COPY components/ components/
COPY pipeline/ pipeline/
COPY schemas/ schemas/
COPY local_runner.py kubeflow_runner.py predict.py ./
RUN pip install --no-deps -c constraints.txt . \
    && python -m pipeline.demo_data demo_data \
    && if [ "$IMAGENET_WEIGHTS" = 1 ]; then \
         python -c "from components.trainer.weights import resolve_weights; resolve_weights('imagenet')"; \
       fi \
    && cd / && python -c "import components.trainer.run, components.image_validator.gate, components.model_pusher.executor"

# KubeflowV2DagRunner gives every step its own command
# (python -m tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor);
# run by hand, the image runs the pipeline locally on the demo data.
CMD ["python", "local_runner.py"]
