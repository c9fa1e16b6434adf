"""An erased user's experiment assignments, kept as anonymous aggregates (erase keeps
only anonymous aggregates of assignments: docs/erase.md).

An experiment's report counts each exposed user once, in the variant and on the UTC day
of their first exposure, with their outcome and pre-exposure covariate per metric
(nudge.domain.experiment_report.aggregates_sql). Before a user is erased, that share of
every experiment they were exposed to (the same sums, for their ids only) is read from
the archive; once the user is erased it is archived again as an `Experiment Aggregate`
event that names no one (no user id, no anonymous id, a random message id), which the
report adds to its variant and day. So an experiment's users, conversions, rates and
tests are what they were, and nothing in them leads back to the user.

Pure: the archive is read through the QueryEngine port and written through ArchiveWriter.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nudge.domain.archive import ArchiveRecord
from nudge.domain.events import Event
from nudge.domain.experiment_report import ROW_COLUMNS, aggregates_sql, sql_string
from nudge.domain.outcomes import CONTEXT, EXPERIMENT_AGGREGATE
from nudge.domain.ports import ArchiveWriter, QueryEngine
from nudge.domain.query import json_safe
from nudge.domain.triggers.model import Experiment


def exposed_sql(ids: Sequence[str]) -> str:
    """The experiments the ids were exposed to (their `Experiment Viewed` events)."""
    listed = ", ".join(sql_string(i) for i in ids) or "NULL"
    return (
        "SELECT DISTINCT json_extract_string(properties, '$.experiment_id') AS experiment_id "
        "FROM events WHERE type = 'track' AND event = 'Experiment Viewed' "
        f"AND user_id IN ({listed})"
    )


def aggregate_event(share: dict[str, Any], *, at: datetime) -> Event:
    """One erased user's share of one experiment (variant and day), as archived: no id."""
    return Event(
        type="track",
        message_id=f"aggregate-{uuid.uuid4().hex}",  # random: nothing derived from the user
        event=EXPERIMENT_AGGREGATE,
        properties=share,
        context=CONTEXT,
        timestamp=at,
        received_at=at,
    )


@dataclass
class AnonymousAssignments:
    """What erase does with experiment assignments (nudge.domain.erase.Assignments):
    `experiments` are the deployment's definitions, `engine` reads the archive, `archive`
    writes the anonymous shares."""

    experiments: Sequence[Experiment]
    engine: QueryEngine
    archive: ArchiveWriter

    def shares(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """The ids' share of each experiment they were exposed to: one row per variant and
        day of first exposure (one, unless the ids were exposed separately), each with
        `experiment_id`, `variation_id`, `day` and the report's sums."""
        if not ids:
            return []
        exposed = {str(r[0]) for r in self.engine.query(exposed_sql(ids)).rows if r[0]}
        out: list[dict[str, Any]] = []
        for exp in self.experiments:
            if exp.id not in exposed:
                continue
            result = self.engine.query(
                aggregates_sql(exp.id, exp.goal.event, exp.goal.within, users=list(ids))
            )
            for row in result.rows:
                values = dict(zip(result.columns, (json_safe(v) for v in row), strict=True))
                out.append(
                    {
                        "experiment_id": exp.id,
                        "variation_id": values["variant"],
                        "day": values["day"],
                        **{c: values[c] or 0 for c in ROW_COLUMNS},
                    }
                )
        return out

    def keep(self, shares: Sequence[dict[str, Any]], *, at: datetime) -> int:
        """Archives the shares as anonymous aggregates; how many."""
        if shares:
            events = [aggregate_event(dict(s), at=at) for s in shares]
            self.archive.write([ArchiveRecord.of(e, None).line() for e in events])
        return len(shares)
