"""Adapters: the only place that talks to AWS (boto3, PynamoDB). They turn rows into
domain objects; a PynamoDB Model never leaks into nudge.domain."""
