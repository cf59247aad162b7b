"""IdlePolicy spec (the api model, durations already parsed) → the engine's rules and schedule (pure)."""

from __future__ import annotations

from datetime import timedelta

from gpu_steward.api.idlepolicy import IdlePolicySpec
from gpu_steward.policy.idle_model import IdleRules
from gpu_steward.policy.schedule import Window


def rules_from_spec(spec: IdlePolicySpec, *, global_dry_run: bool, max_sample_age: timedelta,
                    max_gap: timedelta) -> IdleRules:
    exemptions = spec.exemptions
    return IdleRules(
        util_threshold_percent=float(spec.idle.gpu_util_percent),
        idle_for=spec.idle.for_,
        startup_grace=spec.idle.startup_grace or timedelta(0),
        notice_before=spec.notice.before,
        max_snooze=spec.notice.max_snooze,
        max_exemption=exemptions.max_exemption if exemptions else timedelta(days=7),
        action=spec.action,
        # The global switch wins: a platform team's dry-run cannot be overridden by one policy.
        dry_run=spec.dry_run or global_dry_run,
        channels=tuple(spec.notice.channels or ("Slack", "Event")),
        max_sample_age=max_sample_age,
        max_gap=max_gap,
    )


def windows_from_spec(spec: IdlePolicySpec) -> tuple[tuple[Window, ...], str | None]:
    if spec.schedule is None:
        return (), None
    return tuple(Window(w.cron, w.duration) for w in spec.schedule.windows), spec.schedule.time_zone
