"""waitress's parser, task, channel and thread pool, subclassed to apply the door
(:class:`server.web.admission.Door`): a request is judged once its headers are read, and a
refused one is answered from a lane of its own, its body thrown away as it arrives."""

from __future__ import annotations

import json
import queue
import threading
from typing import Any

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.task import ThreadedTaskDispatcher, WSGITask

from server.web.admission import REASONS, RETRY_AFTER, Door, Refusal


class _Discard:
    """A body buffer that keeps nothing (a refused request's body), only its length."""

    def __init__(self) -> None:
        self.length = 0

    def append(self, data: bytes) -> None:
        self.length += len(data)

    def __len__(self) -> int:
        return self.length

    def close(self) -> None:
        pass


class Parser(HTTPRequestParser):  # type: ignore[misc]
    """waitress's request parser, judged by the door once its headers are read."""

    refusal: Refusal | None = None

    def __init__(self, adj: Any, door: Door) -> None:
        super().__init__(adj)
        self.door = door

    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)
        self.refusal = self.door.judge(self)
        if self.refusal is None:
            return
        # Expect: 100-continue: the body was not sent yet, answer now and close
        if getattr(self, "expect_continue", False):
            self.expect_continue = False
            self.body_rcv = None
            self.refusal = Refusal(self.refusal.status, self.refusal.message, close=True)
        elif self.body_rcv is not None:
            self.body_rcv.buf = _Discard()  # never read: the answer is the refusal


class _Task(WSGITask):  # type: ignore[misc]
    """A request's task: the app's, or a refused request's short answer."""

    def execute(self) -> None:
        refusal: Refusal | None = self.request.refusal
        if refusal is None:
            super().execute()
            return
        body = json.dumps({"error": refusal.message}).encode()
        self.status = f"{refusal.status} {REASONS[refusal.status]}"
        self.response_headers = [("Content-Type", "application/json"),
                                 ("Retry-After", str(RETRY_AFTER))]  # fmt: skip
        if refusal.close:
            self.set_close_on_finish()
        self.content_length = len(body)
        self.complete = True
        self.write(body)
        self.channel.server.door.answered(refusal, self.request)


class Channel(HTTPChannel):  # type: ignore[misc]
    """A connection whose requests the door judges."""

    task_class = _Task

    def __init__(self, server: Any, sock: Any, addr: Any, adj: Any, map: Any = None) -> None:
        door: Door = server.door
        self.parser_class = lambda adj: Parser(adj, door)
        super().__init__(server, sock, addr, adj, map)


class Dispatcher(ThreadedTaskDispatcher):  # type: ignore[misc]
    """waitress's thread pool, with a lane of its own for refusals: a 429 or a stopping
    503 is answered at once, not after the held requests ahead of it."""

    def __init__(self, door: Door) -> None:
        super().__init__()
        self.door = door
        self._refusals: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lane = threading.Thread(target=self._answer_refusals, name="lightbulb-door",
                                      daemon=True)  # fmt: skip
        self._lane.start()

    def add_task(self, task: Any) -> None:
        request = task.requests[0]  # the channel's next request (waitress holds its lock)
        if request.refusal is None and self.door.closing:
            request.refusal = Refusal(503, "the daemon is stopping; retry", close=True)
        if request.refusal is not None:
            self._refusals.put(task)
            return
        super().add_task(task)

    def refuse_queued(self) -> int:
        """Every request waiting for a thread is answered 503 (the server stops); returns how
        many."""
        with self.lock:
            waiting = list(self.queue)
            self.queue.clear()
        for channel in waiting:
            channel.requests[0].refusal = Refusal(503, "the daemon is stopping; retry",
                                                  close=True)  # fmt: skip
            self._refusals.put(channel)
        return len(waiting)

    def shutdown(self, cancel_pending: bool = True, timeout: float = 5) -> bool:
        self._refusals.put(None)
        return bool(super().shutdown(cancel_pending, timeout))

    def _answer_refusals(self) -> None:
        while True:
            channel = self._refusals.get()
            if channel is None:
                return
            try:
                channel.service()
            except Exception:  # one broken connection must not end the lane
                self.logger.exception("answering a refused request")
