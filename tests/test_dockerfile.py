"""The image the Dockerfile builds: what it copies and installs, and the project installed as
it installs it, every module imported from that install."""

import os
import shutil
import subprocess
import sys

import pytest

import kubeflow_runner
from tests.helpers import REPO_ROOT


def test_dockerfile_builds_the_image_the_compiled_spec_expects():
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    lines = [line.strip() for line in dockerfile.splitlines()]
    assert next(line for line in lines if line.startswith("FROM ")).startswith("FROM python:3.10")
    assert f"WORKDIR {kubeflow_runner.config_lib.IMAGE_PROJECT_DIR}" in lines
    for folder in ("components/", "pipeline/", "schemas/"):
        assert f"COPY {folder} {folder}" in lines
    assert "pip install -c constraints.txt ." in dockerfile  # the pinned set
    assert "pip install --no-deps -c constraints.txt ." in dockerfile  # the project, as a package
    assert f"python -m pipeline.demo_data {kubeflow_runner.IMAGE_DEMO_DATA}" in dockerfile


@pytest.mark.install
@pytest.mark.subprocess
def test_the_project_installed_as_a_package_imports_every_module(tmp_path):
    """What the image does (a non-editable install), then every module imported
    from that install, away from this checkout."""
    # What the Dockerfile copies (a copy: building in the checkout would leave build/ there).
    source, site = tmp_path / "source", tmp_path / "site"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    for package in ("components", "pipeline"):
        shutil.copytree(REPO_ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(source)],
        check=True, capture_output=True,
    )
    modules = sorted(
        ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts).removesuffix(".__init__")
        for package in ("components", "pipeline")
        for path in (REPO_ROOT / package).rglob("*.py")
    )
    assert "components.image_validator.gate" in modules and "pipeline.pipeline" in modules
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    module = importlib.import_module(name)\n"
        f"    assert module.__file__.startswith({str(site)!r}), module.__file__\n"
    )
    env = dict(os.environ, PYTHONPATH=str(site))
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
