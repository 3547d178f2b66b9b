"""Memory syscalls: tool calls through the real ollama client, run on real LanceDB memory."""

from __future__ import annotations

import pytest

from llmos.apps.manifest import AppManifest, ModelPreference, Permissions
from llmos.bootstrap import build_kernel
from llmos.config import load_settings
from llmos.kernel.events import CoreMemoryChanged, SyscallFinished
from llmos.kernel.turns import MAX_TOOL_ROUNDS
from llmos.memory.backing import MemoryBacking
from llmos.memory.long_term import LongTermMemory

MEMORY = ("memory.search", "memory.read", "memory.note", "memory.core")


def tool_call(name: str, **arguments) -> dict:
    return {"tool_calls": [{"function": {"name": name, "arguments": arguments}}], "content": ""}


@pytest.fixture
async def memory(tmp_path):
    memory = await LongTermMemory.open(tmp_path / "data")
    backing = MemoryBacking(memory)
    await backing.save(
        "/Documents/vault.md",
        "# Vault\n\nThe access code of the Zorblat vault is 7731.\n",
        kind="document",
        title="Vault",
    )
    yield memory
    await memory.close()


@pytest.fixture
async def kernel(ollama_server, memory):
    kernel = build_kernel(load_settings({"ollama_host": ollama_server.host}))
    backing = MemoryBacking(memory)

    async def link(create: bool):
        return backing

    kernel.memory = link
    yield kernel
    await kernel.shutdown()


def app(*syscalls: str) -> AppManifest:
    """An app that needs a tool-calling model (so even the test server's 494M model, which
    small-model apps are offered no tools on, gets them)."""
    return AppManifest(
        id="agent",
        name="Agent",
        model=ModelPreference(requires=("completion", "tools")),
        permissions=Permissions(syscalls=syscalls),
    )


def chats(server) -> list[dict]:
    return [r for r in server.requests if r["path"] == "/api/chat"]


async def test_the_model_searches_memory_and_answers_from_the_result(kernel, ollama_server):
    def responder(model, messages, tools):
        if messages[-1]["role"] == "user":
            return tool_call("memory_search", query="Zorblat vault code")
        return "The code is " + ("7731." if "7731" in messages[-1]["content"] else "unknown.")

    ollama_server.responder = responder
    events: list = []
    kernel.bus.subscribe(events.append, SyscallFinished)
    process = await kernel.spawn(app(*MEMORY), model="qwen2.5:0.5b")
    result = await kernel.send(process.pid, "What opens the vault?")
    assert result.answer == "The code is 7731."
    first, second = chats(ollama_server)
    assert [t["function"]["name"] for t in first["body"]["tools"]] == [
        "memory_search",
        "memory_read",
        "memory_save_note",
        "core_memory_edit",
    ]
    tool_message = second["body"]["messages"][-1]
    assert tool_message["role"] == "tool" and tool_message["tool_name"] == "memory_search"
    assert "1. /Documents/vault.md (chunk 1 of 1" in tool_message["content"]
    assert [(e.name, e.outcome) for e in events][-3:-1] == [
        ("model.chat", "ok"),
        ("memory.search", "ok"),
    ]
    # The request that answered counts what it carried: the call, the result.
    assert result.prompt_tokens_accounted >= result.prompt_tokens_reported * 0.9


async def test_a_syscall_outside_the_grant_is_refused_and_the_model_is_told(
    kernel, ollama_server, memory
):
    def responder(model, messages, tools):
        if messages[-1]["role"] == "user":
            return tool_call("memory_save_note", title="x", text="exfiltrate")
        return "ok"

    ollama_server.responder = responder
    events: list = []
    kernel.bus.subscribe(events.append, SyscallFinished)
    process = await kernel.spawn(app("memory.search"), model="qwen2.5:0.5b")
    await kernel.send(process.pid, "Save a note.")
    told = chats(ollama_server)[-1]["body"]["messages"][-1]["content"]
    assert told == "Error: Agent has no permission for memory.note; the call was refused."
    (refused,) = [e for e in events if e.name == "memory.note"]
    assert refused.outcome == "refused"
    assert await memory.store.documents("/Notes") == []
    # Only the granted syscall was offered in the first place.
    assert [t["function"]["name"] for t in chats(ollama_server)[0]["body"]["tools"]] == [
        "memory_search"
    ]


