"""Reconnecting: the back-off between attempts, and the task that keeps attempting."""

from __future__ import annotations

import asyncio
import random

from hivecast.net import ConnectionRefused
from hivecast.net.reconnect import RESET_AFTER, Backoff, Reconnecting


def test_backoff_doubles_up_to_the_maximum_and_restarts_after_a_long_attempt() -> None:
    b = Backoff(1.0, 5.0)
    assert [b.next(0.1) for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert b.next(RESET_AFTER + 1) == 1.0 and b.next(0.1) == 2.0


def test_backoff_jitter_stays_within_half_and_all_of_the_step() -> None:
    b = Backoff(1.0, 8.0, jitter=True, rng=random.Random(7))
    delays = [b.next(0.0) for _ in range(6)]
    steps = [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert all(step / 2 <= d <= step for d, step in zip(delays, steps, strict=True))
    assert len(set(delays)) == len(delays)


class Flaky(Reconnecting):
    """Refused twice, then a bug, then a clean end, then it blocks like a healthy connection."""

    kind = "pull"

    def __init__(self) -> None:
        super().__init__("cam", "rtmp://127.0.0.1:1/live/cam", min_backoff=0.01, max_backoff=0.02)
        self.outcomes: list[BaseException | None] = [ConnectionRefused("refused"), ConnectionRefused("refused"),
                                                     KeyError("bug"), None]
        self.errors: list[str] = []
        self.blocking = asyncio.Event()

    async def attempt(self) -> None:
        self.errors.append(self.last_error)
        if not self.outcomes:
            self.running()
            self.bytes += 10
            self.blocking.set()
            await asyncio.Event().wait()
        outcome = self.outcomes.pop(0)
        if outcome is not None:
            raise outcome


async def test_attempts_go_on_through_expected_and_unexpected_failures() -> None:
    relay = Flaky()
    assert relay.status()["state"] == "idle"
    relay.start()
    await asyncio.wait_for(relay.blocking.wait(), 5)
    # What each attempt saw of the one before: refused, refused, the bug, then a clean end clears it.
    assert relay.errors == ["", "refused", "refused", "KeyError('bug')", ""]
    status = relay.status()
    assert (status["state"], status["attempts"], status["reconnects"], status["bytes"]) == ("running", 5, 4, 10)
    await relay.stop()
    assert relay.status()["state"] == "stopped"
