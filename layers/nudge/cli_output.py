"""How every `nudge` command looks, in one place: its typer app, and what it prints.

On stdout the result: a rich table for people, or with `--json` exactly one JSON document
and nothing else. On stderr progress, notes and errors. A user's mistake (a missing file,
a server that does not answer, a bad line) is one red line, `error: ...`, and exit status
2, never a traceback.

Imported by the CLI only (typer and rich are the `local` extra, not in the Lambda layer).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Annotated, Any, Literal, NoReturn

import typer
from rich.console import Console
from rich.table import Table

USER_ERROR = 2  # exit status of a user's mistake (click's, for a usage error, too)
PIPED_WIDTH = 10_000  # a table's rows are not folded when piped
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


DEFAULT_URL = "http://127.0.0.1:8080"  # local mode (`make run`, `nudge dev`)

# the --url option of the commands that talk to a nudge endpoint
EndpointUrl = Annotated[
    str, typer.Option(envvar="NUDGE_URL", help="the nudge endpoint (local mode or the API)")
]
# the --admin-key option of the commands that call the API's admin routes
AdminKey = Annotated[
    str | None,
    typer.Option(
        envvar="NUDGE_ADMIN_KEY", help="the admin key (`nudge dev` prints it)", show_default=False
    ),
]
API_TIMEOUT_S = 60.0


def api_json(url: str, admin_key: str | None, *, method: str = "GET", body: Any = None) -> Any:
    """One call of an admin route with the admin key, its JSON answer; no key, a refusal
    or no answer is the user's to fix (exit 2, with the API's message)."""
    import urllib.error
    import urllib.request

    if not admin_key:
        fail("no admin key: pass --admin-key or set NUDGE_ADMIN_KEY")
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {admin_key}"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=API_TIMEOUT_S) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as err:
        try:
            answer = json.loads(err.read())
            message = answer.get("message") or answer.get("error") or str(err)
        except ValueError:
            message = str(err)
        fail(f"{url}: {err.code} {message}")
    except (OSError, ValueError) as err:
        fail(f"no nudge answers at {url}: {err}")


def new_app(name: str, help: str) -> typer.Typer:
    """A typer app (the root, or a command group) as every nudge command has it: `-h`,
    help when called bare, no shell-completion commands, no rich tracebacks."""
    return typer.Typer(
        name=name,
        help=help,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings=CONTEXT,
        # docstrings are wrapped at 88 columns: markdown joins their lines into paragraphs
        # (rich mode keeps each line break, and the help came out ragged at 80 columns)
        rich_markup_mode="markdown",
    )


class UserError(Exception):
    """A mistake of the user's, told in one line (the CLI exits 2 with it)."""

    def __init__(self, message: str, code: int = USER_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def one_line(message: str) -> str:
    """A message on one line: blank lines dropped, the others joined by a space."""
    return " ".join(line.strip() for line in str(message).strip().splitlines() if line.strip())


def err_console() -> Console:
    # bound to sys.stderr as it is when printing (pytest's capture, redirect_stderr)
    return Console(stderr=True, highlight=False, soft_wrap=True)


def out_console(file: IO[str] | None = None) -> Console:
    """stdout for tables: the terminal's width there; piped, as wide as a row needs (no
    folded cells, so `grep`, `awk` and `cut` see one row per line)."""
    stream = file or sys.stdout
    width = None if stream.isatty() else PIPED_WIDTH
    return Console(file=stream, highlight=False, soft_wrap=False, width=width)


def error(message: str) -> None:
    """`error: message` on stderr, one line, red on a terminal."""
    err_console().print(f"error: {one_line(message)}", style="red", markup=False)


def note(message: str) -> None:
    """A remark on stderr (dim on a terminal); stdout stays the result's."""
    err_console().print(message, style="dim", markup=False)


def fail(message: str, code: int = USER_ERROR) -> NoReturn:
    """Ends the command: one red line on stderr, exit status `code` (2: the user's to fix)."""
    error(message)
    raise typer.Exit(code)


def print_json(document: Any, *, indent: int | None = None) -> None:
    """The one JSON document of `--json` on stdout (a closed pipe, `| head`, is no error)."""
    text = json.dumps(document, indent=indent, ensure_ascii=False, default=str)
    write_stdout(text + "\n")


def write_stdout(text: str) -> None:
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:  # the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def plain_table(*columns: str, right: tuple[int, ...] = ()) -> Table:
    """A table without vertical rules: one row a line, cells split by whitespace (piped,
    as wide as it needs). On a terminal too narrow the first column folds its cells, the
    others keep theirs whole."""
    from rich import box

    table = Table(
        box=box.SIMPLE_HEAD,
        header_style="bold",
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    for i, name in enumerate(columns):
        justify: Literal["left", "right"] = "right" if i in right else "left"
        if i == 0:
            table.add_column(name, justify=justify, overflow="fold")
        else:
            table.add_column(name, justify=justify, no_wrap=True, min_width=len(name))
    return table


def print_problems(problems: Sequence[object]) -> None:
    """Validation problems, each `file:line: message`: piped, one a line (what editors
    and grep read); on a terminal, a table of where and what."""
    if not sys.stdout.isatty():
        write_stdout("".join(f"{problem}\n" for problem in problems))
        return
    from rich.text import Text

    table = Table(header_style="bold")
    table.add_column("where", no_wrap=True, style="cyan")
    table.add_column("problem", overflow="fold")
    for problem in problems:
        located = _LOCATED.match(str(problem))
        where, what = located.groups() if located else ("", str(problem))
        table.add_row(Text(where), Text(what))
    out_console().print(table)


_LOCATED = re.compile(r"(.+?:\d+): (.*)", re.S)  # file:line: message


@contextmanager
def progress(
    description: str, total: int | None, *, unit: str = "events", rate: bool = False
) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr for `total` things (None: a spinner and a count);
    yields `advance(n)`. On a terminal only: a log or a pipe gets nothing (the result,
    on stdout, says what was done)."""
    console = err_console()
    if not console.is_terminal:
        yield lambda n: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns: list[Any] = [TextColumn("[progress.description]{task.description}")]
    if total is None:
        columns = [SpinnerColumn(), *columns, TextColumn("{task.completed:,}")]
    else:
        columns += [BarColumn(), MofNCompleteColumn()]
    columns.append(TextColumn(unit))
    if rate:
        columns.append(TextColumn("{task.fields[rate]}"))
    columns.append(TimeElapsedColumn())
    bar = Progress(*columns, console=console, transient=False)
    task = bar.add_task(description, total=total, rate="")
    with bar:

        def advance(n: int) -> None:
            bar.advance(task, n)
            if rate:
                speed = bar.tasks[task].speed
                bar.update(task, rate=f"{speed:,.0f}/s" if speed else "")

        try:
            yield advance
        except BaseException:
            bar.live.transient = True  # an error is the last word, not a half-done bar
            raise


def exit_code(value: Any) -> None:
    """Ends a command with a helper's int status (0 returns quietly)."""
    code = int(value or 0)
    if code:
        raise typer.Exit(code)
