"""The layers are built without Docker, for the Lambda platform, with what the code
expects at /opt."""

from __future__ import annotations

import pytest
from nudge import constants as C

from infra import bundling

pytestmark = pytest.mark.infra


def test_core_layer_has_the_package_and_the_definition_folders(synth):
    core = synth.stack.layers.core_dir
    assert (core / "python" / "nudge" / "__init__.py").is_file()
    assert (core / "python" / "nudge" / "constants.py").is_file()
    for name in ("triggers", "templates", "config"):
        assert (core / "nudge-config" / name).is_dir()
    assert not list(core.rglob("__pycache__"))


def test_core_layer_ships_the_openapi_document_the_api_function_serves(synth):
    shipped = synth.stack.layers.core_dir / "nudge-config" / "openapi.json"
    assert shipped.read_bytes() == (bundling.ROOT / "docs" / "openapi.json").read_bytes()
    (api,) = [
        r
        for r in synth.resources("AWS::Lambda::Function").values()
        if C.ENV_OPENAPI_PATH in r["Properties"].get("Environment", {}).get("Variables", {})
    ]
    env = api["Properties"]["Environment"]["Variables"]
    assert env[C.ENV_OPENAPI_PATH] == "/opt/nudge-config/openapi.json"


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


LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024  # function code plus all its layers


def _size(root) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def test_every_function_with_its_layers_stays_under_lambdas_unzipped_limit(synth):
    # duckdb (the archive's SQL engine) is the largest dependency; the limit holds with room
    layers = _size(synth.stack.layers.core_dir) + _size(synth.stack.layers.deps_dir)
    functions = bundling.ROOT / "functions"
    # the train function carries other layers (tests/infra/test_infra_training.py)
    largest = max(_size(d) for d in functions.iterdir() if d.is_dir() and d.name != C.FN_TRAIN)
    assert layers + largest < LAMBDA_UNZIPPED_LIMIT * 0.6, (layers + largest) / 2**20


def test_deps_layer_carries_duckdb_for_arm64(synth):
    site = synth.stack.layers.deps_dir / "python"
    [binary] = site.glob("_duckdb*.so")
    header = binary.read_bytes()[:20]
    assert (
        header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == 0xB7
    )  # EM_AARCH64
