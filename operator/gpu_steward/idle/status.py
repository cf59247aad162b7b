"""An IdlePolicy's status: the counts of a pass, and conditions Ready / Invalid / Degraded / DataProtected.

Written only when it changed (a steady cluster costs no status writes).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from gpu_steward.api.common import GROUP, VERSION
from gpu_steward.api.conditions import set_condition
from gpu_steward.kube import Kube

Condition = tuple[str, str, str, str]  # type, status, reason, message


def policy_conditions(unusable_channels: list[str], protected: list[str], *, breaker: str | None = None,
                      paused: str | None = None) -> list[Condition]:
    """Degraded: a named notice channel cannot be used (the policy never suspends then), or the blast-radius
    circuit breaker holds back suspensions of this policy (``breaker``: its message, with the numbers).
    DataProtected: workloads only notified about because suspending them would delete data (or their own
    controller rejects suspension and would fail them: each entry says which).
    ActionsPaused: the global switch is on (``paused``: why): warnings and reports go on, no suspension."""
    if breaker:
        more = ("; also notice channel(s) the operator cannot use: " + "; ".join(unusable_channels)
                if unusable_channels else "")
        degraded = ("Degraded", "True", "CircuitBreakerOpen", breaker + more)
    elif unusable_channels:
        degraded = ("Degraded", "True", "NoticeChannelUnavailable",
                    "notice channel(s) the operator cannot use: " + "; ".join(unusable_channels)
                    + ". Warnings go out on the others; nothing is suspended until this is fixed")
    else:
        degraded = ("Degraded", "False", "ChannelsAvailable", "every notice channel can be used")
    if protected:
        more = f" (and {len(protected) - 5} more)" if len(protected) > 5 else ""
        data = ("DataProtected", "True", "SuspensionWouldDeleteData",
                "notify-only, suspending would delete data or fail the workload: " + "; ".join(protected[:5]) + more)
    else:
        data = ("DataProtected", "False", "NoDataAtRisk", "no governed workload would lose data")
    if paused:
        pause = ("ActionsPaused", "True", "ActionsPaused",
                 f"no workload is suspended ({paused}); warnings, resumes and reports go on")
    else:
        pause = ("ActionsPaused", "False", "ActionsAllowed", "suspensions are allowed")
    return [degraded, data, pause]


def signal_condition(signal: str, fallbacks: list[str]) -> Condition:
    """SignalFallback: workloads judged on GPUUtil because their GPUs cannot give the policy's idle.signal
    (no NVML GPM / DCGM profiling: GPUs before Hopper, or dcgm-exporter without the profiling field)."""
    if not fallbacks:
        return ("SignalFallback", "False", "SignalAvailable", f"every measured workload gives {signal}")
    more = f" (and {len(fallbacks) - 5} more)" if len(fallbacks) > 5 else ""
    return ("SignalFallback", "True", "SignalUnavailable",
            f"judged on GPUUtil, their GPUs cannot give {signal}: " + "; ".join(fallbacks[:5]) + more)


def write_status(kube: Kube, body: dict[str, Any], fields: dict[str, Any], now: dt.datetime, *, ok: bool,
                 reason: str, message: str, extra: list[Condition] | None = None) -> bool:
    """Patch the policy's status when it differs from what ``body`` holds; True when written."""
    meta, current = body["metadata"], body.get("status") or {}
    gen = meta.get("generation")
    conditions = set_condition(current.get("conditions") or [], "Ready", "True" if ok else "False", reason,
                               message, gen, now)
    if not ok:
        conditions = set_condition(conditions, "Invalid", "True", "InvalidSpec", message, gen, now)
    else:
        conditions = set_condition(conditions, "Invalid", "False", "Valid", "spec is valid", gen, now)
    for ctype, cstatus, creason, cmessage in extra or []:
        conditions = set_condition(conditions, ctype, cstatus, creason, cmessage[:1024], gen, now)  # type: ignore[arg-type]
    desired = {**fields, "observedGeneration": gen, "conditions": conditions}
    if all(current.get(k) == v for k, v in desired.items()):
        return False  # write status only when it changed
    kube.patch(f"{GROUP}/{VERSION}", "IdlePolicy", meta["name"], meta["namespace"], {"status": desired},
               dry_run=False, subresource="status")
    body["status"] = {**current, **desired}
    return True
