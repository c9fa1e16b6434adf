"""The AWS CDK app of nudge: one stack, one construct per capability (infra/constructs/)."""
