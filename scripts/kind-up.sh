#!/usr/bin/env bash
# Install GPU Steward the way a platform team would, on a local kind cluster.
#
# Needs: Docker (a running daemon), kind, kubectl, helm on PATH. It cannot run in this project's
# CI or dev sandbox (no Docker there): the tests install the same chart into a real control
# plane built from source instead (tests/chart/test_install.py).
#
#   scripts/kind-up.sh                 # cluster + images + helm install, dry-run policies
#   scripts/kind-up.sh --set slack.existingSecret=gpu-steward-slack   # extra helm args pass through
#   CLUSTER=demo TAG=test scripts/kind-up.sh
#   scripts/kind-up.sh --down          # delete the kind cluster
#
# Steps: create the cluster from kind-config.yaml (if absent) -> docker build the operator image
# (operator/Dockerfile) and the agent image (agent/Dockerfile) -> kind load both -> helm upgrade
# --install with those image names and pullPolicy Never -> wait for the operator rollout.
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=${CLUSTER:-gpu-steward}
NAMESPACE=${NAMESPACE:-gpu-steward}
RELEASE=${RELEASE:-gpu-steward}
TAG=${TAG:-dev}

if [[ "${1:-}" == "--down" ]]; then
  kind delete cluster --name "$CLUSTER"
  exit 0
fi

for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || { echo "kind-up: '$tool' is required on PATH" >&2; exit 1; }
done
docker info >/dev/null 2>&1 || { echo "kind-up: the Docker daemon is not reachable" >&2; exit 1; }

if ! kind get clusters | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --config kind-config.yaml
fi
kubectl config use-context "kind-$CLUSTER" >/dev/null

# The one image build (scripts/build-images.sh), with Docker here; images named localhost/gpu-steward-*.
BUILDER=docker IMAGE_TAG="$TAG" IMAGE_REPO_PREFIX=localhost scripts/build-images.sh
OPERATOR_IMAGE=localhost/gpu-steward-operator
AGENT_IMAGE=localhost/gpu-steward-agent
images=("$OPERATOR_IMAGE:$TAG" "$AGENT_IMAGE:$TAG")
agent_args=(--set agent.image.repository="$AGENT_IMAGE" --set agent.image.tag="$TAG"
            --set agent.image.pullPolicy=Never)
kind load docker-image --name "$CLUSTER" "${images[@]}"

helm upgrade --install "$RELEASE" charts/gpu-steward \
  --namespace "$NAMESPACE" --create-namespace \
  --set operator.image.repository="$OPERATOR_IMAGE" --set operator.image.tag="$TAG" \
  --set operator.image.pullPolicy=Never \
  "${agent_args[@]}" "$@"

kubectl -n "$NAMESPACE" wait --for=condition=Available deployment --timeout=180s \
  -l "app.kubernetes.io/instance=$RELEASE,app.kubernetes.io/component=operator"
echo
echo "GPU Steward is up on kind-$CLUSTER. Next: docs/install.md (\"Your first policy, in dry-run\")."
kubectl -n "$NAMESPACE" get idlepolicies
