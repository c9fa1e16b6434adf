"""Monitoring: an alarm on every dead-letter queue that holds a message, on every
function that reports errors and on every Firehose delivery stream that fails to deliver
to S3, and one CloudWatch dashboard."""

from __future__ import annotations

from collections.abc import Mapping

import aws_cdk as cdk
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

_MINUTE = cdk.Duration.minutes(1)
_FIVE_MINUTES = cdk.Duration.minutes(5)


class Monitoring(Construct):
    """``dlq_alarms``, ``error_alarms`` and ``delivery_alarms`` (by name), ``dashboard``.

    The alarms have no action: subscribe an SNS topic (``alarm.add_alarm_action``) where
    the operator wants to be paged.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        functions: Mapping[str, lambda_.IFunction],
        dead_letter_queues: Mapping[str, sqs.IQueue],
        work_queues: Mapping[str, sqs.IQueue],
        http_api: apigw.HttpApi,
        delivery_streams: Mapping[str, str] | None = None,  # name -> delivery stream name
    ) -> None:
        super().__init__(scope, id)
        self.dlq_alarms: dict[str, cw.Alarm] = {}
        for name, queue in dead_letter_queues.items():
            self.dlq_alarms[name] = cw.Alarm(
                self,
                f"{name.title().replace('-', '')}DlqNotEmpty",
                alarm_description=f"nudge: the {name} dead-letter queue holds messages",
                metric=queue.metric_approximate_number_of_messages_visible(
                    period=_MINUTE, statistic=cw.Stats.MAXIMUM
                ),
                threshold=0,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=1,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            )
        self.error_alarms: dict[str, cw.Alarm] = {}
        for name, fn in functions.items():
            self.error_alarms[name] = cw.Alarm(
                self,
                f"{name.title()}Errors",
                alarm_description=f"nudge: the {name} function reported errors",
                metric=fn.metric_errors(period=_FIVE_MINUTES, statistic=cw.Stats.SUM),
                threshold=0,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=1,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            )

        # DeliveryToS3.Success: the share of S3 puts that succeeded; below 1, Firehose is
        # retrying (it keeps records 24 h, then writes them under errors/).
        delivery_success = {
            name: cw.Metric(
                namespace="AWS/Firehose",
                metric_name="DeliveryToS3.Success",
                dimensions_map={"DeliveryStreamName": stream_name},
                period=_FIVE_MINUTES,
                statistic=cw.Stats.MINIMUM,
            )
            for name, stream_name in (delivery_streams or {}).items()
        }
        self.delivery_alarms: dict[str, cw.Alarm] = {}
        for name, metric in delivery_success.items():
            self.delivery_alarms[name] = cw.Alarm(
                self,
                f"{name.title().replace('-', '')}DeliveryFailing",
                alarm_description=f"nudge: the {name} delivery stream fails to write to S3",
                metric=metric,
                threshold=1,
                comparison_operator=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
                evaluation_periods=1,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,  # nothing to deliver
            )

        self.dashboard = cw.Dashboard(self, "Dashboard", default_interval=cdk.Duration.hours(3))
        alarms: list[cw.IAlarm] = [
            *self.dlq_alarms.values(),
            *self.error_alarms.values(),
            *self.delivery_alarms.values(),
        ]
        self.dashboard.add_widgets(
            cw.AlarmStatusWidget(title="Alarms", alarms=alarms, width=24, height=3)
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="HTTP API requests",
                left=[http_api.metric_count(period=_MINUTE)],
                right=[
                    http_api.metric_client_error(period=_MINUTE),
                    http_api.metric_server_error(period=_MINUTE),
                ],
                width=12,
            ),
            cw.GraphWidget(
                title="HTTP API latency (p50, p99)",
                left=[
                    http_api.metric_latency(period=_MINUTE, statistic="p50"),
                    http_api.metric_latency(period=_MINUTE, statistic="p99"),
                ],
                width=12,
            ),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Invocations",
                left=[
                    fn.metric_invocations(period=_MINUTE, label=n) for n, fn in functions.items()
                ],
                width=8,
            ),
            cw.GraphWidget(
                title="Errors and throttles",
                left=[fn.metric_errors(period=_MINUTE, label=n) for n, fn in functions.items()],
                right=[
                    fn.metric_throttles(period=_MINUTE, label=f"{n} throttles")
                    for n, fn in functions.items()
                ],
                width=8,
            ),
            cw.GraphWidget(
                title="Duration p99 (ms)",
                left=[
                    fn.metric_duration(period=_MINUTE, statistic="p99", label=n)
                    for n, fn in functions.items()
                ],
                width=8,
            ),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Queue depth",
                left=[
                    q.metric_approximate_number_of_messages_visible(period=_MINUTE, label=n)
                    for n, q in work_queues.items()
                ],
                width=8,
            ),
            cw.GraphWidget(
                title="Age of oldest message (s)",
                left=[
                    q.metric_approximate_age_of_oldest_message(period=_MINUTE, label=n)
                    for n, q in work_queues.items()
                ],
                width=8,
            ),
            cw.GraphWidget(
                title="Dead-letter queues",
                left=[
                    q.metric_approximate_number_of_messages_visible(period=_MINUTE, label=n)
                    for n, q in dead_letter_queues.items()
                ],
                width=8,
            ),
        )
        if delivery_streams:

            def firehose_metric(metric_name: str, stream_name: str, label: str) -> cw.Metric:
                return cw.Metric(
                    namespace="AWS/Firehose",
                    metric_name=metric_name,
                    dimensions_map={"DeliveryStreamName": stream_name},
                    period=_FIVE_MINUTES,
                    statistic=cw.Stats.SUM,
                    label=label,
                )

            self.dashboard.add_widgets(
                cw.GraphWidget(
                    title="Archive records in / delivered to S3",
                    left=[
                        firehose_metric("IncomingRecords", s, f"{n} in")
                        for n, s in delivery_streams.items()
                    ],
                    right=[
                        firehose_metric("DeliveryToS3.Records", s, f"{n} delivered")
                        for n, s in delivery_streams.items()
                    ],
                    width=12,
                ),
                cw.GraphWidget(
                    title="Archive delivery to S3 (share succeeded)",
                    left=[m.with_(label=n) for n, m in delivery_success.items()],
                    width=12,
                ),
            )
