"""The `nudge` command line: one typer app.

A command group is a typer sub-app in its own module (`nudge triggers`: cli_triggers.py,
`nudge templates`: cli_templates.py); a single command registers itself on the app
(`nudge sql`: cli_sql.py, `nudge bench`: bench.py, `nudge openapi`: cli_openapi.py). Each
module has `register(app)`, so a new group (`recs`, `report`, `keys`) is one module and
one line in `build_app`. What commands print, and how they fail, is cli_output.py's.

The Lambda functions never import this package's CLI modules: typer and rich are the
`local` extra, not in the Lambda layer.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import Annotated, Any

try:
    import typer
except ImportError:  # installed without the `local` extra
    sys.stderr.write("error: the nudge CLI needs its extra: pip install 'nudge[local]'\n")
    raise SystemExit(2) from None

from nudge import constants as C
from nudge.cli_output import (
    DEFAULT_URL,
    USER_ERROR,
    EndpointUrl,
    UserError,
    error,
    exit_code,
    fail,
    new_app,
)


def dev(
    host: Annotated[str, typer.Option(help="interface the HTTP API listens on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="PORT", help="HTTP API port")] = 8080,
    aws_port: Annotated[
        int | None,
        typer.Option(
            help="moto server port (default: HTTP port + 1, or a free one if that is taken; "
            "a taken --aws-port is exit status 2)",
            show_default=False,
        ),
    ] = None,
    write_key: Annotated[
        str | None,
        typer.Option(
            envvar="NUDGE_WRITE_KEY",
            help="the write key clients send events with (default: a new one each start)",
            show_default=False,
        ),
    ] = None,
    admin_key: Annotated[
        str | None,
        typer.Option(
            envvar="NUDGE_ADMIN_KEY",
            help="the admin key of the profile, report and key routes (default: a new one "
            "each start)",
            show_default=False,
        ),
    ] = None,
    triggers: Annotated[
        str | None,
        typer.Option(help="trigger definitions folder (default: ./triggers)", show_default=False),
    ] = None,
    verbose: Annotated[
        bool,
        typer.Option("--verbose", "-v", help="log every HTTP request, and the handlers at INFO"),
    ] = False,
    train_schedule: Annotated[
        str,
        typer.Option(
            envvar=C.ENV_TRAIN_SCHEDULE,
            help="the train function's recurring schedule, fired as the local clock passes it",
        ),
    ] = C.DEFAULT_TRAIN_SCHEDULE,
) -> None:
    """Run local mode (what `make run` starts), until Ctrl-C.

    The HTTP API and the same handlers as on AWS, against an embedded AWS emulation (a moto
    server). It prints the URL, the keys, and curl commands to try."""
    from nudge.local.emulation import PortInUseError
    from nudge.local.server import LocalConfig, LocalMode

    started = time.perf_counter()
    config = LocalConfig(
        host=host,
        port=port,
        aws_port=aws_port,
        write_key=write_key or None,
        admin_key=admin_key or None,
        triggers_path=triggers,
        verbose=verbose,
        train_schedule=train_schedule,
    )
    local = LocalMode(config)
    try:
        local.start()
    except PortInUseError as err:
        fail(str(err))
    assert local.resources is not None
    took = time.perf_counter() - started
    if aws_port is None and local.aws_port != port + 1:
        print(
            f"nudge dev: port {port + 1} is taken: the AWS emulation is on {local.aws_port}",
            file=sys.stderr,
        )
    print(
        f"""nudge local mode on {local.url}  (ready in {took:.1f} s)

  write key : {local.write_key}
  admin key : {local.admin_key}
  AWS (moto): {local.resources.endpoint_url}   region {local.resources.region}

  try:
    curl -s -u '{local.write_key}:' {local.url}/v1/identify -H 'Content-Type: application/json' \\
      -d '{{"userId": "u1", "traits": {{"email": "ada@example.com", "timezone": "Europe/London"}}}}'
    curl -s -u '{local.write_key}:' {local.url}/v1/track -H 'Content-Type: application/json' \\
      -d '{{"userId": "u1", "event": "Product Added", "properties": {{"product_id": "p1", "name": "Trail Shoe", "price": 89}}}}'
    curl -s -X POST {local.url}/_local/settle
    curl -s -H 'Authorization: Bearer {local.admin_key}' {local.url}/v1/users/u1
