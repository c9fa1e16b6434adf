"""One Logger, Tracer and Metrics for every function (Powertools). Service name and
namespace come from POWERTOOLS_SERVICE_NAME / POWERTOOLS_METRICS_NAMESPACE."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

from nudge.constants import METRICS_NAMESPACE, SERVICE

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE)
