"""The operator's peering identity never needs a passwd entry (random uids: OpenShift, the image's 65532)."""

from __future__ import annotations

import getpass

import pytest

from gpu_steward.handlers.run import operator_identity


def _no_passwd_entry() -> str:
    raise KeyError("getpwuid(): uid not found: 65532")


def test_the_pod_name_from_the_downward_api_is_the_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(getpass, "getuser", _no_passwd_entry)
    assert operator_identity({"POD_NAME": "gpu-steward-operator-7d9f-abcde"}) == "gpu-steward-operator-7d9f-abcde"


def test_outside_a_pod_host_and_pid_without_looking_up_the_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(getpass, "getuser", _no_passwd_entry)
    ident = operator_identity({}, pid=4242)
    assert ident.startswith("gpu-steward@") and ident.endswith("/4242")
