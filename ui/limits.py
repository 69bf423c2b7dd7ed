"""Fair use of the one model, per user: a question waits in line only once (a second one from
the same person while the first waits or streams is refused, so nobody holds several places
in the line and the line stays first come, first served between people), and at most
`per_minute` questions a minute. No Gradio here, so the rules are testable."""

from __future__ import annotations

import math
import threading
import time
from collections import deque

from rag.errors import BadInput


class QuestionLimits:
    def __init__(self, per_minute: int, stale_s: float = 900.0, clock=time.monotonic):
        self.per_minute = per_minute
        self.stale_s = stale_s  # an admitted question never released (a closed tab) lapses
        self.clock = clock
        self._lock = threading.Lock()
        self._in_line: dict[str, float] = {}
        self._recent: dict[str, deque[float]] = {}

    def admit(self, user: str) -> None:
        now = self.clock()
        with self._lock:
            since = self._in_line.get(user)
            if since is not None and now - since < self.stale_s:
                raise BadInput(
                    "your previous question is still being answered",
                    "wait for its answer, then ask the next one",
                )
            recent = self._recent.setdefault(user, deque())
            while recent and now - recent[0] >= 60:
                recent.popleft()
            if self.per_minute and len(recent) >= self.per_minute:
                wait = math.ceil(60 - (now - recent[0]))
                raise BadInput(
                    f"{self.per_minute} questions in the last minute is this page's limit",
                    f"ask again in {wait} s",
                )
            recent.append(now)
            self._in_line[user] = now

    def release(self, user: str) -> None:
        with self._lock:
            self._in_line.pop(user, None)
