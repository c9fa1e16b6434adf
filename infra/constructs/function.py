"""The one way nudge defines a Lambda function: its own role, its own log group, arm64,
active tracing, the two layers, code from ``functions/<name>/``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.bundling import PYTHON_VERSION

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS_DIR = ROOT / "functions"

# Pinned together with the deps layer, which is built for this CPython (infra/bundling.py).
RUNTIME = lambda_.Runtime.PYTHON_3_12
ARCHITECTURE = lambda_.Architecture.ARM_64
assert RUNTIME.name == f"python{PYTHON_VERSION}", "runtime and deps layer must agree"

LOG_RETENTION = logs.RetentionDays.ONE_MONTH


class NudgeFunction(Construct):
    """A Lambda function with a least-privilege role of its own.

    The role starts empty but for writing to the function's own log group (no
    AWSLambdaBasicExecutionRole, whose log permissions span every log group) and X-Ray;
    the capability constructs add the grants their function needs.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        name: str,
        description: str,
        layers: Sequence[lambda_.ILayerVersion],
        environment: Mapping[str, str],
        memory_size: int = 512,
        timeout: cdk.Duration,
        function_name: str | None = None,
    ) -> None:
        super().__init__(scope, id)
        code_dir = FUNCTIONS_DIR / name
        if not (code_dir / "handler.py").is_file():
            raise FileNotFoundError(f"{code_dir}/handler.py is missing: every function needs one")

        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=LOG_RETENTION,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"nudge {name} function",
        )
        self.log_group.grant_write(self.role)

        self.function = lambda_.Function(
            self,
            "Function",
            function_name=function_name,
            description=description,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler="handler.handler",
            code=lambda_.Code.from_asset(str(code_dir), exclude=["__pycache__", "*.pyc"]),
            layers=list(layers),
            memory_size=memory_size,
            timeout=timeout,
            environment=dict(environment),
            role=self.role,
            log_group=self.log_group,
        )

        # lambda.Function makes its resource depend on the whole role construct (so that
        # the role's policies exist before the function runs); the part of that
        # DependsOn naming the role itself repeats the Role GetAtt, which cfn-lint W3005
        # reports. Harmless and not ours to change: silenced on this resource only.
        cfn_function = self.function.node.default_child
        assert isinstance(cfn_function, lambda_.CfnFunction)
        cfn_function.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3005"]}})

        # Active tracing, set on the resource rather than with `tracing=`: that would put
        # X-Ray's resource-'*' statement into the role's default policy, where the
        # IAM5[Resource::*] acknowledgment it needs would cover any other '*' added there
        # later. In a policy of its own, the acknowledgment covers X-Ray's two actions only.
        cfn_function.tracing_config = lambda_.CfnFunction.TracingConfigProperty(mode="Active")
        self.grant_unscoped(
            "XRay",
            actions=["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
            reason=(
                "Active tracing sends segments with xray:PutTraceSegments and "
                "xray:PutTelemetryRecords, which support no resource-level permissions "
                "(Service Authorization Reference), so their resource must be '*'."
            ),
        )

        cdk.Validations.of(self.function).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-L1",
                reason=(
                    f"The runtime is pinned to Python {PYTHON_VERSION} on purpose: the "
                    "dependencies layer is built from binary wheels for exactly this CPython "
                    "(infra/bundling.py), so the two move together, in one reviewed change."
                ),
            )
        )

    def grant_unscoped(self, id: str, *, actions: Sequence[str], reason: str) -> iam.Policy:
        """Grants actions that support no resource-level permissions (resource '*') in a
        policy of their own, so that the cdk-nag acknowledgment and its reason cover
        exactly these actions."""
        policy = iam.Policy(
            self,
            id,
            statements=[iam.PolicyStatement(actions=list(actions), resources=["*"])],
            roles=[self.role],
        )
        self.function.node.add_dependency(policy)
        cdk.Validations.of(policy).acknowledge(
            cdk.Acknowledgment(id="AwsSolutions-IAM5[Resource::*]", reason=reason)
        )
        return policy
