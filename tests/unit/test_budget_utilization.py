"""Utilization for the cost ledger: only ok readings count; unknown pods are never idle."""

from __future__ import annotations

import datetime as dt

from gpu_steward.budgets.utilization import sample
from gpu_steward.policy.usage import Usage

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)


class StaticSource:
    """A UtilizationSource with fixed answers (the protocol of gpu_steward.sources.base)."""

    def __init__(self, answers):
        self.answers, self.asked = answers, []

    async def fetch(self, pods, now):
        self.asked.append([p.uid for p in pods])
        return {p.uid: self.answers.get(p.uid, Usage.unknown("not in summary")) for p in pods}

    async def close(self):
        pass


def pod(name, uid, node="n1"):
    return {"metadata": {"namespace": "ns", "name": name, "uid": uid}, "spec": {"nodeName": node}}


async def test_only_ok_readings_are_returned():
    source = StaticSource({"u1": Usage.ok(3.0, 10.0, 5, NOW, 300), "u2": Usage.unknown("agent down")})
    lookup = await sample(source, [pod("a", "u1"), pod("b", "u2"), pod("c", "u3")], NOW)
    assert lookup("ns", "a") == 3.0
    assert lookup("ns", "b") is None and lookup("ns", "c") is None and lookup("other", "a") is None
    assert source.asked == [["u1", "u2", "u3"]]


async def test_no_pods_asks_nothing():
    source = StaticSource({})
    lookup = await sample(source, [], NOW)
    assert lookup("ns", "a") is None and source.asked == []
