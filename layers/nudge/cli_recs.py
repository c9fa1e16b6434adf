"""`nudge recs evaluate --interactions FILE.csv [--k 10] [--json]`: the recommender's
offline evaluation (nudge.learn.evaluate, docs/personalization.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from nudge.cli_output import err_console, fail, new_app, out_console, plain_table, print_json

EVALUATE_EPILOG = """\
FILE.csv has a header line naming user_id, item_id, timestamp and optionally event.
Timestamps are unix seconds, unix milliseconds (told apart per file) or ISO 8601; events
are Segment's (Product Viewed, Product Added, Order Completed; another counts as a view).

Leave-last-out: each user's chronologically last item is held out, the models learn from
the rest, and every item the user did not interact with in training is ranked. The item
model's parameters are tuned on a validation split of the training data (each user's
last training item), never on the held-out items. Baselines: popularity, and implicit's
ALS (128 factors) when `implicit` is installed.

Output: HR@k and NDCG@k per model, the data's size and the tuned parameters; with
--json one object `{"model": {"hr", "ndcg"}, "popularity": {...}, "als": {...}, "k"}`
("als" only when it ran).
Exit status: 0; 2 an unreadable file, or one with no user to evaluate.
"""


def register(app: typer.Typer) -> None:
    """Adds `recs` and its subcommands to the `nudge` app."""
    recs = new_app("recs", "The recommender: offline evaluation.")
    recs.command("evaluate", epilog=EVALUATE_EPILOG)(evaluate_command)
    app.add_typer(recs)


@contextmanager
def stages() -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar per stage on stderr (a terminal only: a pipe gets nothing)."""
    console = err_console()
    if not console.is_terminal:
        yield lambda stage, done, total: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("{task.description:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    tasks: dict[str, Any] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done, total=total)

    with bar:
        yield update


def evaluate_command(
    interactions: Annotated[
        Path,
        typer.Option(
            "--interactions",
            metavar="FILE.csv",
            help="user_id,item_id,timestamp[,event] with a header line",
        ),
    ],
    k: Annotated[
        int, typer.Option("--k", min=1, max=1000, help="the cut-off of HR@k and NDCG@k")
    ] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Leave-last-out HR@k and NDCG@k of the recommender, popularity and ALS."""
    from nudge.learn.evaluate import InteractionsFileError, evaluate, read_interactions

    try:
        data = read_interactions(interactions)
    except (OSError, UnicodeDecodeError) as err:
        fail(f"{interactions}: {err}")
    except InteractionsFileError as err:
        fail(f"{interactions}: {err}")
    with stages() as progress:
        result = evaluate(data, k=k, progress=progress)
    if not result["users"]:
        fail(f"{interactions}: no user has both a held-out item and an earlier one")
    if as_json:  # exactly the documented keys (the rest is on a terminal's last line)
        print_json(
            {key: result[key] for key in ("model", "popularity", "als", "k") if key in result}
        )
        return
    table = plain_table("model", f"HR@{k}", f"NDCG@{k}", right=(1, 2))
    for name in ("model", "popularity", "als"):
        if name in result:
            table.add_row(name, f"{result[name]['hr']:.4f}", f"{result[name]['ndcg']:.4f}")
    out = out_console()
    out.print(table)
    out.print(
        f"{result['users']:,} users, {result['items']:,} items, "
        f"{result['interactions']:,} interactions; tuned: {result['params']}"
        + ("" if "als" in result else "; ALS skipped (pip install implicit)"),
        highlight=False,
    )