""",
        flush=True,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    local.stop()


REPLAY_EPILOG = """\
FILE.jsonl holds one Segment call a line (`type` required, as in a `/v1/batch` item). The
events are sent as they are: an event without `timestamp` is dated when nudge receives it,
as Segment does, and `sentAt` corrects the client's clock. To see what the triggers would
have done in the file's own time, use `nudge triggers backtest --events FILE.jsonl`.

Output: a summary line; with --json `{"sent", "rejected", "seconds"}`. Progress on stderr.
Exit status: 0 all accepted; 1 some events rejected (their reasons on stderr) or the server
failed; 2 an unreadable file or line, no write key, or no server at --url.
"""


def replay(
    file: Annotated[
        str, typer.Argument(metavar="FILE.jsonl", help="Segment-format events, one JSON a line")
    ],
    url: EndpointUrl = DEFAULT_URL,
    write_key: Annotated[
        str | None,
        typer.Option(
            envvar="NUDGE_WRITE_KEY",
            help="the write key (`nudge dev` prints it)",
            show_default=False,
        ),
    ] = None,
    use_import: Annotated[
        bool,
        typer.Option(
            "--import",
            help="send to /v1/import: profiles and the archive only, no trigger fires "
            "(backfilling history)",
        ),
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help='print {"sent", "rejected", "seconds"} as JSON')
    ] = False,
) -> None:
    """Send a JSONL file of Segment events to an endpoint, in batches of up to 100."""
    from nudge.replay import replay as send

    exit_code(
        send(file, url=url, write_key=write_key, use_import=use_import, json_output=json_output)
    )


def build_app() -> typer.Typer:
    """The `nudge` app with every command."""
    from nudge import (
        bench,
        cli_keys,
        cli_openapi,
        cli_recs,
        cli_report,
        cli_sql,
        cli_templates,
        cli_tracking,
        cli_triggers,
        cli_users,
    )

    app = new_app("nudge", "Self-hosted behavioral engagement engine.")
    app.command(epilog=None)(dev)
    app.command(epilog=REPLAY_EPILOG)(replay)
    cli_triggers.register(app)
    cli_templates.register(app)
    cli_sql.register(app)
    bench.register(app)
    cli_openapi.register(app)
    cli_report.register(app)
    cli_tracking.register(app)
    cli_keys.register(app)
    cli_recs.register(app)
    cli_users.register(app)
    return app


def command() -> Any:
    """The click command tree typer builds (what `--help` walks)."""
    return typer.main.get_command(build_app())


def is_click_error(err: BaseException, name: str = "ClickException") -> bool:
    """Whether `err` is click's `name` (or a subclass): by class name, as typer itself
    tells them apart, since typer may carry a click of its own (typer._click)."""
    return any(cls.__name__ == name for cls in type(err).__mro__)


def usage_line(err: Any) -> str:
    """A usage error in one line, pointing at the command's --help."""
    ctx = getattr(err, "ctx", None)
    where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    return f"{err.format_message()}{where}"


def main(argv: Sequence[str] | None = None) -> int:
    """Runs `nudge ARGV...` and returns its exit status: a usage error or a user's mistake
    is one line on stderr and 2, never a traceback."""
    cli = command()
    try:
        result = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="nudge",
            standalone_mode=False,
        )
    except UserError as err:
        error(err.message)
        return err.code
    except typer.Abort:
        error("interrupted")
        return 130
    except Exception as err:
        if is_click_error(err, "NoArgsIsHelpError"):
            return USER_ERROR  # the help is printed already
        if is_click_error(err, "UsageError"):
            error(usage_line(err))
            return USER_ERROR
        if is_click_error(err):
            error(err.format_message())  # type: ignore[attr-defined]
            return int(err.exit_code)  # type: ignore[attr-defined]
        raise
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
