"""The moto server local mode talks to, in a thread of this process or in a process of its
own.

In a process of its own (what `nudge dev` runs), moto has a core to itself: in one process
the handlers, the pollers, the HTTP front and moto share one interpreter lock, and moto's
half of every AWS call (werkzeug, the request's parsing, the backend, the response) waits
for the handlers' half and the other way round. Either way boto3 and the AWS CLI see the
same tables, queues and schedules at the endpoint URL, and the server answers one route of
its own: `GET /_nudge/sent.json`, the messages SES and SNS were asked to send (what
/_local/outbox reads), without the rest of moto's state that `/moto-api/data.json` dumps
(every DynamoDB item and SQS message ever made: seconds after a load test).

The child process runs `python -m nudge.local.moto_server HOST PORT`: it applies local
mode's moto patches (nudge.local.emulation), binds, prints one line ("ready") on stdout
and serves until its stdin closes, which happens when the parent stops it or dies."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

SENT_PATH = "/_nudge/sent.json"
# what /_local/outbox reads: moto's model classes (as /moto-api/data.json names them) of
# the messages that left through SES and SNS
SENT_MODELS = {"ses": ("Message", "RawMessage"), "sns": ("SMS", "PlatformEndpoint")}
READY = b"ready\n"
START_TIMEOUT_S = 60.0


def sent_messages() -> dict[str, dict[str, list[dict[str, Any]]]]:
    """The instances of SENT_MODELS, each as `/moto-api/data.json` shows it (its public
    attributes that JSON can hold), so the outbox reads the same shapes."""
    from moto.core.model_instances import model_data

    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for service, names in SENT_MODELS.items():
        models = model_data.get(service, {})
        out[service] = {}
        for name in names:
            model = models.get(name)
            out[service][name] = [
                _public(instance) for instance in getattr(model, "instances_tracked", [])
            ]
    return out


def _public(instance: Any) -> dict[str, Any]:
    result = {}
    for attr in dir(instance):
        if attr.startswith("_"):
            continue
        try:
            value = getattr(instance, attr)
            json.dumps(value)
        except (TypeError, AttributeError, ValueError):
            continue
        result[attr] = value
    return result


def _app() -> Callable[..., Iterable[bytes]]:
    """moto's WSGI application (as ThreadedMotoServer builds it) with SENT_PATH in front."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    moto_app = DomainDispatcherApplication(create_backend_app)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == SENT_PATH and environ.get("REQUEST_METHOD") == "GET":
            body = json.dumps(sent_messages()).encode()
            start_response(
                "200 OK",
                [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
            )
            return [body]
        result: Iterable[bytes] = moto_app(environ, start_response)
        return result

    return app


def _make_server(host: str, port: int) -> Any:
    """moto's WSGI app on a threaded werkzeug server whose connections stay open.

    werkzeug 3 closes every connection after one response (`Connection: close`), so each
    AWS call pays a TCP connection, a server thread and their teardown: a third of a
    small call's time on both sides. Clients here (botocore, the AWS CLI) send a
    Content-Length or a chunked body, so the handler reads exactly the request, answers
    with a Content-Length in one write, and keeps the connection for the next request."""
    import socket

    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import ThreadedWSGIServer

    class KeepAliveHandler(MotoRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with server.connections_lock:
                server.connections.add(self.connection)

        def finish(self) -> None:
            with server.connections_lock:
                server.connections.discard(self.connection)
            super().finish()

        def _read_body(self) -> bytes:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                chunks: list[bytes] = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def run_wsgi(self) -> None:
            import io

            if (self.headers.get("Expect") or "").lower().strip() == "100-continue":
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = self._read_body()
            environ = self.make_environ()
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            environ.pop("HTTP_TRANSFER_ENCODING", None)
            environ.pop("wsgi.input_terminated", None)
            answer: list[Any] = []

            def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
                answer[:] = [status, headers]
                return lambda data: None  # write(): unused by moto's app

            try:
                result = self.server.app(environ, start_response)
                try:
                    data = b"".join(result)
                finally:
                    close = getattr(result, "close", None)
                    if close is not None:
                        close()
            except Exception:
                logging.getLogger("nudge.local").exception("moto failed on %s", self.path)
                answer[:] = ["500 INTERNAL SERVER ERROR", [("Content-Type", "text/plain")]]
                data = b"moto failed: see the log"
            status, headers = answer
            head = [f"{self.protocol_version} {status}"]
            length = None
            names = set()
            for name, value in headers:
                lower = name.lower()
                names.add(lower)
                if lower == "content-length":
                    length = value
                elif lower not in ("connection", "transfer-encoding"):
                    head.append(f"{name}: {value}")
            if "date" not in names:
                head.append(f"Date: {self.date_time_string()}")
            if "server" not in names:
                head.append(f"Server: {self.version_string()}")
            if self.command == "HEAD":
                data = b""  # the length of what a GET would answer, no body
            else:
                length = str(len(data))
            if length is not None:
                head.append(f"Content-Length: {length}")
            self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data)

    class Server(ThreadedWSGIServer):
        connections: set[socket.socket]
        connections_lock: threading.Lock

        def close_connections(self) -> None:
            with self.connections_lock:
                for conn in list(self.connections):
                    with contextlib.suppress(OSError):
                        conn.shutdown(socket.SHUT_RDWR)

    server = Server(host, port, _app(), handler=KeepAliveHandler)
    server.connections = set()
    server.connections_lock = threading.Lock()
    return server


class ThreadServer:
    """moto in a thread of this process (its backends are this process's: tests and
    `nudge bench`'s request counting patch them)."""

    def __init__(self, host: str, port: int) -> None:
        self._server = _make_server(host, port)
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()  # clients' open connections end here too
        self._thread.join(timeout=10)


class ProcessServer:
    """moto in a child process (see the module's docstring)."""

    def __init__(self, host: str, port: int) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "nudge.local.moto_server", host, str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], START_TIMEOUT_S)
        line = self._proc.stdout.readline() if ready else b""
        if line != READY:
            self.stop()
            raise RuntimeError(
                f"the AWS emulation (moto, in a process of its own) did not start on "
                f"{host}:{port}" + (f": exit status {self._proc.returncode}" if ready else "")
            )

    @property
    def pid(self) -> int:
        return self._proc.pid

    def stop(self) -> None:
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            self._proc.stdin.close()  # the child's cue to exit
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)
        if self._proc.stdout is not None:
            self._proc.stdout.close()


def main(argv: list[str]) -> None:
    from nudge.local.emulation import patch_moto

    host, port = argv[0], int(argv[1])
    # Ctrl-C in `nudge dev` reaches the whole process group: the parent stops local mode
    # and then this process (stdin closes), in that order
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    patch_moto()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = _make_server(host, port)

    def exit_when_stdin_closes() -> None:
        while sys.stdin.buffer.read(4096):
            pass
        os._exit(0)  # nothing to flush: moto's state lives in memory only

    threading.Thread(target=exit_when_stdin_closes, name="parent", daemon=True).start()
    sys.stdout.buffer.write(READY)
    sys.stdout.buffer.flush()
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
