"""The operator's identity never needs a passwd entry (random uids: OpenShift, the image's 65532).

kopf's default identity calls ``getpass.getuser()``, which crashed the operator image under uid 65532;
the operator names itself (pod name from the Downward API, else the host name) and hands that to kopf.
The image tests (tests/chart/test_images_run.py) run the real image under such uids.
"""

from __future__ import annotations

import getpass
import inspect

import pytest

from gpu_steward.handlers import run
from gpu_steward.leadership import new_identity


def _no_passwd_entry() -> str:
    raise KeyError("getpwuid(): uid not found: 65532")


def test_the_pod_name_names_the_replica_without_looking_up_the_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(getpass, "getuser", _no_passwd_entry)
    assert new_identity("gpu-steward-operator-7d9f-abcde").startswith("gpu-steward-operator-7d9f-abcde_")
    assert new_identity(None)  # outside a pod: the host name


def test_every_kopf_operator_is_given_the_identity() -> None:
    """Both kopf operators (webhooks on every replica, the acting one on the leader) get it explicitly."""
    source = inspect.getsource(run)
    assert source.count("kopf.operator(") == 2
    assert source.count("identity=self.identity") + source.count("identity=actor.identity") == 2
