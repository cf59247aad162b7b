"""The Slack app manifest in docs/ asks for exactly the scopes the notifier uses, and its interactivity
URL is the operator's endpoint."""

from __future__ import annotations

from pathlib import Path

import yaml

from gpu_steward.notify.interactions_server import PATH

MANIFEST = Path(__file__).resolve().parents[2] / "docs" / "slack-app-manifest.yaml"


def test_the_manifest_asks_for_exactly_the_scopes_the_features_need():
    manifest = yaml.safe_load(MANIFEST.read_text())
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == ["chat:write", "users:read", "users:read.email"]
    assert "user" not in manifest["oauth_config"]["scopes"]
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["settings"]["interactivity"]["request_url"].endswith(PATH)
    assert manifest["features"]["app_home"]["messages_tab_enabled"] is True  # DMs land in the app's tab
    docs = (MANIFEST.parent / "install.md").read_text()
    for scope in ("chat:write", "users:read", "users:read.email"):
        assert f"| `{scope}` |" in docs
