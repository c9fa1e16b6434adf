"""CDK entry point (cdk.json: ``.venv/bin/python infra/app.py``).

``build_app()`` is what both ``cdk synth`` and the infra tests use, so the tests check
the very app that deploys, cdk-nag included.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, Python puts infra/ first on sys.path, where infra/constructs would
# shadow the `constructs` library: import from the repository root instead.
if sys.path and Path(sys.path[0]).resolve() == ROOT / "infra":
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The jsii runtime (Node.js) prints a banner about Node 20 to every synth: silence it
# before jsii starts (a caller's own setting wins).
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import aws_cdk as cdk  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from infra.stack import NudgeStack  # noqa: E402

STACK_NAME = "Nudge"


def build_app(**app_kwargs: object) -> tuple[cdk.App, NudgeStack]:
    app = cdk.App(**app_kwargs)  # type: ignore[arg-type]
    stack = NudgeStack(
        app,
        STACK_NAME,
        description="nudge: self-hosted behavioral engagement engine",
    )
    cdk.Tags.of(app).add("project", "nudge")
    # cdk-nag 3 is a CDK policy-validation plugin: any unacknowledged AwsSolutions
    # finding, error or warning, fails the synth with a report.
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return app, stack


if __name__ == "__main__":
    app, _ = build_app()
    app.synth()
