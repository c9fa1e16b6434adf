"""The layers are built without Docker, for the Lambda platform, with what the code
expects at /opt."""

from __future__ import annotations

import pytest

from infra import bundling

pytestmark = pytest.mark.infra


def test_core_layer_has_the_package_and_the_definition_folders(synth):
    core = synth.stack.layers.core_dir
    assert (core / "python" / "nudge" / "__init__.py").is_file()
    assert (core / "python" / "nudge" / "constants.py").is_file()
    for name in ("triggers", "templates", "config"):
        assert (core / "nudge-config" / name).is_dir()
    assert not list(core.rglob("__pycache__"))


def test_deps_layer_leaves_the_sdk_to_the_runtime(synth):
    site = synth.stack.layers.deps_dir / "python"
    assert (site / "pydantic").is_dir()
    assert (site / "aws_lambda_powertools").is_dir()
    for sdk in ("boto3", "botocore", "s3transfer"):
        assert not (site / sdk).exists()
    assert not any(
        d.lower().startswith(("boto3", "botocore")) for d in map(str, bundling.layer_requirements())
    )


def test_deps_layer_carries_arm64_cpython_312_binaries(synth):
    site = synth.stack.layers.deps_dir / "python"
    binaries = [p.name for p in (site / "pydantic_core").glob("*.so")]
    assert binaries, "pydantic_core ships a compiled extension"
    assert all("cpython-312-aarch64-linux-gnu" in b for b in binaries), binaries


def test_a_second_build_reuses_the_cached_deps_layer(synth):
    assert bundling.build_deps_layer() == synth.stack.layers.deps_dir
