"""`nudge dev`'s ports: the AWS emulation goes on the HTTP port + 1 unless --aws-port says
otherwise; when that port is taken and none was asked for, on a free one; an --aws-port
that is taken is exit status 2 with one line saying so."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from nudge.cli import main
from nudge.local.emulation import aws_port_for

HOST = "127.0.0.1"


def free_port_pair() -> int:
    """A free port whose successor is free too."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind((HOST, 0))
            port = int(s.getsockname()[1])
        with socket.socket() as s2:
            try:
                s2.bind((HOST, port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair")


@contextmanager
def taken(port: int) -> Iterator[None]:
    """Something else listens on the port meanwhile."""
    with socket.socket() as s:
        s.bind((HOST, port))
        s.listen()
        yield


def test_the_aws_port_is_the_http_port_plus_one_when_it_is_free() -> None:
    port = free_port_pair()
    assert aws_port_for(HOST, port, None) == port + 1


def test_a_taken_port_plus_one_gives_a_free_port_instead() -> None:
    port = free_port_pair()
    with taken(port + 1):
        chosen = aws_port_for(HOST, port, None)
        assert chosen not in (port, port + 1)
        with socket.socket() as s:
            s.bind((HOST, chosen))  # free indeed


def test_nudge_dev_starts_when_port_plus_one_is_taken() -> None:
    # in a process of its own: moto's backends are per process, and other tests of the
    # session may hold tables of the same names
    port = free_port_pair()
    url = f"http://{HOST}:{port}"
    with taken(port + 1):
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "nudge"), "dev", "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if requests.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, (
                    "nudge dev did not start"
                )
                time.sleep(0.2)
            aws = requests.get(f"{url}/_local/aws", timeout=10).json()
            assert urlsplit(aws["endpoint_url"]).port not in (None, port, port + 1)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def test_a_taken_aws_port_that_was_asked_for_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = free_port_pair()
    with taken(port + 1):
        status = main(["dev", "--port", str(port), "--aws-port", str(port + 1)])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1
    assert f"--aws-port {port + 1} is already in use" in err


def test_a_taken_http_port_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port_pair()
    with taken(port):
        status = main(["dev", "--port", str(port)])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and f"port {port} (HTTP API) is already in use" in err
