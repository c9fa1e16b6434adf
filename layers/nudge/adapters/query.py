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
