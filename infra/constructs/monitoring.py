"""Monitoring: alarms on every dead-letter queue that holds a message, every function
that reports errors, every work queue whose oldest message waits too long, every
Firehose delivery stream that fails to deliver to S3, SES bounce and complaint rates
nearing the account's review thresholds, and each trigger whose hourly fires leave their
usual band (CloudWatch anomaly detection); all of them notify one SNS topic. One
CloudWatch dashboard shows the same (docs/dashboard.md)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import aws_cdk as cdk
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct
from nudge import constants as C
from nudge.constants import DELIVERIES, DIM_CHANNEL, DIM_STATUS, DIM_TRIGGER, TRIGGER_FIRED
from nudge.domain.channels import CHANNELS

_MINUTE = cdk.Duration.minutes(1)
_FIVE_MINUTES = cdk.Duration.minutes(5)
_HOUR = cdk.Duration.hours(1)

# SES reviews an account at a 5 % bounce rate and may pause sending at 10 %; for
# complaints at 0.1 % and 0.5 %. The alarms fire at the review level, before a pause.
SES_BOUNCE_RATE_ALARM = 0.05
SES_COMPLAINT_RATE_ALARM = 0.001
# How long the oldest message of a work queue may wait: events feed 15-minute triggers,
# actions carry messages users expect now.
OLDEST_MESSAGE_ALARM_SECONDS = {C.EVENTS_QUEUE: 300, C.ACTIONS_QUEUE: 600}
DEFAULT_OLDEST_MESSAGE_ALARM_SECONDS = 600
# Width of the band of usual hourly fires per trigger, in standard deviations.
ANOMALY_STD_DEVS = 3


def nudge_metric(
    name: str, dimensions: Mapping[str, str], *, label: str, statistic: str = cw.Stats.SUM
) -> cw.Metric:
    """A metric of nudge's own (nudge.observability), with the service dimension."""
    return cw.Metric(
        namespace=C.METRICS_NAMESPACE,
        metric_name=name,
        dimensions_map={"service": C.SERVICE, **dimensions},
        period=_FIVE_MINUTES,
        statistic=statistic,
        label=label,
    )


_metric_ids = itertools.count()


def filled(metric: cw.Metric, label: str, period: cdk.Duration = _FIVE_MINUTES) -> cw.IMetric:
    """The metric with its empty periods as 0: nudge sends no record for a zero count.
    Each expression names its metric apart (a graph or alarm wants distinct ids)."""
    mid = f"nudge{next(_metric_ids)}"
    return cw.MathExpression(
        expression=f"FILL({mid}, 0)", using_metrics={mid: metric}, label=label, period=period
    )


