"""The two Lambda layers every function carries, bundled on this machine (no Docker)."""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.bundling import OPENAPI_FILE, build_core_layer, build_deps_layer
from infra.constructs.function import ARCHITECTURE, RUNTIME

# Where the core layer puts the user-edited definitions at run time.
CONFIG_ROOT = "/opt/nudge-config"
TRIGGERS_PATH = f"{CONFIG_ROOT}/triggers"
TEMPLATES_PATH = f"{CONFIG_ROOT}/templates"
CONFIG_PATH = f"{CONFIG_ROOT}/config"
TRACKING_PLAN_PATH = f"{CONFIG_ROOT}/tracking-plan"
OPENAPI_PATH = f"{CONFIG_ROOT}/{OPENAPI_FILE}"  # what GET /openapi.json serves


class Layers(Construct):
    """``core``: the ``nudge`` package, the trigger, template and config definitions and
    the OpenAPI document;
    ``deps``: its third-party dependencies for arm64 / CPython 3.12."""

    def __init__(self, scope: Construct, id: str, *, root: Path) -> None:
        super().__init__(scope, id)
        # Built before synth into content-addressed folders (infra/bundling.py), so the
        # asset hash only changes when what goes into the layer changes.
        self.core_dir = build_core_layer(root)
        self.deps_dir = build_deps_layer(root)

        self.core = lambda_.LayerVersion(
            self,
            "Core",
            code=lambda_.Code.from_asset(str(self.core_dir)),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description="nudge domain core and the trigger/template/config definitions",
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.deps = lambda_.LayerVersion(
            self,
            "Deps",
            code=lambda_.Code.from_asset(str(self.deps_dir)),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description="nudge third-party dependencies (the AWS SDK comes with the runtime)",
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.all = [self.deps, self.core]
