"""Kernel overhead: the same streamed chats through the kernel and straight through
``ollama.AsyncClient``, against the Ollama-protocol test server in its own process.

Each kernel chat is a whole process lifetime: spawn the chat app, send the prompt (context
fitting, scheduling, token events, accounting), exit. The direct path sends the same
messages and options with the bare client. The two paths alternate chat by chat, so that
drift in machine speed hits both alike; the median ratio over the rounds is reported.

Usage: python benchmarks/kernel_overhead_bench.py [--chats 200] [--rounds 5] [--token-delay S]...

With no delay the server answers as fast as HTTP allows, so the ratio shows the kernel's
whole fixed cost against a 2 ms chat; at 1 ms a token (faster than any local model on a
CPU) it shows what a user could ever notice.
Target: kernel / direct wall time <= 1.05.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import ollama

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llmos.bootstrap import build_kernel  # noqa: E402
from llmos.config import load_settings  # noqa: E402
from llmos.kernel.kernel import Kernel  # noqa: E402

MODEL = "qwen2.5:0.5b"


@contextlib.contextmanager
def server_process(token_delay: float) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "tests.ollama_server", "--port", str(port)]
    if token_delay:
        command += ["--token-delay", str(token_delay)]
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.05)
        else:
            raise SystemExit("the test server did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


async def direct(client: ollama.AsyncClient, prompts: list[str], system: str, options) -> int:
    tokens = 0
    for prompt in prompts:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
        stream = await client.chat(MODEL, messages, stream=True, options=options)
        async for part in stream:
            if part.message.content:
                tokens += 1
    return tokens


async def through_kernel(kernel: Kernel, prompts: list[str]) -> int:
    tokens = 0
    for prompt in prompts:
        process = await kernel.spawn("chat", model=MODEL)
        result = await kernel.send(process.pid, prompt)
        kernel.exit(process.pid)
        tokens += result.completion_tokens
    return tokens


async def compare(chats: int, rounds: int, token_delay: float) -> None:
    prompts = [f"Question {i}: explain paging in an operating system." for i in range(chats)]
    with server_process(token_delay) as host:
        # A data dir of its own: every chat is a process, and each leaves a session.
        scratch = tempfile.mkdtemp(prefix="llmos-bench-")
        kernel = build_kernel(load_settings({"ollama_host": host, "data_dir": scratch}, env={}))
        client = ollama.AsyncClient(host=host)
        system = kernel.apps.get("chat").system_prompt.strip()
        probe = await kernel.spawn("chat", model=MODEL)
        options = {"num_ctx": probe.budget, "num_predict": probe.reserve}
        kernel.exit(probe.pid)

        await direct(client, prompts[:20], system, options)  # warm up both paths
        await through_kernel(kernel, prompts[:20])
        ratios, extra = [], []
        print(f"server streams a token every {token_delay * 1000:g} ms (plus HTTP):")
        for round_number in range(1, rounds + 1):
            # Chat by chat, alternating paths, so that any drift hits both alike.
            direct_seconds = kernel_seconds = 0.0
            direct_tokens = kernel_tokens = 0
            for prompt in prompts:
                start = time.perf_counter()
                direct_tokens += await direct(client, [prompt], system, options)
                middle = time.perf_counter()
                kernel_tokens += await through_kernel(kernel, [prompt])
                kernel_seconds += time.perf_counter() - middle
                direct_seconds += middle - start
            if kernel_tokens != direct_tokens:
                raise SystemExit(f"paths differ: {kernel_tokens} vs {direct_tokens} tokens")
            ratios.append(kernel_seconds / direct_seconds)
            extra.append((kernel_seconds - direct_seconds) / chats * 1000)
            print(
                f"  round {round_number}: direct {direct_seconds:.3f} s, "
                f"kernel {kernel_seconds:.3f} s, ratio {ratios[-1]:.3f} "
                f"({direct_tokens} tokens each)"
            )
        print(
            f"  median ratio {statistics.median(ratios):.3f} "
            f"(min {min(ratios):.3f}, max {max(ratios):.3f}); kernel adds "
            f"{statistics.median(extra):.2f} ms per chat   target ratio <= 1.05"
        )
        await client._client.aclose()
        await kernel.shutdown()
        shutil.rmtree(scratch, ignore_errors=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--token-delay",
        type=float,
        action="append",
        help="seconds the server waits per token; repeat to compare (default: 0 and 0.001)",
    )
    args = parser.parse_args()
    print(f"kernel overhead: {args.chats} streamed chats per round")
    for delay in args.token_delay or [0.0, 0.001]:
        await compare(args.chats, args.rounds, delay)


if __name__ == "__main__":
    asyncio.run(main())
