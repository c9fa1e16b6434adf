"""The infra tier: the CDK app is built and synthesized once per session, by the same
``build_app()`` that ``cdk synth`` runs (cdk-nag included), with cdk.json's context."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `infra` is a package at the repository root
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@dataclass(frozen=True)
class Synth:
    app: Any  # aws_cdk.App
    stack: Any  # infra.stack.NudgeStack
    template: Any  # aws_cdk.assertions.Template
    template_json: dict[str, Any]
    template_path: Path
    seconds: float

    def resources(self, type_: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.template_json["Resources"].items() if v["Type"] == type_}

    def statements_of_role(self, role: Any) -> list[dict[str, Any]]:
        """Every statement of every AWS::IAM::Policy attached to the role."""
        ref = {"Ref": self.logical_id(role)}
        found: list[dict[str, Any]] = []
        for policy in self.resources("AWS::IAM::Policy").values():
            if ref in policy["Properties"]["Roles"]:
                found += policy["Properties"]["PolicyDocument"]["Statement"]
        return found

    def allowed(self, role: Any) -> dict[str, list[Any]]:
        """action -> every resource the role may perform it on."""
        out: dict[str, list[Any]] = {}
        for st in self.statements_of_role(role):
            if st["Effect"] == "Allow":
                for action in as_list(st["Action"]):
                    out.setdefault(action, []).extend(as_list(st["Resource"]))
        return out

    def logical_id(self, construct: Any) -> str:
        """The logical id CDK gave a construct's CloudFormation resource (never written
        down in a test)."""
        from aws_cdk import CfnElement

        node = construct if isinstance(construct, CfnElement) else construct.node.default_child
        return str(self.stack.resolve(self.stack.get_logical_id(node)))


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    from aws_cdk.assertions import Template

    from infra.app import build_app

    started = time.monotonic()
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    outdir = tmp_path_factory.mktemp("cdk.out")
    app, stack = build_app(outdir=str(outdir), context=context)
    # cdk-nag runs here as a validation plugin: an unacknowledged finding fails the synth.
    app.synth()
    template_path = outdir / stack.template_file
    yield Synth(
        app=app,
        stack=stack,
        template=Template.from_stack(stack),
        template_json=json.loads(template_path.read_text()),
        template_path=template_path,
        seconds=time.monotonic() - started,
    )
