"""Delivering an idle notice on the channels its policy names, and what counts as delivered.

A notice counts (the engine's ``confirm``) only when it reached the owner on at least one channel the
policy names: a Slack send that failed, Slack without a webhook or token, an Event the API refused —
none of these is a notice (design invariant 2). A notice that reached no one is retried on a later
pass, with exponential backoff kept in memory (a restart retries at once, which is harmless: nothing
was delivered). Failed sends are counted per channel in ``gpusteward_notices_failed_total``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

from prometheus_client import Counter

from gpu_steward.notify.slack import SlackNotifier

NOTICES_FAILED = Counter("gpusteward_notices_failed_total", "Idle notices that a channel failed to deliver",
                         ["channel"])

CHANNELS = ("Slack", "Event")


def unusable_channels(channels: Iterable[str], slack: SlackNotifier | None) -> list[str]:
    """The channels a policy names that the operator cannot use (a policy naming one is Degraded)."""
    out = []
    for channel in channels:
        if channel == "Slack" and (slack is None or not slack.configured):
            out.append("Slack (no webhook URL or bot token configured)")
        elif channel not in CHANNELS:
            out.append(f"{channel} (unknown channel)")
    return out


@dataclass(frozen=True)
class Delivery:
    delivered: tuple[str, ...]
    failed: tuple[str, ...]
    errors: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return bool(self.delivered)


def deliver(channels: Iterable[str], senders: dict[str, Callable[[], tuple[bool, str]]]) -> Delivery:
    """Run each named channel's sender (``() -> (ok, error)``); a channel without a sender failed.

    Slack goes last: the caller confirms right after, so the window in which a crash hides an external
    send that already happened (and the notice is repeated) stays as short as it can be."""
    delivered, failed, errors = [], [], []
    for channel in sorted(set(channels), key=lambda c: (c == "Slack", c)):
        send = senders.get(channel)
        ok, error = send() if send is not None else (False, f"{channel}: channel not available")
        if ok:
            delivered.append(channel)
        else:
            failed.append(channel)
            errors.append(f"{channel}: {error}")
            NOTICES_FAILED.labels(channel).inc()
    return Delivery(tuple(delivered), tuple(failed), tuple(errors))


class Backoff:
    """When a notice that reached no one may be tried again: base, 2 x base, 4 x base ... up to ``cap``."""

    def __init__(self, base: dt.timedelta, cap: dt.timedelta = dt.timedelta(minutes=30)) -> None:
        self.base, self.cap = base, cap
        self._failures: dict[Hashable, tuple[int, dt.datetime]] = {}

    def due(self, key: Hashable, now: dt.datetime) -> bool:
        entry = self._failures.get(key)
        return entry is None or now >= entry[1]

    def failed(self, key: Hashable, now: dt.datetime) -> dt.datetime:
        count = self._failures.get(key, (0, now))[0] + 1
        retry_at: dt.datetime = now + min(self.base * 2 ** (count - 1), self.cap)
        self._failures[key] = (count, retry_at)
        return retry_at

    def known(self, key: Hashable) -> bool:
        """Whether this process saw an attempt for ``key`` fail (and not succeed since)."""
        return key in self._failures

    def succeeded(self, key: Hashable) -> None:
        self._failures.pop(key, None)

    def forget(self, keep: Callable[[Hashable], bool]) -> None:
        """Drop the entries ``keep`` rejects (workloads that are gone)."""
        for key in [k for k in self._failures if not keep(k)]:
            del self._failures[key]