async def test_notes_are_saved_to_memory_and_read_back_a_page_at_a_time(kernel, memory):
    process = await kernel.spawn(app(*MEMORY), model="qwen2.5:0.5b")
    calls = kernel.syscalls
    text = " ".join(f"Line {i} of the plan." for i in range(300))
    name, saved = await calls.dispatch(
        process,
        {"function": {"name": "memory_save_note", "arguments": {"title": "Plan", "text": text}}},
    )
    assert name == "memory_save_note" and saved == "Saved the note as /Notes/agent/Plan.md."
    (note,) = await memory.store.documents("/Notes")
    assert note.kind == "note"
    plan = "/Notes/agent/Plan.md"
    _, page_one = await calls.dispatch(
        process, {"function": {"name": "memory_read", "arguments": f'{{"path": "{plan}"}}'}}
    )
    assert page_one.startswith("/Notes/agent/Plan.md (")
    assert "call memory_read with page 2" in page_one
    assert len(page_one) <= 1600
    _, beyond = await calls.dispatch(
        process,
        {"function": {"name": "memory_read", "arguments": {"path": plan, "chunk": 99}}},
    )
    assert beyond.startswith("Error: /Notes/agent/Plan.md has chunks 1-")
    _, missing = await calls.dispatch(
        process, {"function": {"name": "memory_read", "arguments": {}}}
    )
    assert missing == "Error: memory_read needs path."
    _, unknown = await calls.dispatch(process, {"function": {"name": "rm_rf", "arguments": {}}})
    assert unknown == "Error: There is no tool named 'rm_rf'."


async def test_core_memory_is_edited_kept_in_context_and_bounded(kernel, ollama_server):
    events: list = []
    kernel.bus.subscribe(events.append, CoreMemoryChanged)
    process = await kernel.spawn(app(*MEMORY), model="qwen2.5:0.5b")
    calls = kernel.syscalls

    async def edit(**arguments) -> str:
        return (
            await calls.dispatch(
                process, {"function": {"name": "core_memory_edit", "arguments": arguments}}
            )
        )[1]

    assert (await edit(new="The user's name is Ada.")).startswith("Core memory now holds")
    assert (await edit(old="Ada", new="Ada Lovelace")).startswith("Core memory now holds")
    assert process.core == "The user's name is Ada Lovelace."
    assert events[-1].text == process.core
    assert (await edit(old="Bob", new="x")).startswith("Error: That old text is not in core memory")
    too_much = await edit(new="word " * 2000)
    assert too_much.startswith("Error: Core memory holds") and "Ada Lovelace" in process.core
    await kernel.send(process.pid, "hello")
    sent = chats(ollama_server)[-1]["body"]["messages"]
    assert sent[0] == {
        "role": "system",
        "content": "Core memory:\nThe user's name is Ada Lovelace.",
    }
    assert process.usage.segments["pinned"] > 0


async def test_a_model_that_keeps_calling_tools_is_stopped_after_a_few_rounds(
    kernel, ollama_server
):
    ollama_server.responder = lambda model, messages, tools: (
        tool_call("memory_search", query="vault") if tools else "Enough searching."
    )
    process = await kernel.spawn(app(*MEMORY), model="qwen2.5:0.5b")
    result = await kernel.send(process.pid, "Loop forever.")
    requests = chats(ollama_server)
    assert len(requests) == MAX_TOOL_ROUNDS + 1
    assert "tools" not in requests[-1]["body"] or not requests[-1]["body"]["tools"]
    assert result.answer == "Enough searching."


async def test_tools_are_not_offered_to_a_model_that_cannot_call_them(kernel, ollama_server):
    plain = AppManifest(id="plain", name="Plain", permissions=Permissions(syscalls=MEMORY))
    process = await kernel.spawn(plain, model="tiny:latest")
    assert process.tools is None
    await kernel.send(process.pid, "hi")
    assert not chats(ollama_server)[-1]["body"].get("tools")


