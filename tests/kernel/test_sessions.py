"""Sessions on the fake driver and real files: processes written down, hibernated, restored.

A crash is played by copying a session's files while its process is mid-answer (what a
``kill -9`` would leave) and restoring from the copy; tests/test_cli.py kills a real
``llmos run`` with SIGKILL.
"""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest

from llmos.apps.registry import AppRegistry
from llmos.kernel.errors import KernelError, ProcessGone, ProcessHeld
from llmos.kernel.events import EventBus, ProcessExited
from llmos.kernel.kernel import Kernel
from llmos.kernel.pages import Page
from llmos.kernel.process import ProcessState
from llmos.kernel.scheduler import Scheduler
from llmos.kernel.sessions import (
    FORMAT,
    SessionBusy,
    SessionDamaged,
    SessionStore,
)
from llmos.kernel.state_files import encode, read_log
from llmos.resources import resource_path
from tests.fakes import FakeModel, default_answer


@pytest.fixture
async def boot(driver, tmp_path):
    """Start kernels on one sessions folder (each a restart of LLM-OS); all shut down."""
    kernels: list[Kernel] = []

    def make(root=None, apps: AppRegistry | None = None) -> Kernel:
        kernel = Kernel(
            driver,
            apps=apps or AppRegistry([resource_path("apps")]),
            scheduler=Scheduler(slots=1),
            bus=EventBus(),
            sessions=SessionStore(root or tmp_path / "sessions"),
        )
        kernels.append(kernel)
        return kernel

    yield make
    for kernel in kernels:
        await kernel.shutdown()


def said(messages) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in messages]


async def test_a_restart_brings_processes_back_under_their_pids(boot, driver):
    first = boot()
    chat = await first.spawn("chat")
    writer = await first.spawn("writer")
    for text in ("My cat is called Miso.", "She is three years old."):
        await first.send(chat.pid, text)
    await first.send(writer.pid, "Draft a haiku about rain")
    chat.core = "The user's cat: Miso."
    first.set_priority(chat.pid, 7)
    first.set_window(chat.pid, {"open": True, "x": 10, "y": 20, "w": 600, "h": 400})
    history = said(chat.history)
    counters = (chat.counters.model_calls, chat.counters.generated_tokens)
    await first.shutdown()
    assert chat.exit_reason == "hibernated" and chat.history == []  # its RAM is freed

    second = boot()
    store = second.sessions
    infos = {i.pid: i for i in await asyncio.to_thread(store.list)}
    assert infos[chat.pid].status == infos[writer.pid].status == "hibernated"
    assert infos[chat.pid].first_line == "My cat is called Miso."
    assert infos[chat.pid].turns == 2 and infos[chat.pid].window
    saved = await second.load_saved(chat.pid)
    back = await second.restore(saved)
    assert back.pid == chat.pid and back.state is ProcessState.READY
    assert said(back.history) == history
    assert back.core == "The user's cat: Miso." and back.priority == 7
    assert back.window == {"open": True, "x": 10, "y": 20, "w": 600, "h": 400}
    assert (back.counters.model_calls, back.counters.generated_tokens) == counters
    assert back.usage is not None and back.usage.used > 0  # recounted
    await second.send(back.pid, "How old is she?")
    sent = said(driver.requests[-1].messages)
    assert ("user", "My cat is called Miso.") in sent and sent[-1] == ("user", "How old is she?")
    # A new process never takes a pid the data dir has used.
    assert (await second.spawn("chat")).pid > writer.pid


async def test_the_answer_a_crash_cuts_is_kept_up_to_the_last_checkpoint(boot, driver, tmp_path):
    kernel = boot()
    process = await kernel.spawn("chat")
    await kernel.send(process.pid, "First question")
    driver.token_delay = 0.05
    driver.answer = lambda messages: " ".join(f"word{i}" for i in range(200))
    turn = asyncio.ensure_future(kernel.send(process.pid, "Second question"))
    await asyncio.sleep(1.3)  # two checkpoints or so
    await kernel.sessions.writer.flush()
    # What a kill -9 leaves: the files as they are now (the lock goes with the program).
    crashed = tmp_path / "crashed"
    shutil.copytree(kernel.sessions.folder(process.pid), crashed / str(process.pid))
    (crashed / str(process.pid) / "lock").unlink()
    turn.cancel()
    with pytest.raises((asyncio.CancelledError, ProcessGone)):
        await turn

    after = boot(crashed)
    [info] = await asyncio.to_thread(after.sessions.list)
    assert info.status == "interrupted" and info.resumable
    saved = await after.load_saved(process.pid)
    assert saved.partial.startswith("word0 word1") and len(saved.partial.split()) >= 10
    back = await after.restore(saved)
    assert said(back.history)[:3] == [
        ("user", "First question"),
        ("assistant", default_answer([{"role": "user", "content": "First question"}])),
        ("user", "Second question"),
    ]
    cut = back.history[-1]
    assert cut["interrupted"] and cut["content"] == saved.partial
    driver.token_delay = 0
    await after.send(back.pid, "Go on")
    assert (await after.load_saved(process.pid)).partial == ""  # the cut answer is a message now


