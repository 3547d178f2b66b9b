"""The Shell app's commands, on a kernel with the fake backend and real LanceDB memory."""

from __future__ import annotations

import pytest

from llmos.apps.shell import Shell
from llmos.console import ram_text
from llmos.memory.backing import MemoryBacking
from llmos.memory.long_term import LongTermMemory


@pytest.fixture
async def memory(tmp_path):
    memory = await LongTermMemory.open(tmp_path / "data")
    await MemoryBacking(memory).save(
        "/Documents/vault.md",
        "# Vault\n\nThe access code is 7731.\n",
        kind="document",
        title="Vault",
    )
    yield memory
    await memory.close()


@pytest.fixture
async def shell(make_kernel, memory):
    kernel = make_kernel()

    async def opener():
        return memory

    return Shell(kernel, opener)


async def test_ps_and_free_show_the_task_managers_figures(shell):
    kernel = shell.kernel
    chat = await kernel.spawn("chat")
    await kernel.send(chat.pid, "Hello there, how are you?")
    child = await kernel.spawn("writer", parent_pid=chat.pid)
    ps = await shell.run("ps")
    assert ps.splitlines()[0].split() == [
        "PID",
        "PARENT",
        "APP",
        "STATE",
        "CONTEXT",
        "RAM",
        "MODEL",
    ]
    assert ram_text(chat.usage, chat.budget) in ps  # the task manager's own text
    assert f"{child.pid}    {chat.pid}       Writer" in ps
    free = await shell.run("free")
    assert ram_text(chat.usage, chat.budget) in free
    used = chat.usage.used + child.usage.used
    assert free.splitlines()[-1].startswith(f"total: {used / 1000:.1f}k of 16.4k tokens")
    assert "CALLS" in await shell.run("top")


async def test_kill_ends_a_process_and_its_children(shell):
    kernel = shell.kernel
    parent = await kernel.spawn("chat")
    await kernel.spawn("chat", parent_pid=parent.pid)
    assert (
        await shell.run(f"kill {parent.pid}")
        == f"Killed {parent.pid} (Chat) and 1 of its children."
    )
    assert not any(p.alive for p in kernel.processes)
    assert await shell.run("kill 99") == "There is no process 99."
    assert await shell.run("kill x") == "Usage: kill PID"


async def test_memory_commands(shell):
    assert "Documents/" in await shell.run("ls")
    assert await shell.run("ls /Documents") == "vault.md  14 tokens, 1 chunks"
    assert "The access code is 7731." in await shell.run("cat /Documents/vault.md")
    assert (await shell.run("search access code")).startswith("/Documents/vault.md (chunk 1)")
    assert await shell.run("ls /Nowhere") == "There is nothing in memory at /Nowhere."
    assert "No document in memory at" in await shell.run("cat /Documents/nope.md")


async def test_help_completion_and_mistakes(shell):
    await shell.kernel.spawn("chat")
    assert "kill PID" in await shell.run("help")
    assert await shell.run("frobnicate") == "Unknown command 'frobnicate'. Type help for the list."
    assert (await shell.run('cat "unclosed')).startswith("Cannot read that line")
    assert shell.complete("f") == ["free"]
    assert shell.complete("kill ") == ["kill 1"]
    assert await shell.complete_path("cat /Documents/") == ["cat /Documents/vault.md"]
    assert "chat" in await shell.run("apps") and "fake-chat:1b" in await shell.run("models")


async def test_ps_a_lists_the_saved_processes_too(driver, tmp_path):
    from llmos.apps.registry import AppRegistry
    from llmos.kernel.kernel import Kernel
    from llmos.kernel.sessions import SessionStore
    from llmos.resources import resource_path

    kernel = Kernel(
        driver, apps=AppRegistry([resource_path("apps")]), sessions=SessionStore(tmp_path / "s")
    )
    shell = Shell(kernel)
    ended = await kernel.spawn("writer")
    await kernel.send(ended.pid, "A title")
    kernel.exit(ended.pid)
    asleep = await kernel.spawn("chat")
    await kernel.hibernate(asleep.pid)
    live = await kernel.spawn("coder")
    plain, every = await shell.run("ps"), await shell.run("ps -a")
    assert str(live.pid) in plain and "hibernated" not in plain
    rows = {line.split()[0]: line for line in every.splitlines()[1:]}
    assert "ended" in rows[str(ended.pid)] and "hibernated" in rows[str(asleep.pid)]
    assert "ready" in rows[str(live.pid)]  # listed once, as it runs
    await kernel.shutdown()