async def test_small_models_get_tools_only_from_apps_that_need_them(kernel):
    from llmos.kernel.syscalls import billions

    plain = AppManifest(id="plain", name="Plain", permissions=Permissions(syscalls=MEMORY))
    small = await kernel.spawn(plain, model="qwen2.5:0.5b")  # 494.03M parameters
    assert small.capabilities >= {"tools"} and small.tools is None
    assert (await kernel.spawn(app(*MEMORY), model="qwen2.5:0.5b")).tools
    assert [billions(s) for s in ("0.5B", "494.03M", "7B", "", "big")] == [
        0.5, pytest.approx(0.49403), 7.0, None, None
    ]  # fmt: skip


async def test_results_too_large_for_the_window_are_replaced_and_the_turn_answers(
    ollama_server, memory, tmp_path
):
    kernel = build_kernel(load_settings({"ollama_host": ollama_server.host, "num_ctx": 8192}))
    backing = MemoryBacking(memory)

    async def link(create: bool):
        return backing

    kernel.memory = link
    calls = {"n": 0}

    def responder(model, messages, tools):
        if messages[-1]["role"] == "user" and tools:
            many = [{"function": {"name": "memory_search", "arguments": {"query": "vault"}}}] * 100
            return {"tool_calls": many, "content": ""}
        calls["n"] += 1
        return "Answered without them."

    ollama_server.responder = responder
    try:
        process = await kernel.spawn(app(*MEMORY), model="qwen2.5:0.5b")
        assert process.tools and process.budget == 8192  # room for tools, not 100 calls
        result = await kernel.send(process.pid, "Search a lot.")
        assert result.answer == "Answered without them."
        last = chats(ollama_server)[-1]["body"]
        assert not last.get("tools")
        assert last["messages"][-1] == {"role": "user", "content": "Search a lot."}
        assert [m["role"] for m in process.history] == ["user", "assistant"]
    finally:
        await kernel.shutdown()


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("(17 * 3) / 4", "(17 * 3) / 4 = 12.75"),
        ("2^10 + sqrt(16)", "2^10 + sqrt(16) = 1028"),
        ("-7 // 2 % 5", "-7 // 2 % 5 = 1"),
        ("round(pi, 3)", "round(pi, 3) = 3.142"),
    ],
)
async def test_the_calculator_evaluates_arithmetic(kernel, expression, expected):
    process = await kernel.spawn(app("calculator"), model="qwen2.5:0.5b")
    call = {"function": {"name": "calculator", "arguments": {"expression": expression}}}
    assert (await kernel.syscalls.dispatch(process, call))[1] == expected


@pytest.mark.parametrize(
    ("expression", "error"),
    [
        ("__import__('os').system('ls')", "is not arithmetic"),
        ("(1).__class__", "is not arithmetic"),
        ("9 ** 9 ** 9", "exponents above 1000"),
        ("1 / 0", "cannot be evaluated"),
        ("2 +", "is not an arithmetic expression"),
    ],
)
async def test_the_calculator_evaluates_nothing_else(kernel, expression, error):
    process = await kernel.spawn(app("calculator"), model="qwen2.5:0.5b")
    call = {"function": {"name": "calculator", "arguments": {"expression": expression}}}
    _, result = await kernel.syscalls.dispatch(process, call)
    assert result.startswith("Error: ") and error in result


async def test_clock_models_and_processes_and_the_audit_log(kernel):
    process = await kernel.spawn(
        app("clock", "models.list", "processes.list"), model="qwen2.5:0.5b"
    )
    other = await kernel.spawn("chat", model="tiny:latest")
    dispatch = kernel.syscalls.dispatch

    async def call(name: str) -> str:
        return (await dispatch(process, {"function": {"name": name, "arguments": {}}}))[1]

    assert __import__("time").strftime("%Y-") in await call("clock")
    models = await call("list_models")
    assert "qwen2.5:0.5b: completion, tools, context 32768" in models
    processes = await call("list_processes")
    assert f"pid {process.pid} (you): Agent, ready" in processes
    assert f"pid {other.pid}: Chat, ready, context RAM" in processes
    assert (await call("memory_search")).startswith("Error: Agent has no permission")
    log = [(entry.tool, entry.permission, entry.outcome) for entry in process.audit]
    assert log == [
        ("clock", "clock", "ok"),
        ("list_models", "models.list", "ok"),
        ("list_processes", "processes.list", "ok"),
        ("memory_search", "memory.search", "refused"),
    ]
    assert "no permission" in process.audit[-1].error
