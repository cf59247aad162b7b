"""Writes charts/gpu-steward/values.schema.json: every object closed (additionalProperties: false).

Maps whose keys are the user's (labels, annotations, prices per GPU model) are the only objects
with open keys, and their values are still typed. Run: python scripts/values_schema.py [--check]
(tests/chart/test_schema.py runs --check, so the committed file never drifts from this source).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parent.parent / "charts" / "gpu-steward"
SCHEMA_PATH = CHART / "values.schema.json"
# The chart's copy of the generated CRD (never edited by hand): policies in values are checked
# against the same spec schema the apiserver will use, closed at every level.
IDLEPOLICY_CRD = CHART / "crds" / "gpusteward.dev_idlepolicies.yaml"

S = dict[str, Any]

# Formats shared with the CRDs (common vocabulary).
DURATION = r"^([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?$"
MONEY = r"^[0-9]+(\.[0-9]{1,4})?$"


def obj(props: dict[str, S], required: list[str] | None = None, **extra: Any) -> S:
    out: S = {"type": "object", "additionalProperties": False, "properties": props}
    if required:
        out["required"] = required
    out.update(extra)
    return out


def arr(items: S, **extra: Any) -> S:
    return {"type": "array", "items": items, **extra}


def string(**extra: Any) -> S:
    return {"type": "string", **extra}


def integer(**extra: Any) -> S:
    return {"type": "integer", **extra}


def number(**extra: Any) -> S:
    return {"type": "number", **extra}


BOOL: S = {"type": "boolean"}
LABEL_SELECTOR: S = obj({
    "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
    "matchExpressions": {"type": "array", "items": obj({
        "key": {"type": "string"}, "operator": {"type": "string", "enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
        "values": {"type": "array", "items": {"type": "string"}}}, required=["key", "operator"])},
})
STRING_MAP: S = {"type": "object", "additionalProperties": {"type": "string"}}
STRINGS: S = arr(string())
DURATION_S: S = string(pattern=DURATION, minLength=2)
MONEY_S: S = string(pattern=MONEY)
PORT: S = integer(minimum=1, maximum=65535)
QUANTITY: S = {"oneOf": [{"type": "string", "pattern": r"^[0-9.]+[a-zA-Z]*$"}, {"type": "number", "minimum": 0}]}


def ref(name: str) -> S:
    return {"$ref": f"#/definitions/{name}"}


DEFINITIONS: dict[str, S] = {
    "image": obj({
        # Empty by default: no public image exists, so the chart's templates refuse to render without
        # one and say how to build it (a clearer message than a schema error).
        "repository": string(),
        "tag": string(),
        "digest": string(pattern=r"^(sha256:[a-f0-9]{64})?$"),
        "pullPolicy": string(enum=["Always", "IfNotPresent", "Never"]),
    }, required=["repository"]),
    "resources": obj({
        "requests": {"type": "object", "additionalProperties": QUANTITY},
        "limits": {"type": "object", "additionalProperties": QUANTITY},
    }),
    "toleration": obj({
        "key": string(),
        "operator": string(enum=["Exists", "Equal"]),
        "value": string(),
        "effect": string(enum=["", "NoSchedule", "PreferNoSchedule", "NoExecute"]),
        "tolerationSeconds": integer(),
    }),
    "envVar": obj({
        "name": string(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$"),
        "value": string(),
        "valueFrom": obj({
            "secretKeyRef": obj({"name": string(minLength=1), "key": string(minLength=1), "optional": BOOL},
                                required=["name", "key"]),
            "configMapKeyRef": obj({"name": string(minLength=1), "key": string(minLength=1), "optional": BOOL},
                                   required=["name", "key"]),
            "fieldRef": obj({"fieldPath": string(minLength=1), "apiVersion": string()}, required=["fieldPath"]),
            "resourceFieldRef": obj({"resource": string(minLength=1), "containerName": string(),
                                     "divisor": QUANTITY}, required=["resource"]),
        }, minProperties=1, maxProperties=1),
    }, required=["name"], oneOf=[{"required": ["value"]}, {"required": ["valueFrom"]}]),
    "seccompProfile": obj({"type": string(enum=["RuntimeDefault", "Localhost", "Unconfined"]),
                           "localhostProfile": string()}, required=["type"]),
    "seLinuxOptions": obj({"user": string(), "role": string(), "type": string(), "level": string()}),
    "appArmorProfile": obj({"type": string(enum=["RuntimeDefault", "Localhost", "Unconfined"]),
                            "localhostProfile": string()}, required=["type"]),
    "podSecurityContext": obj({
        "runAsNonRoot": BOOL, "runAsUser": integer(minimum=0), "runAsGroup": integer(minimum=0),
        "fsGroup": integer(minimum=0), "fsGroupChangePolicy": string(enum=["OnRootMismatch", "Always"]),
        "supplementalGroups": arr(integer(minimum=0)), "seccompProfile": ref("seccompProfile"),
        "seLinuxOptions": ref("seLinuxOptions"), "appArmorProfile": ref("appArmorProfile"),
        "sysctls": arr(obj({"name": string(minLength=1), "value": string()}, required=["name", "value"])),
    }),
    "securityContext": obj({
        "allowPrivilegeEscalation": BOOL, "readOnlyRootFilesystem": BOOL, "privileged": BOOL,
        "runAsNonRoot": BOOL, "runAsUser": integer(minimum=0), "runAsGroup": integer(minimum=0),
        "capabilities": obj({"add": STRINGS, "drop": STRINGS}), "procMount": string(enum=["Default", "Unmasked"]),
        "seccompProfile": ref("seccompProfile"), "seLinuxOptions": ref("seLinuxOptions"),
        "appArmorProfile": ref("appArmorProfile"),
    }),
    "labelSelector": obj({
        "matchLabels": STRING_MAP,
        "matchExpressions": arr(obj({
            "key": string(minLength=1),
            "operator": string(enum=["In", "NotIn", "Exists", "DoesNotExist"]),
            "values": STRINGS,
        }, required=["key", "operator"])),
    }),
    "nodeSelectorTerm": obj({
        "matchExpressions": arr(obj({
            "key": string(minLength=1),
            "operator": string(enum=["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]),
            "values": STRINGS,
        }, required=["key", "operator"])),
        "matchFields": arr(obj({
            "key": string(minLength=1),
            "operator": string(enum=["In", "NotIn"]),
            "values": STRINGS,
        }, required=["key", "operator"])),
    }),
    "podAffinityTerm": obj({
        "labelSelector": ref("labelSelector"),
        "namespaceSelector": ref("labelSelector"),
        "namespaces": STRINGS,
        "topologyKey": string(minLength=1),
        "matchLabelKeys": STRINGS,
        "mismatchLabelKeys": STRINGS,
    }, required=["topologyKey"]),
    "weightedPodAffinityTerm": obj({"weight": integer(minimum=1, maximum=100),
                                    "podAffinityTerm": ref("podAffinityTerm")},
                                   required=["weight", "podAffinityTerm"]),
    "podAffinity": obj({
        "requiredDuringSchedulingIgnoredDuringExecution": arr(ref("podAffinityTerm")),
        "preferredDuringSchedulingIgnoredDuringExecution": arr(ref("weightedPodAffinityTerm")),
    }),
    "affinity": obj({
        "nodeAffinity": obj({
            "requiredDuringSchedulingIgnoredDuringExecution": obj(
                {"nodeSelectorTerms": arr(ref("nodeSelectorTerm"))}, required=["nodeSelectorTerms"]),
            "preferredDuringSchedulingIgnoredDuringExecution": arr(obj(
                {"weight": integer(minimum=1, maximum=100), "preference": ref("nodeSelectorTerm")},
                required=["weight", "preference"])),
        }),
        "podAffinity": ref("podAffinity"),
        "podAntiAffinity": ref("podAffinity"),
    }),
    "topologySpreadConstraint": obj({
        "maxSkew": integer(minimum=1),
        "topologyKey": string(minLength=1),
        "whenUnsatisfiable": string(enum=["DoNotSchedule", "ScheduleAnyway"]),
        "labelSelector": ref("labelSelector"),
        "minDomains": integer(minimum=1),
        "matchLabelKeys": STRINGS,
        "nodeAffinityPolicy": string(enum=["Honor", "Ignore"]),
        "nodeTaintsPolicy": string(enum=["Honor", "Ignore"]),
    }, required=["maxSkew", "topologyKey", "whenUnsatisfiable"]),
    "serviceAccount": obj({"create": BOOL, "name": string(), "annotations": STRING_MAP}),
}


# JSON-schema keywords a CRD schema shares with values.schema.json; x-kubernetes-* (CEL rules, list
# types), defaults and descriptions stay with the CRD.
_CRD_KEYWORDS = {"type", "properties", "required", "items", "enum", "minimum", "maximum", "exclusiveMinimum",
                 "exclusiveMaximum", "minLength", "maxLength", "pattern", "minItems", "maxItems", "maxProperties",
                 "additionalProperties"}


def closed_from_crd(node: S) -> S:
    out: S = {k: v for k, v in node.items() if k in _CRD_KEYWORDS}
    if "properties" in out:
        out["properties"] = {k: closed_from_crd(v) for k, v in out["properties"].items()}
        out["additionalProperties"] = False
    elif isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = closed_from_crd(out["additionalProperties"])
    if "items" in out:
        out["items"] = closed_from_crd(out["items"])
    return out


def idle_policy_spec() -> S:
    crd = yaml.safe_load(IDLEPOLICY_CRD.read_text())
    version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
    return closed_from_crd(version["schema"]["openAPIV3Schema"]["properties"]["spec"])


def pod_settings() -> dict[str, S]:
    """What both the operator and agent pods accept for placement and decoration."""
    return {
        "resources": ref("resources"),
        "nodeSelector": STRING_MAP,
        "tolerations": arr(ref("toleration")),
        "affinity": ref("affinity"),
        "priorityClassName": string(),
        "podAnnotations": STRING_MAP,
        "podLabels": STRING_MAP,
        "extraEnv": arr(ref("envVar")),
    }


def build() -> S:
    operator = obj({
        "replicas": integer(minimum=1),
        "shards": integer(minimum=1, maximum=64),  # Settings.shard_count's bounds
        "image": ref("image"),
        "leaderElection": obj({
            "enabled": BOOL,
            "leaseName": string(pattern=r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?)?$"),
            "leaseDurationSeconds": integer(minimum=1),  # a Lease's spec.leaseDurationSeconds is whole seconds
            "renewDeadlineSeconds": number(exclusiveMinimum=0),
            "retryPeriodSeconds": number(exclusiveMinimum=0),
        }),
        "livenessPort": PORT,
        "metricsPort": PORT,
        "logLevel": string(enum=["DEBUG", "INFO", "WARNING", "ERROR"]),
        "logFormat": string(enum=["json", "console"]),
        "podDisruptionBudget": obj({"enabled": BOOL, "minAvailable": integer(minimum=0)}),
        "topologySpreadConstraints": arr(ref("topologySpreadConstraint")),
        "podSecurityContext": ref("podSecurityContext"),
        "securityContext": ref("securityContext"),
        **pod_settings(),
    })
    config = obj({
        "dryRun": BOOL,
        "pauseActions": BOOL,
        "blastRadius": obj({
            "perPass": integer(minimum=0),
            "perHour": integer(minimum=0),
            "perNamespacePerHour": integer(minimum=0),
            "breakerPercent": number(exclusiveMinimum=0, maximum=100),
            "breakerMinimum": integer(minimum=1),
        }),
        "namespaces": STRINGS,
        "evaluationIntervalSeconds": number(exclusiveMinimum=0),
        "sampleMaxAgeSeconds": number(exclusiveMinimum=0),
        "utilizationSource": string(enum=["agents", "prometheus"]),
        "prometheusUrl": string(pattern=r"^(https?://.+)?$"),
        "agentTimeoutSeconds": number(exclusiveMinimum=0),
        "prometheusPodLabel": string(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$"),
        "prometheusNamespaceLabel": string(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$"),
        "costAnnotationMinIntervalSeconds": number(exclusiveMinimum=0),
        "costAnnotationRefreshSeconds": number(exclusiveMinimum=0),
        "costAnnotationWritesPerSecond": number(exclusiveMinimum=0),
        "watchPageSize": integer(minimum=10, maximum=5000),
        "costIdleUtilPercent": number(minimum=0, maximum=100),
        "budgetSuspendNoticeSeconds": integer(minimum=60),
        "storePrefix": string(pattern=r"^[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?$"),
        "storeShards": integer(minimum=1, maximum=4096),
        "storeResyncSeconds": number(exclusiveMinimum=0),
        "storeRetentionSeconds": number(exclusiveMinimum=0),
        "legacyAdoptionSeconds": number(minimum=0),
        "ownerKeys": STRINGS,
        "ownerEmailKeys": STRINGS,
        "teamKeys": STRINGS,
        "costCenterKeys": STRINGS,
        "approverGroups": STRINGS,
        "ownershipAdmission": string(enum=["off", "warn", "enforce"]),
        "requiredPodLabels": STRINGS,
    })
    prices = obj({
        "currency": string(pattern=r"^[A-Z]{3}$"),
        "default": MONEY_S,
        "perModel": {"type": "object", "additionalProperties": MONEY_S},
        "overrideLabel": string(minLength=1),
        "perPool": {"type": "object", "additionalProperties": MONEY_S},
        "spotPerModel": {"type": "object", "additionalProperties": MONEY_S},
        "migProfiles": {"type": "object", "additionalProperties": MONEY_S},
        "migSlices": {"type": "object", "additionalProperties": integer(minimum=1, maximum=8)},
        "replicasPerGpu": integer(minimum=1),
        "opencost": obj({"enabled": BOOL}),
        "focus": obj({
            "providerName": string(minLength=1),
            "publisherName": string(minLength=1),
            "invoiceIssuerName": string(minLength=1),
            "billingAccountId": string(minLength=1),
        }),
    })
    slack = obj({
        "existingSecret": string(),
        "webhookUrlKey": string(),
        "botTokenKey": string(),
        "signingSecretKey": string(),
        "defaultChannel": string(),
        "apiUrl": string(pattern=r"^https?://"),
        "interactionsPort": PORT,
    })
    agent = obj({
        "enabled": BOOL,
        "image": ref("image"),
        "port": PORT,
        "gpuNodeLabel": string(minLength=1),
        "gpuNodeLabelValues": arr(string(), minItems=1),
        "runtimeClassName": string(),
        "podResourcesPath": string(pattern=r"^/"),
        "hostPID": BOOL,
        "runAsNonRoot": BOOL,
        "runAsUser": integer(minimum=0),
        "dcgmMetrics": BOOL,
        **pod_settings(),
    })
    metrics = obj({
        "service": obj({"enabled": BOOL}),
        "serviceMonitor": obj({"enabled": BOOL, "interval": string(pattern=r"^[0-9]+(ms|s|m|h)$"),
                               "labels": STRING_MAP}),
        "prometheusRule": obj({"enabled": BOOL, "budgetRatio": number(minimum=0), "idleGpus": integer(minimum=1)}),
    })
    webhook = obj({
        "enabled": BOOL,
        "certificates": string(enum=["operator", "helm", "certManager", "kopf"]),
        "certManager": obj({"issuerRef": obj({
            "name": string(),
            "kind": string(enum=["Issuer", "ClusterIssuer"]),
            "group": string(),
        })}),
        "port": PORT,
        "timeoutSeconds": integer(minimum=1, maximum=30),
        "leaseFailurePolicy": string(enum=["Fail", "Ignore"]),
        "podFailurePolicy": string(enum=["Fail", "Ignore"]),
    })
    policy = obj({
        "name": string(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", maxLength=63),
        "spec": idle_policy_spec(),
    }, required=["name", "spec"])
    dashboard = obj({"enabled": BOOL, "namespace": string(), "labels": STRING_MAP, "annotations": STRING_MAP})
    root = obj({
        "nameOverride": string(),
        "fullnameOverride": string(),
        "commonLabels": STRING_MAP,
        "imagePullSecrets": arr(obj({"name": string(minLength=1)}, required=["name"])),
        "operator": operator,
        "config": config,
        "prices": prices,
        "slack": slack,
        "prometheus": obj({"caSecret": string(), "caKey": string(minLength=1), "tokenSecret": string(),
                           "tokenKey": string(minLength=1)}),
        "rbac": obj({"create": BOOL, "userRoles": BOOL, "budgetSecretNames": STRINGS}),
        "networkPolicy": obj({"enabled": BOOL, "prometheus": obj({
            "namespaceSelector": LABEL_SELECTOR, "podSelector": LABEL_SELECTOR})}),
        "serviceAccount": obj({"operator": ref("serviceAccount"), "agent": ref("serviceAccount")}),
        "agent": agent,
        "metrics": metrics,
        "webhook": webhook,
        "policies": arr(policy),
        "dashboard": dashboard,
        # A parent chart's globals reach every subchart: open, since a parent may set any key here.
        "global": {"type": "object", "properties": {
            "imageRegistry": string(), "imagePullSecrets": arr(obj({"name": string(minLength=1)}, required=["name"]))}},
        "tests": obj({"enabled": BOOL}),
    })
    return {"$schema": "http://json-schema.org/draft-07/schema#", "title": "GPU Steward Helm values",
            **root, "definitions": DEFINITIONS}


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if SCHEMA_PATH.read_text() != text:
            print(f"{SCHEMA_PATH} is stale: run python scripts/values_schema.py", file=sys.stderr)
            return 1
        return 0
    SCHEMA_PATH.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
