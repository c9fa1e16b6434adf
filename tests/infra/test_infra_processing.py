"""The process function consumes the events queue in batches with partial failures."""

from __future__ import annotations

import pytest
from nudge import constants as C

pytestmark = pytest.mark.infra


def test_events_queue_feeds_process_in_batches_with_partial_failures(synth):
    s = synth.stack
    synth.template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": {"Fn::GetAtt": [synth.logical_id(s.ingest.events_queue), "Arn"]},
            "FunctionName": {"Ref": synth.logical_id(s.processing.function)},
            "BatchSize": C.PROCESS_BATCH_SIZE,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
        },
    )
    assert C.PROCESS_BATCH_SIZE == 10
