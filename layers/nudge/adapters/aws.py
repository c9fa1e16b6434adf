"""boto3 clients, created lazily (never at import time, so tests can start moto first)
and cached per process. The endpoint comes from boto3's own AWS_ENDPOINT_URL setting,
which local mode points at its embedded moto server."""

from __future__ import annotations

import threading
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, overload

import boto3
from botocore.client import BaseClient
from botocore.config import Config

from nudge.settings import AwsSettings

if TYPE_CHECKING:  # the stubs are a dev dependency (boto3-stubs), not shipped in the layer
    from mypy_boto3_athena import AthenaClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_firehose import FirehoseClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_scheduler import EventBridgeSchedulerClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sesv2 import SESV2Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

_lock = threading.Lock()


def region() -> str:
    return AwsSettings().region


# One overload per service the code calls, so each call site is checked against that
# service's API (boto3-stubs); a service not listed here is a type error until it is added.
# botocore's retry settings, hashable for the client cache
STANDARD: tuple[tuple[str, Any], ...] = (("mode", "standard"), ("max_attempts", 5))
ONE_ATTEMPT: tuple[tuple[str, Any], ...] = (("mode", "standard"), ("total_max_attempts", 1))


@overload
def client(service: Literal["athena"]) -> AthenaClient: ...
@overload
def client(service: Literal["dynamodb"]) -> DynamoDBClient: ...
@overload
def client(service: Literal["firehose"]) -> FirehoseClient: ...
@overload
def client(service: Literal["s3"]) -> S3Client: ...
@overload
def client(service: Literal["scheduler"]) -> EventBridgeSchedulerClient: ...
@overload
def client(service: Literal["secretsmanager"]) -> SecretsManagerClient: ...
@overload
def client(service: Literal["sesv2"]) -> SESV2Client: ...
@overload
def client(service: Literal["sns"]) -> SNSClient: ...
@overload
def client(service: Literal["sqs"]) -> SQSClient: ...
def client(service: str) -> BaseClient:
    return _cached_client(service)


@cache
def _cached_client(service: str, retries: tuple[tuple[str, Any], ...] = STANDARD) -> BaseClient:
    """One client per service and retry policy (a botocore client is thread-safe; the
    session that makes it is not: the lock)."""
    with _lock:
        made: BaseClient = boto3.session.Session().client(
            # a plain str matches none of boto3-stubs' per-service overloads; the overloads
            # of client() above type what callers get
            service,  # type: ignore[call-overload]
            region_name=region(),
            config=Config(retries=dict(retries), max_pool_connections=50),  # type: ignore[arg-type]
        )
        return made


@overload
def send_client(service: Literal["sesv2"]) -> SESV2Client: ...
@overload
def send_client(service: Literal["sns"]) -> SNSClient: ...
def send_client(service: str) -> BaseClient:
    """The client that sends messages (SES, SNS): one attempt per call. The SDK's retries
    would repeat a send after a 5xx or a read timeout, after which the provider may have
    sent it already; the senders (nudge.adapters.delivery) retry only what certainly
    did not go out (throttling, no connection) and report the rest as ambiguous."""
    return _cached_client(service, ONE_ATTEMPT)


def reset_clients() -> None:
    """Forget cached clients (tests start a fresh moto per test)."""
    _cached_client.cache_clear()
