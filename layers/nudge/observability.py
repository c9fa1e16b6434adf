"""One Logger, Tracer and Metrics for every function (Powertools). Service name and
namespace come from POWERTOOLS_SERVICE_NAME / POWERTOOLS_METRICS_NAMESPACE."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_lambda_powertools import Logger, Metrics, Tracer, single_metric
from aws_lambda_powertools.metrics import MetricUnit

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


def count_by(name: str, dimensions: Sequence[str], counts: Mapping[tuple[str, ...], int]) -> None:
    """One count per combination of dimension values (with the service dimension all
    of nudge's metrics carry), each as its own EMF record: Powertools' `single_metric`,
    since `metrics.add_dimension` would put a value on every metric of the
    invocation. Nothing is printed where metrics are disabled (local mode, tests)."""
    from aws_lambda_powertools.metrics.functions import is_metrics_disabled

    if is_metrics_disabled():
        return
    for values, count in sorted(counts.items()):
        if count <= 0:
            continue
        dims = {"service": SERVICE, **dict(zip(dimensions, values, strict=True))}
        with single_metric(
            name=name,
            unit=MetricUnit.Count,
            value=count,
            namespace=METRICS_NAMESPACE,
            default_dimensions=dims,
        ):
            pass