async def test_a_clean_stop_mid_answer_keeps_the_partial_answer_marked_interrupted(boot, driver):
    kernel = boot()
    process = await kernel.spawn("chat")
    driver.token_delay = 0.02
    turn = asyncio.ensure_future(kernel.send(process.pid, "Tell me a long story"))
    await asyncio.sleep(0.2)
    await kernel.hibernate(process.pid)  # generations are cancelled, not waited for
    with pytest.raises(ProcessGone, match="hibernated"):
        await turn
    saved = await boot().load_saved(process.pid)
    assert saved.status == "hibernated"
    assert saved.history[-1]["interrupted"] and saved.history[-1]["content"]
    assert saved.partial == ""


async def test_hibernating_one_process_frees_its_ram_and_it_wakes_later(boot):
    kernel = boot()
    exits: list = []
    kernel.bus.subscribe(exits.append, ProcessExited)
    process = await kernel.spawn("chat")
    await kernel.send(process.pid, "Remember the number 12")
    before = said(process.history)
    await kernel.hibernate(process.pid)
    assert [e.reason for e in exits] == ["hibernated"]
    assert process.history == [] and not kernel.sessions.in_use(process.pid)
    assert kernel.sessions.info(process.pid).status == "hibernated"
    back = await kernel.restore(await kernel.load_saved(process.pid))
    assert said(back.history) == before and kernel.get(process.pid) is back
    assert kernel.sessions.info(process.pid).status == "running"


async def test_a_process_runs_in_one_llmos_at_a_time(boot, tmp_path):
    kernel = boot()
    process = await kernel.spawn("chat")
    await kernel.sessions.writer.flush()  # its folder, lock and log are made behind spawn
    other = boot()  # another LLM-OS on the same data dir
    assert other.sessions.info(process.pid).status == "running"
    with pytest.raises(SessionBusy, match="another LLM-OS"):
        await other.restore(await other.load_saved(process.pid))
    with pytest.raises(SessionBusy):
        other.sessions.delete(process.pid)


async def test_a_removed_app_comes_back_suspended_with_the_reason(boot, tmp_path):
    user_apps = tmp_path / "apps"
    shutil.copytree(resource_path("apps") / "writer", user_apps / "poet")
    manifest = user_apps / "poet" / "app.toml"
    text = manifest.read_text().replace('id = "writer"', 'id = "poet"')
    manifest.write_text(text.replace('name = "Writer"', 'name = "Poet"'))
    with_poet = AppRegistry([resource_path("apps"), user_apps])
    kernel = boot(apps=with_poet)
    process = await kernel.spawn("poet")
    await kernel.send(process.pid, "A line about the sea")
    await kernel.shutdown()

    shutil.rmtree(user_apps / "poet")
    again = boot(apps=AppRegistry([resource_path("apps"), user_apps]))
    back = await again.restore(await again.load_saved(process.pid))
    assert back.state is ProcessState.SUSPENDED
    assert "Poet was removed" in back.held and "App Store" in back.held
    assert said(back.history)[0] == ("user", "A line about the sea")
    with pytest.raises(ProcessHeld, match="removed"):
        await again.send(back.pid, "more")
    again.resume(back.pid)
    assert back.state is ProcessState.SUSPENDED  # held: resume alone does not run it
    with pytest.raises(KernelError, match="no app called 'poet'"):
        await again.revive(back.pid)
    assert again.sessions.info(back.pid).problem == back.held


async def test_a_gone_model_holds_the_process_until_another_is_chosen(boot, driver):
    driver.models = [FakeModel("old-model", 8192), FakeModel("new-model", 4096)]
    kernel = boot()
    process = await kernel.spawn("chat", model="old-model")
    await kernel.send(process.pid, "hello")
    await kernel.shutdown()

    driver.models = [FakeModel("new-model", 4096)]
    again = boot()
    back = await again.restore(await again.load_saved(process.pid))
    assert back.state is ProcessState.SUSPENDED
    assert "old-model is not installed" in back.held and "Choose another model" in back.held
    revived = await again.revive(back.pid, model="new-model")
    assert revived.held == "" and revived.state is ProcessState.READY
    assert revived.model == "new-model" and revived.budget == 4096
    result = await again.send(back.pid, "still there?")
    assert result.model == "new-model"
    assert again.sessions.info(back.pid).model == "new-model"


