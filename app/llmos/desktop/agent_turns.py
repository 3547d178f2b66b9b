"""An agent window's turns: a message sent, its answer streamed in, failures in plain words.

:class:`AgentTurns` is the part of :class:`~llmos.desktop.agent_window.AgentWindow` that talks
with the process. A message that got no answer is taken back out of the conversation and its
text kept: back in the composer, or for Retry when a new draft is there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from llmos.desktop.image_attachments import Attachment, images_note, sees_images
from llmos.kernel.context import PromptTooLarge
from llmos.kernel.errors import KernelError, ModelCallFailed, ProcessGone, ProcessHeld
from llmos.kernel.kernel import Kernel, TurnResult

if TYPE_CHECKING:
    from PySide6.QtWidgets import QWidget

    from llmos.apps.manifest import AppManifest
    from llmos.desktop.banner import Banner
    from llmos.desktop.bridge import KernelBridge
    from llmos.desktop.chat_view import ChatView
    from llmos.desktop.composer import Composer
    from llmos.desktop.held_process import HeldProcess
    from llmos.desktop.image_attachments import ImageAttachments


class AgentTurns:
    """Sending and answering (mixed into :class:`~llmos.desktop.agent_window.AgentWindow`)."""

    if TYPE_CHECKING:  # provided by AgentWindow
        manifest: AppManifest
        pid: int | None
        kernel: Kernel | None
        chat: ChatView
        composer: Composer
        attachments: ImageAttachments
        starters: QWidget
        banner: Banner
        held: HeldProcess
        _bridge: KernelBridge
        _turn: asyncio.Task[Any] | None
        _closed: bool
        _unsent: str

        def _run(self, coro: Coroutine[Any, Any, None], what: str) -> asyncio.Task[None]: ...
        def _set_generating(self, generating: bool) -> None: ...
        def _show_problem(self, text: str, *, retry: str | None = None) -> None: ...

    @property
    def generating(self) -> bool:
        return self._turn is not None and not self._turn.done()

    def send(self) -> None:
        """Send what the composer holds."""
        text = self.composer.toPlainText()
        if (text.strip() or self.attachments.attachments) and self._send_text(text):
            self.composer.clear()

    def _send_text(self, text: str) -> bool:
        if self.pid is None or self.kernel is None or self.generating:
            return False
        process = self.kernel.get(self.pid)
        if process.held:
            self.held.show(process)  # the text stays in the composer
            return False
        if self.attachments.attachments and not sees_images(process.capabilities):
            self._show_problem(
                f"{process.model} cannot see images, so nothing was sent. Open the Vision app "
                "to ask about them: it runs on a model that can see images. Your message and "
                "images are kept here."
            )
            return False
        images = self.attachments.take()
        self.banner.hide()
        self.starters.hide()
        mark = self.chat.mark()
        self.chat.add_message("user", text, "You", note=images_note(images))
        self.chat.begin_answer(self.manifest.name)
        answer = self._answer(self.kernel, self.pid, text, mark, images)
        self._turn = self._run(answer, "turn")
        self._set_generating(True)
        return True

    async def _answer(
        self, kernel: Kernel, pid: int, text: str, mark: int, images: list[Attachment]
    ) -> None:
        # Every path checks _closed: a window closed mid-answer has lost its widgets.
        try:
            result: TurnResult = await kernel.send(pid, text, images=[i.data for i in images])
        except asyncio.CancelledError:
            if not self._closed:
                self._bridge.flush()
                self.chat.end_answer(note="Stopped.")
            raise
        except (PromptTooLarge, KernelError) as error:
            if not self._closed:
                self._show_failure(error, text, mark)
                if self.chat.mark() == mark:  # taken back: so are its images
                    for image in images:
                        self.attachments.add(image)
        else:
            if not self._closed:
                self._show_answer(result)
        finally:
            if not self._closed:
                self._set_generating(False)

    def _show_answer(self, result: TurnResult) -> None:
        self._bridge.flush()
        note = ""
        if result.done_reason == "length":
            reserve = result.usage.budget - result.usage.prompt_limit
            note = f"Cut short: answers may use at most {reserve} tokens in this app."
        self.chat.end_answer(result.answer, note=note)

    def _show_failure(self, error: Exception, text: str, mark: int) -> None:
        self._bridge.flush()
        if isinstance(error, PromptTooLarge | ProcessHeld):
            self._take_back(text, mark)
            self._show_problem(str(error))
        elif isinstance(error, ModelCallFailed):
            if error.partial:
                self.chat.end_answer(error.partial, note="Interrupted: the answer broke off.")
            else:
                self._take_back(text, mark)
            self._show_problem(str(error.cause), retry=None if error.partial else "send")
        elif isinstance(error, ProcessGone):
            self.chat.end_answer(note="The process was ended.")
        else:
            self.chat.end_answer(note="No answer.")
            self._show_problem(str(error))

    def _take_back(self, text: str, mark: int) -> None:
        """Remove an unsent message from the view and keep its text: back in the composer,
        or (when a new draft is there) for Retry to send again."""
        self.chat.truncate(mark)
        self._unsent = text
        if not self.composer.toPlainText().strip():
            self.composer.setPlainText(text)
            self.composer.moveCursor(self.composer.textCursor().MoveOperation.End)
        if self.chat.messages == 0:
            self.starters.show()

    def stop(self) -> None:
        """Cancel the answer being generated; what came so far stays in the conversation."""
        if self.generating and self._turn is not None:
            self._turn.cancel()
