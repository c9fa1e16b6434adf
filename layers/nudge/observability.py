"""One Logger, Tracer and Metrics for every function (Powertools). Service name and
namespace come from POWERTOOLS_SERVICE_NAME / POWERTOOLS_METRICS_NAMESPACE."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

from nudge.constants import METRICS_NAMESPACE, SERVICE

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE)


def _drop_disabled_metrics() -> None:
    """With POWERTOOLS_METRICS_DISABLED (local mode, tests) Powertools neither prints nor
    clears the metrics at flush, and prints them anyway once 100 pile up; clear them
    at each flush instead so local mode's output stays clean and memory flat."""
    from aws_lambda_powertools.metrics.functions import is_metrics_disabled

    if is_metrics_disabled():
        provider = metrics.provider
        # method-assign: this one provider's flush replaced, not Powertools' class
        provider.flush_metrics = lambda raise_on_empty_metrics=False: provider.clear_metrics()  # type: ignore[method-assign]


_drop_disabled_metrics()