class Monitoring(Construct):
    """``topic`` (SNS, where every alarm notifies), the alarms by name
    (``dlq_alarms``, ``error_alarms``, ``age_alarms``, ``delivery_alarms``,
    ``ses_alarms``, ``anomaly_alarms`` by trigger id) and ``dashboard``.

    Subscribe the operator's address or pager to ``topic``
    (`aws sns subscribe --topic-arn <AlarmTopicArn> --protocol email ...`).
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
        trigger_ids: Sequence[str] = (),
    ) -> None:
        super().__init__(scope, id)
        # CloudWatch publishes to an encrypted topic only with a customer managed key
        # whose policy lets it use the key (the AWS managed alias/aws/sns does not).
        self.topic_key = kms.Key(
            self,
            "AlarmTopicKey",
            description="nudge: encrypts alarm notifications in SNS",
            enable_key_rotation=True,
            removal_policy=cdk.RemovalPolicy.DESTROY,  # messages in flight only
        )
        stack = cdk.Stack.of(self)
        self.topic_key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:GenerateDataKey*", "kms:Decrypt"],
                resources=["*"],  # in a key policy, "*" is this key
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            )
        )
        self.topic = sns.Topic(
            self,
            "AlarmTopic",
            display_name="nudge alarms",
            master_key=self.topic_key,
            enforce_ssl=True,
        )
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

        self.age_alarms: dict[str, cw.Alarm] = {}
        for name, queue in work_queues.items():
            limit = OLDEST_MESSAGE_ALARM_SECONDS.get(name, DEFAULT_OLDEST_MESSAGE_ALARM_SECONDS)
            self.age_alarms[name] = cw.Alarm(
                self,
                f"{name.title().replace('-', '')}OldestMessage",
                alarm_description=f"nudge: a message of the {name} queue has waited over "
                f"{limit} s (processing lags)",
                metric=queue.metric_approximate_age_of_oldest_message(
                    period=_MINUTE, statistic=cw.Stats.MAXIMUM
                ),
                threshold=limit,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=3,
                datapoints_to_alarm=3,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            )

        # Account-wide reputation metrics SES publishes (no dimension).
        ses_rates = {
            "bounce": ("Reputation.BounceRate", SES_BOUNCE_RATE_ALARM),
            "complaint": ("Reputation.ComplaintRate", SES_COMPLAINT_RATE_ALARM),
        }
        self.ses_alarms: dict[str, cw.Alarm] = {}
        for kind, (metric_name, limit) in ses_rates.items():
            self.ses_alarms[kind] = cw.Alarm(
                self,
                f"Ses{kind.title()}Rate",
                alarm_description=f"nudge: the SES {kind} rate reached {limit:.1%}, where SES "
                "reviews the account (it may pause sending at twice that or more)",
                metric=cw.Metric(
                    namespace="AWS/SES",
                    metric_name=metric_name,
                    period=_HOUR,
                    statistic=cw.Stats.MAXIMUM,
                ),
                threshold=limit,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                evaluation_periods=1,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,  # nothing sent
            )

        # Fires per trigger per hour (0 when none, so a trigger that stops firing is an
        # anomaly too) against the band CloudWatch learns from its history.
        fired = {
            tid: nudge_metric(TRIGGER_FIRED, {DIM_TRIGGER: tid}, label=tid) for tid in trigger_ids
        }
        self.anomaly_alarms: dict[str, cw.Alarm] = {}
        for tid, metric in fired.items():
            self.anomaly_alarms[tid] = cw.AnomalyDetectionAlarm(
                self,
                "Anomaly" + "".join(p.title() for p in tid.replace("-", "_").split("_")),
                alarm_description=f"nudge: trigger {tid} fires outside its usual hourly range",
                metric=filled(metric.with_(period=_HOUR), tid, _HOUR),
                std_devs=ANOMALY_STD_DEVS,
                comparison_operator=(
                    cw.ComparisonOperator.LESS_THAN_LOWER_OR_GREATER_THAN_UPPER_THRESHOLD
                ),
                evaluation_periods=3,
                datapoints_to_alarm=2,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            )

        # The train run kept the recommender in service: the new one scored worse on the
        # most recent day (a drop in what users respond to, or in the data)
        self.recs_alarm = cw.Alarm(
            self,
            "RecsModelRejected",
            alarm_description="nudge: a trained recommender scored below the one in service "
            "on the most recent day (HR@10) and was not promoted",
            metric=nudge_metric(
                C.RECS_REJECTED, {}, label="rejected", statistic=cw.Stats.MAXIMUM
            ).with_(period=_HOUR),
            threshold=1,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )

        alarms: list[cw.Alarm] = [
            self.recs_alarm,
            *self.dlq_alarms.values(),
            *self.error_alarms.values(),
            *self.age_alarms.values(),
            *self.delivery_alarms.values(),
            *self.ses_alarms.values(),
            *self.anomaly_alarms.values(),
        ]
        notify = cw_actions.SnsAction(self.topic)
        for alarm in alarms:
            alarm.add_alarm_action(notify)
        self.alarms = alarms

        self.dashboard = cw.Dashboard(self, "Dashboard", default_interval=cdk.Duration.hours(3))
        self.dashboard.add_widgets(
            cw.AlarmStatusWidget(title="Alarms", alarms=list(alarms), width=24, height=4)
        )
        events_queue = work_queues.get(C.EVENTS_QUEUE)
        ingest_rate: list[cw.IMetric] = [
            filled(nudge_metric("EventsProcessed", {}, label="events processed"), "processed")
        ]
        if events_queue is not None:
            ingest_rate.append(
                events_queue.metric_number_of_messages_sent(
                    period=_FIVE_MINUTES, label="messages into the events queue"
                )
            )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Ingest rate (per 5 min)",
                left=ingest_rate,
                right=[filled(nudge_metric("EventsRejected", {}, label="rejected"), "rejected")],
                width=8,
            ),
            cw.GraphWidget(
                title="Sends per channel (per 5 min)",
                left=[
                    filled(
                        nudge_metric(DELIVERIES, {DIM_CHANNEL: ch, DIM_STATUS: "sent"}, label=ch),
                        ch,
                    )
                    for ch in CHANNELS
                ],
                right=[
                    filled(
                        nudge_metric(DELIVERIES, {DIM_CHANNEL: ch, DIM_STATUS: "failed"}, label=ch),
                        f"{ch} failed",
                    )
                    for ch in CHANNELS
                ],
                width=8,
            ),
            cw.GraphWidget(
                title="Fired per trigger (per 5 min)",
                left=[filled(m, tid) for tid, m in fired.items()],
                width=8,
            ),
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
                title="Processing lag: age of the oldest message (s)",
                left=[
                    q.metric_approximate_age_of_oldest_message(period=_MINUTE, label=n)
                    for n, q in work_queues.items()
                ],
                width=8,
            ),
            cw.GraphWidget(
                title="Dead-letter queue sizes",
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
