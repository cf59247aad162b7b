"""``gpu-steward demo --chapter``: which chapters run, in which order, and the settings they rely on."""

from __future__ import annotations

import argparse

import pytest

from gpu_steward_testground import demo


def test_all_chapters_by_default_in_story_order():
    assert demo.selected(None) == demo.selected("all") == ("idle", "budget", "lease")
    assert demo.selected("lease") == ("lease",)
    with pytest.raises(ValueError, match="choose one of idle, budget, lease"):
        demo.selected("cost")
    assert set(demo.CHAPTER_RUNS) == set(demo.CHAPTERS)


def test_the_command_passes_the_chapter(monkeypatch):
    calls = []
    monkeypatch.setattr(demo, "run_demo",
                        lambda keep=False, chapter=None, kind=None: calls.append((keep, chapter, kind)) or 0)
    parser = argparse.ArgumentParser()
    demo.add_demo_command(parser.add_subparsers())
    for argv in (["demo"], ["demo", "--chapter", "budget"], ["demo", "--chapter", "idle", "--kind", "TrainJob"]):
        args = parser.parse_args(argv)
        assert args.func(args) == 0
    assert calls == [(False, "all", None), (False, "budget", None), (False, "idle", "TrainJob")]
    with pytest.raises(SystemExit):
        parser.parse_args(["demo", "--kind", "CronJob"])  # only kinds the test ground runs a controller for
    with pytest.raises(SystemExit):
        parser.parse_args(["demo", "--chapter", "nope"])


def test_the_operator_gets_prices_approvers_and_webhooks(tmp_path):
    from gpu_steward_testground.slackreceiver import SlackReceiver

    with SlackReceiver() as slack:
        settings = demo.operator_settings(demo.Demo(cp=None, nodes=[], slack=slack), 9443)  # type: ignore[arg-type]
    assert settings["approver_groups"] == [demo.APPROVERS] and settings["webhook_enabled"] == "true"
    assert set(settings["gpu_hour_prices"]) == {"NVIDIA-A100-SXM4-80GB", "NVIDIA-H100-80GB-HBM3"}
    assert settings["slack_bot_token"].startswith("xoxb-")  # threads and mentions in the story


def test_date_tokens_read_as_their_fallback_in_the_terminal():
    assert demo._readable("due <!date^1767225600^{date_short_pretty} {time}|2026-01-01T00:00:00Z>.") == \
        "due 2026-01-01T00:00:00Z."
