"""SQS → Lambda event source mappings, as local threads: receive up to 10 messages,
invoke the handler with the SQS event, delete what succeeded, and leave the reported
batch item failures to come back (with a short backoff) until the queue's redrive
policy moves them to the dead-letter queue.

The background threads long-poll (WaitTimeSeconds=LONG_POLL_S), as Lambda's pollers do:
an idle queue costs no requests, and a message sent is received at once rather than
after the next of a backing-off series of empty receives."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import boto3

from nudge.local.emulation import REGION
from nudge.local.lambdas import Function, sqs_event

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import MessageTypeDef

log = logging.getLogger("nudge.local")
LONG_POLL_S = 1  # the background threads' WaitTimeSeconds: how long stop() may wait


class QueuePoller:
    def __init__(
        self,
        *,
        queue_url: str,
        function: Function,
        endpoint_url: str,
        batch_size: int = 10,
        workers: int = 1,
    ) -> None:
        self.queue_url = queue_url
        self.function = function
        self.batch_size = batch_size
        self._sqs = boto3.client("sqs", endpoint_url=endpoint_url, region_name=REGION)
        self.queue_arn = self._sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        self._stop = threading.Event()
        self._busy = 0
        self._busy_lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, name=f"poller-{function.name}-{i}", daemon=True)
            for i in range(workers)
        ]
        self.batches = 0
        self.failures = 0

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self, *, wait: bool = True) -> None:
        """Stops the threads (after their current poll: up to LONG_POLL_S); wait=False
        only tells them, so that several pollers stop at once."""
        self._stop.set()
        if not wait:
            return
        for t in self._threads:
            if t.is_alive():
                t.join(timeout=LONG_POLL_S + 5)

    @property
    def busy(self) -> bool:
        """A batch is being handled. A receive under way is not counted: the messages it
        takes are in flight, which pending() counts, until the batch deletes them."""
        return self._busy > 0

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once(wait_seconds=LONG_POLL_S)
            except Exception:  # keep polling: a poller that dies silently loses the queue
                log.exception("poller %s failed", self.function.name)
                self._stop.wait(0.1)

    def poll_once(self, wait_seconds: int = 0) -> bool:
        resp = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=wait_seconds,
        )
        messages = resp.get("Messages", [])
        if not messages:
            return False
        with self._busy_lock:
            self._busy += 1
        try:
            self._deliver(messages)
        finally:
            with self._busy_lock:
                self._busy -= 1
        return True

    def _deliver(self, messages: Sequence[MessageTypeDef]) -> None:
        self.batches += 1
        try:
            result = self.function.invoke(sqs_event(messages, self.queue_arn)) or {}
            failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
        except Exception:
            log.exception("%s handler raised; the whole batch will be retried", self.function.name)
            failed = {m["MessageId"] for m in messages}
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)
                ],
            )
        retry = [m for m in messages if m["MessageId"] in failed]
        if retry:
            self.failures += len(retry)
            # Lambda leaves them invisible for the queue's visibility timeout; locally a
            # short backoff keeps `settle` quick while still counting receives toward the DLQ.
            self._sqs.change_message_visibility_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {
                        "Id": str(i),
                        "ReceiptHandle": m["ReceiptHandle"],
                        "VisibilityTimeout": min(
                            2, int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
                        )
                        - 1,
                    }
                    for i, m in enumerate(retry)
                ],
            )

    def pending(self) -> int:
        attrs = self._sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(
            attrs["ApproximateNumberOfMessagesNotVisible"]
        )


def drain(pollers: list[QueuePoller], timeout_s: float = 60.0) -> bool:
    """Runs the queues' batches in the calling thread, the pollers' own way (poll_once),
    until every queue is empty: local mode with its pollers not started
    (LocalConfig.background_pollers=False), so a run is deterministic (`nudge bench`)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        worked = False
        for p in pollers:
            while p.poll_once():
                worked = True
        if not worked:
            if all(p.pending() == 0 for p in pollers):
                return True
            time.sleep(0.02)  # retried messages wait out their short visibility backoff
    return False


def settle(pollers: list[QueuePoller], timeout_s: float = 60.0) -> bool:
    """Waits until every queue is drained and no handler is running."""
    deadline = time.monotonic() + timeout_s
    quiet = 0
    while time.monotonic() < deadline:
        if all(not p.busy for p in pollers) and all(p.pending() == 0 for p in pollers):
            quiet += 1
            if quiet >= 2:
                return True
        else:
            quiet = 0
        time.sleep(0.01)
    return False
