"""Budgets, leases and the cost ledger: orchestration over ``gpu_steward.kube.Kube``.

Each ``reconcile_*`` function reads what it needs from the cluster, asks the pure policy in
``gpu_steward.policy`` (cost, budget, lease) what to do, and writes the result back through Kube
(status only when it changed, objects create-if-absent / patch-if-different). ``now`` is passed in.
The kopf handlers in ``gpu_steward.handlers.budget`` / ``.lease`` / ``.admission`` only call these.
"""
