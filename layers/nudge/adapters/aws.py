"""boto3 clients, created lazily (never at import time, so tests can start moto first)
and cached per process. The endpoint comes from boto3's own AWS_ENDPOINT_URL setting,
which local mode points at its embedded moto server."""

from __future__ import annotations

import os
import threading
from functools import cache
from typing import Any

import boto3
from botocore.config import Config

_lock = threading.Lock()


def region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


@cache
def client(service: str) -> Any:
    with _lock:
        return boto3.session.Session().client(
            service,  # type: ignore[call-overload]
            region_name=region(),
            config=Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=50),
        )


def reset_clients() -> None:
    """Forget cached clients (tests start a fresh moto per test)."""
    client.cache_clear()
