"""Servers that are not (quite) Ollama: every failure is a plain DriverError, never a hang
or a traceback, and the kernel keeps what it had."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from llmos.bootstrap import build_kernel
from llmos.config import load_settings
from llmos.drivers.base import BackendUnavailable, ProtocolMismatch
from llmos.drivers.ollama_driver import OllamaDriver
from llmos.kernel.errors import ModelCallFailed
from llmos.kernel.process import ProcessState


@contextmanager
def serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class NotFoundEverywhere(BaseHTTPRequestHandler):
    """A web server that is not Ollama: an HTML 404 page for every path."""

    def log_message(self, *args) -> None:
        pass

    def _page(self) -> None:
        if self.command == "POST":
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b"<html><body><h1>404 page not found</h1></body></html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = _page


class GarbledStream(BaseHTTPRequestHandler):
    """Answers like Ollama until a chat stream, which turns to garbage after one token."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def _json(self, payload: object) -> None:
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/api/version":
            self._json({"version": "0.12.6"})
        else:
            self._json({"models": [{"model": "m:1", "name": "m:1", "size": 1}]})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/api/show":
            info = {"general.architecture": "llama", "llama.context_length": 4096}
            self._json({"model_info": info, "capabilities": ["completion"]})
            return
        line = {"model": "m:1", "message": {"role": "assistant", "content": "Hello"}, "done": False}
        body = (json.dumps(line) + "\n<<garbage>>\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


async def test_a_server_that_accepts_and_never_answers_is_not_waited_on_forever():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        host = f"http://127.0.0.1:{listener.getsockname()[1]}"
        driver = OllamaDriver(host, control_timeout=0.3)
        try:
            with pytest.raises(BackendUnavailable, match="did not answer in time"):
                await driver.version()
            with pytest.raises(BackendUnavailable):
                await driver.list_models()
        finally:
            await driver.close()


async def test_a_web_server_that_is_not_ollama_is_named_as_such():
    with serve(NotFoundEverywhere) as host:
        driver = OllamaDriver(host)
        try:
            for attempt in (driver.version(), driver.list_models(), driver.model_info("m:1")):
                with pytest.raises(ProtocolMismatch, match="does not answer like Ollama"):
                    await attempt
        finally:
            await driver.close()


async def test_garbage_mid_stream_keeps_the_partial_answer():
    with serve(GarbledStream) as host:
        kernel = build_kernel(load_settings({"ollama_host": host}))
        try:
            process = await kernel.spawn("chat", model="m:1")
            with pytest.raises(ModelCallFailed, match="stopped mid-answer") as failed:
                await kernel.send(process.pid, "hi")
            assert failed.value.partial == "Hello"
            last = process.history[-1]
            assert (last["role"], last["content"], last["interrupted"]) == (
                "assistant",
                "Hello",
                True,
            )
            assert process.state is ProcessState.READY
            assert process.counters.faults == 1
        finally:
            await kernel.shutdown()


def llmos(*args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "llmos", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        **kwargs,
    )


@pytest.mark.parametrize("host", ["http://[::1", "127.0.0.1:99999"])
def test_a_malformed_ollama_host_is_a_clear_error(host, monkeypatch):
    import os

    done = llmos("doctor", env={**os.environ, "OLLAMA_HOST": host})
    assert done.returncode == 1
    assert "is not a valid host" in done.stderr and "OLLAMA_HOST" in done.stderr
    assert "Traceback" not in done.stderr


def test_doctor_against_a_web_server_that_is_not_ollama(capsys):
    from llmos.cli import main

    with serve(NotFoundEverywhere) as host:
        assert main(["doctor", "--engine", "ollama", "--ollama-host", host]) == 1
    err = capsys.readouterr().err
    assert "does not answer like Ollama" in err and "page not found" not in err.split("(")[0]


def test_a_reader_that_goes_away_stops_the_answer_quietly(ollama_server):
    import os

    ollama_server.token_delay = 0.01
    command = (
        f"{sys.executable} -m llmos run chat --prompt 'tell me a story' "
        f"--ollama-host {ollama_server.host} | head -c 5"
    )
    done = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, timeout=60, env=os.environ
    )
    assert len(done.stdout) == 5
    assert done.stderr == ""
