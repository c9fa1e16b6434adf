"""CDK entry point (cdk.json: ``.venv/bin/python infra/app.py``).

``build_app()`` is what both ``cdk synth`` and the infra tests use, so the tests check
the very app that deploys, cdk-nag included.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, Python puts infra/ first on sys.path, where infra/constructs would
# shadow the `constructs` library: import from the repository root instead.
if sys.path and Path(sys.path[0]).resolve() == ROOT / "infra":
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# jsii's warning about an end-of-life Node.js (20) is left visible: Node 22 LTS is the
# one to use (README). The infra tests silence it for their own output only.

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