async def test_a_damaged_log_costs_only_its_own_tail(boot, tmp_path):
    kernel = boot()
    good = await kernel.spawn("chat")
    hurt = await kernel.spawn("chat")
    for text in ("one", "two", "three"):
        await kernel.send(hurt.pid, text)
    await kernel.send(good.pid, "fine")
    await kernel.shutdown()
    store = SessionStore(tmp_path / "sessions")
    log = store.log_path(hurt.pid)
    lines = log.read_bytes().splitlines(keepends=True)
    # Flip a byte in the third turn's user message: that line and the rest are lost.
    third = next(i for i, line in enumerate(lines) if b'"three"' in line)
    lines[third] = lines[third].replace(b"three", b"thr3e")
    log.write_bytes(b"".join(lines))
    (store.folder(hurt.pid) / "info.json").write_text("{not json")

    after = boot()
    infos = {i.pid: i for i in await asyncio.to_thread(after.sessions.list)}
    assert infos[good.pid].status == "hibernated" and infos[good.pid].problem == ""
    assert "checksum" in infos[hurt.pid].problem  # listed, from the log, with what happened
    saved = await after.load_saved(hurt.pid)
    assert [m["content"] for m in saved.transcript if m["role"] == "user"] == ["one", "two"]
    back = await after.restore(saved)
    await after.send(back.pid, "four")
    await after.sessions.writer.flush()
    read = read_log(log)  # the damaged tail was replaced: what follows is readable
    assert read.damage == ""
    users = [
        r["m"]["content"] for r in read.records if r["op"] == "msg" and r["m"]["role"] == "user"
    ]
    assert users == ["one", "two", "four"]


async def test_an_unreadable_or_newer_log_is_reported_not_fatal(boot, tmp_path):
    kernel = boot()
    process = await kernel.spawn("chat")
    await kernel.shutdown()
    store = SessionStore(tmp_path / "sessions")
    store.log_path(process.pid).write_bytes(b"garbage\n")
    newer = store.folder(process.pid + 1)
    newer.mkdir()
    (newer / "log.jsonl").write_bytes(
        encode({"op": "begin", "format": FORMAT + 1, "pid": process.pid + 1, "app_id": "chat"})
    )
    infos = await asyncio.to_thread(store.list)
    assert [(i.pid, i.status) for i in infos] == [
        (process.pid, "damaged"),
        (process.pid + 1, "damaged"),
    ]
    assert "newer LLM-OS" in infos[1].problem
    with pytest.raises(SessionDamaged, match="does not begin a session"):
        store.load(process.pid)
    # The next start is not stopped by them.
    assert (await boot().spawn("chat")).pid == process.pid + 2


async def test_memory_state_survives_a_restart(boot):
    kernel = boot()
    process = await kernel.spawn("chat")
    await kernel.send(process.pid, "hello")
    page = Page("/Documents/a.md", "/Documents/a.md", "whole document", "Alpha text.", ("c1",))
    kernel.page_in(process.pid, [page])
    process.summary, process.first_turn = "Earlier: greetings.", 4
    process.memory_folder = "/Processes/chat-1 (x)"
    kernel._account(process)
    await kernel.shutdown()
    again = boot()
    back = await again.restore(await again.load_saved(process.pid))
    assert back.paged_in == [page]
    assert (back.summary, back.first_turn) == ("Earlier: greetings.", 4)
    assert back.usage is not None and back.usage.segments["paged_in"] > 0


async def test_an_ended_process_is_browsable_and_reopens_as_a_new_one(boot):
    kernel = boot()
    process = await kernel.spawn("chat")
    await kernel.send(process.pid, "What is a page fault?")
    kernel.exit(process.pid)
    await kernel.settled()
    info = kernel.sessions.info(process.pid)
    assert info.status == "ended" and not info.resumable and info.generated_tokens > 0
    copy = await kernel.reopen(process.pid)
    assert copy.pid != process.pid
    assert said(copy.history) == said((await kernel.load_saved(process.pid)).history)
    await kernel.send(copy.pid, "And a page hit?")
    assert kernel.sessions.info(copy.pid).turns == 2
    await asyncio.to_thread(kernel.sessions.delete, process.pid)
    assert process.pid not in kernel.sessions.pids()


