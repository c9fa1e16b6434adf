"""The query engine named by the configuration (NUDGE_QUERY_ENGINE): DuckDB over the
archive bucket (default), or Athena over the Glue table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nudge import constants as C
from nudge.domain.ports import QueryEngine
from nudge.settings import QuerySettings

if TYPE_CHECKING:
    from mypy_boto3_athena import AthenaClient
    from mypy_boto3_s3 import S3Client


def query_engine(
    settings: QuerySettings,
    *,
    s3_client_factory: Callable[[], S3Client] | None = None,
    athena_client: AthenaClient | None = None,
    glue_table: str = C.GLUE_EVENTS_TABLE,
    **engine_options: Any,
) -> QueryEngine:
    """The engine; clients are created only when first needed (default: nudge's cached
    clients, honouring AWS_ENDPOINT_URL). `engine_options` go to the engine's
    constructor (timeout_seconds, progress, ...)."""
    from nudge.adapters.erased import S3ErasedIds

    def s3() -> S3Client:
        if s3_client_factory is not None:
            return s3_client_factory()
        from nudge.adapters.aws import client

        return client("s3")

    erased = S3ErasedIds(settings.archive_bucket, s3=_Lazy(s3)) if settings.archive_bucket else None
    engine_options.setdefault("erased", erased.digests if erased is not None else None)
    if settings.engine == "athena":
        from nudge.adapters.query_athena import AthenaQueryEngine

        if athena_client is None:
            from nudge.adapters.aws import client

            athena_client = client("athena")
        return AthenaQueryEngine(
            settings.athena_workgroup,
            settings.glue_database,
            glue_table,
            athena_client,
            **engine_options,
        )
    from nudge.adapters.query_duckdb import DuckDbQueryEngine

    if s3_client_factory is None:
        from nudge.adapters.aws import client

        def s3_client_factory() -> S3Client:
            return client("s3")

    return DuckDbQueryEngine(
        settings.archive_bucket,
        cache_dir=Path(settings.archive_cache_dir),
        s3_client_factory=s3_client_factory,
        **engine_options,
    )


class _Lazy:
    """An S3 client made on first use (the engines make theirs only when they query)."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._client: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._client is None:
            self._client = self._factory()
        return getattr(self._client, name)
