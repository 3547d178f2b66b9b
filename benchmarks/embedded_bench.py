"""Embedded engine: generation speed through the kernel vs calling llama_cpp directly.

Both paths run the default model (Qwen2.5-Coder-0.5B-Instruct Q4_K_M) with the same thread
count, greedy sampling, the same prompts and at most the same number of new tokens; the
model is loaded (warm) before timing. The direct path is llama-cpp-python's own
``create_chat_completion(stream=True)``; the kernel path spawns a process, sends the prompt
(fit, schedule, worker thread, token events) and exits. The paths alternate prompt by prompt.

Prints time to first token (median) and generation tokens/s (tokens after the first, over
the time after the first) for both, the ratio of the overall rates, and the median of the
per-prompt ratios (robust to a noisy neighbour on a shared machine).

Usage: python benchmarks/embedded_bench.py [--prompts 6] [--max-tokens 96]
Target: kernel / direct tokens/s >= 0.97.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llama_cpp import Llama

from llmos.bootstrap import build_kernel
from llmos.config import load_settings
from llmos.drivers.embedded_driver import EmbeddedDriver, _usable_cores
from llmos.drivers.model_store import DEFAULT_RECIPE, ensure_model
from llmos.kernel.events import TokenStreamed
from llmos.kernel.kernel import Kernel

TOPICS = [
    "a cat who learns to program",
    "the history of virtual memory",
    "how a scheduler shares a CPU",
    "a lighthouse keeper on a distant planet",
    "why caches make computers fast",
    "a robot that collects old books",
    "the life of a packet on the internet",
    "a chess game between two old friends",
]


def prompt(i: int) -> str:
    return f"Write a long, detailed story about {TOPICS[i % len(TOPICS)]}."


def direct(llm: Llama, system: str, text: str, max_tokens: int) -> tuple[float, int, float]:
    """(time to first token, tokens, seconds after the first token)."""
    messages = [{"role": "system", "content": system}, {"role": "user", "content": text}]
    start = time.perf_counter()
    first = last = None
    tokens = 0
    for chunk in llm.create_chat_completion(
        messages, stream=True, max_tokens=max_tokens, temperature=0.0, repeat_penalty=1.1
    ):
        if chunk["choices"][0]["delta"].get("content"):
            last = time.perf_counter()
            first = first or last
            tokens += 1
    assert first is not None and last is not None
    return first - start, tokens, last - first


async def kernel_path(kernel: Kernel, text: str, max_tokens: int) -> tuple[float, int, float]:
    stamps: list[float] = []
    unsubscribe = kernel.bus.subscribe(lambda e: stamps.append(time.perf_counter()), TokenStreamed)
    try:
        process = await kernel.spawn("chat")
        process.options.update(temperature=0.0)
        process.reserve = max_tokens  # the num_predict the kernel sends
        start = time.perf_counter()
        await kernel.send(process.pid, text)
        kernel.exit(process.pid)
    finally:
        unsubscribe()
    return stamps[0] - start, len(stamps), stamps[-1] - stamps[0]


def rate(results: list[tuple[float, int, float]]) -> float:
    return sum(n - 1 for _, n, _ in results) / sum(s for _, _, s in results)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=6)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument(
        "--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "llmos-bench"
    )
    args = parser.parse_args()

    path = ensure_model(DEFAULT_RECIPE, args.data_dir / "models")
    threads = _usable_cores()
    settings = load_settings({"data_dir": str(args.data_dir), "num_ctx": 4096}, env={})
    driver = EmbeddedDriver(path, name=DEFAULT_RECIPE.name, n_ctx=4096, threads=threads)
    kernel = build_kernel(settings, driver=driver)
    await driver.load()
    llm = Llama(
        str(path),
        n_ctx=4096,
        n_batch=256,
        n_threads=threads,
        n_threads_batch=threads,
        verbose=False,
    )
    system = kernel.apps.get("chat").system_prompt.strip()

    direct(llm, system, prompt(99), 8)  # warm both paths
    await kernel_path(kernel, prompt(99), 8)
    direct_results, kernel_results = [], []
    for i in range(args.prompts):
        direct_results.append(direct(llm, system, prompt(i), args.max_tokens))
        kernel_results.append(await kernel_path(kernel, prompt(i), args.max_tokens))
    await kernel.shutdown()

    d_rate, k_rate = rate(direct_results), rate(kernel_results)
    # Paired by prompt (same text, same greedy answer), so the median ratio is robust to a
    # noisy neighbour slowing one run.
    paired = statistics.median(
        rate([k]) / rate([d]) for d, k in zip(direct_results, kernel_results, strict=True)
    )
    d_ttft = statistics.median(r[0] for r in direct_results) * 1000
    k_ttft = statistics.median(r[0] for r in kernel_results) * 1000
    print(
        f"embedded engine: {DEFAULT_RECIPE.name}, {threads} threads, "
        f"{args.prompts} prompts, up to {args.max_tokens} new tokens each"
    )
    print(f"  direct llama_cpp  {d_rate:6.1f} tokens/s   first token {d_ttft:6.0f} ms (median)")
    print(f"  through kernel    {k_rate:6.1f} tokens/s   first token {k_ttft:6.0f} ms (median)")
    print(
        f"  ratio (kernel / direct) {k_rate / d_rate:.3f} overall, {paired:.3f} median of "
        "per-prompt pairs   target >= 0.97"
    )


if __name__ == "__main__":
    asyncio.run(main())
