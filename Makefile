# The README's two commands: `make demo` and `make test`. Each sets up everything it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test venv controlplane lint crds bench proto images

# The product (operator + agent) and, beside it, the test ground (local control plane, simulated GPU
# nodes, Slack receiver, demo) that the images never install.
$(BIN)/.installed: pyproject.toml testground/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]' -e ./testground
	touch $@

venv: $(BIN)/.installed

# The upstream workload controllers the tests run (each also builds on first use); `--controllers` with
# no names builds all of them (JobSet, KubeRay, Kueue, LWS, training operator, Trainer).
TEST_CONTROLLERS ?= jobset kuberay kueue lws training-operator trainer

controlplane: venv
	$(BIN)/python -m gpu_steward_testground.build --controllers $(TEST_CONTROLLERS)

# The demo's stories run on the control plane alone; `gpu-steward demo --kind KIND` builds that kind's
# controller when it first needs it.
demo: venv
	$(BIN)/python -m gpu_steward_testground.build
	$(BIN)/gpu-steward demo

lint: venv
	$(BIN)/ruff check operator agent testground tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy operator/gpu_steward/policy operator/gpu_steward/api operator/gpu_steward/units.py operator/gpu_steward/workloads/model.py operator/gpu_steward/workloads/resolve.py operator/gpu_steward/workloads/adapters.py operator/gpu_steward/index.py operator/gpu_steward/kube_watch.py operator/gpu_steward/cluster_view.py operator/gpu_steward/budgets/writes.py operator/gpu_steward/leadership.py operator/gpu_steward/notify/interactions.py operator/gpu_steward/notify/messages.py operator/gpu_steward/tls.py operator/gpu_steward/webhook_certs.py

# Both images from operator/Dockerfile and agent/Dockerfile: Docker where a daemon answers, else buildah
# (Debian packages; a Debian base from mmdebstrap where the registry base cannot be pulled).
images:
	scripts/build-images.sh

crds: venv
	$(BIN)/gpu-steward crds generate

test: controlplane lint
	$(BIN)/pytest

# Speed and memory figures (printed, never asserted): agent, idle engine, owner resolution, cost, one idle pass at 2,000 pods.
bench: controlplane
	$(BIN)/python bench/agent_bench.py
	$(BIN)/python bench/bench_idle_engine.py
	$(BIN)/python bench/bench_workloads_resolve.py
	$(BIN)/python bench/bench_cost.py
	$(BIN)/python bench/idle_bench.py

# Regenerates the kubelet pod-resources gRPC stubs from agent/gpu_steward_agent/podresources/api.proto.
proto: venv
	$(BIN)/python -m gpu_steward_agent.podresources.generate
