"""The `nudge` command line."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence


def _dev(args: argparse.Namespace) -> int:
    from nudge.local.emulation import PortInUseError
    from nudge.local.server import LocalConfig, LocalMode

    started = time.perf_counter()
    config = LocalConfig(
        host=args.host,
        port=args.port,
        aws_port=args.aws_port,
        write_key=args.write_key or os.environ.get("NUDGE_WRITE_KEY") or None,
        admin_key=args.admin_key or os.environ.get("NUDGE_ADMIN_KEY") or None,
        triggers_path=args.triggers,
        verbose=args.verbose,
    )
    local = LocalMode(config)
    try:
        local.start()
    except PortInUseError as err:
        print(f"nudge dev: {err}", file=sys.stderr)
        return 2
    assert local.resources is not None
    took = time.perf_counter() - started
    if args.aws_port is None and local.aws_port != args.port + 1:
        print(
            f"nudge dev: port {args.port + 1} is taken: the AWS emulation is on {local.aws_port}",
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
    return 0


def _replay(args: argparse.Namespace) -> int:
    from nudge.replay import replay

    return replay(args.file, url=args.url, write_key=args.write_key, use_import=args.use_import)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nudge", description="Self-hosted behavioral engagement engine."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="run local mode (what `make run` starts)")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    dev.add_argument(
        "--aws-port",
        type=int,
        default=None,
        help="moto server port (default: HTTP port + 1, or a free one if that is taken)",
    )
    dev.add_argument("--write-key", default=None)
    dev.add_argument("--admin-key", default=None)
    dev.add_argument(
        "--triggers", default=None, help="trigger definitions folder (default: ./triggers)"
    )
    dev.add_argument("--verbose", "-v", action="store_true")
    dev.set_defaults(func=_dev)

    from nudge import bench

    bench.register(sub)  # --json, --quick, --events, --users, --local-events, ...

    replay = sub.add_parser("replay", help="send a JSONL file of Segment events to an endpoint")
    replay.add_argument("file")
    replay.add_argument("--url", default=os.environ.get("NUDGE_URL", "http://127.0.0.1:8080"))
    replay.add_argument("--write-key", default=os.environ.get("NUDGE_WRITE_KEY"))
    replay.add_argument(
        "--import", dest="use_import", action="store_true", help="use /v1/import (no triggers)"
    )
    replay.set_defaults(func=_replay)

    from nudge import cli_openapi, cli_sql, cli_templates, cli_triggers

    cli_triggers.register(sub)
    cli_templates.register(sub)
    cli_sql.register(sub)
    cli_openapi.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