async def test_evicted_messages_stay_in_the_transcript_but_leave_ram(boot, tmp_path):
    kernel = boot()
    process = await kernel.spawn("chat")
    for text in ("one", "two", "three"):
        await kernel.send(process.pid, text)
    del process.history[:2]  # as the pager evicts the oldest turn
    process.first_turn = 2
    kernel._account(process)
    process.history.pop()  # and as a failed call takes back the newest message
    kernel._save(process)
    await kernel.shutdown()
    saved = SessionStore(tmp_path / "sessions").load(process.pid)
    assert [m["content"] for m in saved.transcript][:2] == [
        "one",
        default_answer([{"content": "one", "role": "user"}]),
    ]
    assert len(saved.transcript) == 5 and len(saved.history) == 3
    assert saved.history[0]["content"] == "two"
    assert (
        json.loads((tmp_path / "sessions" / str(process.pid) / "info.json").read_text())["turns"]
        == 3
    )


async def test_a_parent_sleeps_and_wakes_with_the_processes_it_started(boot):
    kernel = boot()
    parent = await kernel.spawn("planner")
    child = await kernel.spawn("writer", parent_pid=parent.pid)
    loose = await kernel.spawn("coder", parent_pid=parent.pid, detached=True)
    await kernel.send(child.pid, "Draft one line")
    await kernel.hibernate(parent.pid)
    assert child.exit_reason == "hibernated" and loose.alive
    back = await kernel.restore(await kernel.load_saved(parent.pid))
    again = kernel.get(child.pid)
    assert again.alive and again.parent_pid == back.pid
    assert again.history[0]["content"] == "Draft one line"


def test_the_writer_starts_no_thread_to_flush_nothing_or_after_it_stopped(tmp_path):
    import threading

    from llmos.kernel.state_files import Writer

    def writers() -> int:
        return sum(t.name == "llmos-state-writer" for t in threading.enumerate())

    before = writers()
    writer = Writer()
    writer.flush_now()
    assert writers() == before
    writer.append(tmp_path / "a.log", [encode({"n": 1})])
    writer.flush_now()
    writer.stop()
    assert writers() == before
    writer.append(tmp_path / "a.log", [encode({"n": 2})])  # late: done by the caller
    writer.flush_now()
    assert writers() == before
    assert [r["n"] for r in read_log(tmp_path / "a.log").records] == [1, 2]


async def test_a_process_the_user_suspended_comes_back_suspended(boot):
    kernel = boot()
    asleep = await kernel.spawn("chat")
    awake = await kernel.spawn("chat")
    kernel.suspend(asleep.pid)
    await kernel.shutdown()
    again = boot()
    back = await again.restore(await again.load_saved(asleep.pid))
    assert back.state is ProcessState.SUSPENDED and back.held == ""
    again.resume(back.pid)
    assert back.state is ProcessState.READY
    other = await again.restore(await again.load_saved(awake.pid))
    assert other.state is ProcessState.READY


async def test_after_a_crash_a_parent_comes_back_with_its_children(boot, tmp_path):
    kernel = boot()
    parent = await kernel.spawn("planner")
    child = await kernel.spawn("writer", parent_pid=parent.pid)
    await kernel.spawn("coder", parent_pid=parent.pid, detached=True)
    await kernel.send(child.pid, "Draft one line")
    await kernel.sessions.writer.flush()
    crashed = tmp_path / "crashed"  # the files as a kill -9 leaves them
    shutil.copytree(kernel.sessions.root, crashed)
    after = boot(crashed)
    back = await after.restore(await after.load_saved(parent.pid))
    again = after.get(child.pid)
    assert again.alive and again.parent_pid == back.pid
    assert [p.pid for p in after.processes] == [parent.pid, child.pid]  # not the detached one


async def test_a_process_restored_on_another_model_keeps_it(boot, driver):
    driver.models = [FakeModel("old-model", 8192), FakeModel("new-model", 4096)]
    kernel = boot()
    process = await kernel.spawn("chat", model="old-model")
    await kernel.send(process.pid, "hello")
    await kernel.shutdown()
    again = boot()
    back = await again.restore(await again.load_saved(process.pid), model="new-model")
    assert back.model == "new-model" and back.held == ""
    await again.shutdown()
    saved = await boot().load_saved(process.pid)
    assert (saved.model, saved.budget) == ("new-model", 4096)
