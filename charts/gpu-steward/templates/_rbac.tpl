{{/*
The operator's RBAC rules: the ONE place to adjust them. Every verb here is one the code uses
(operator/gpu_steward/kube.py callers, the workload adapters, and kopf itself); no wildcards
(tests/chart/test_rbac.py fails on one). The agent gets no rules at all: it reads NVML and the
kubelet's pod-resources socket, and its ServiceAccount token is not even mounted.
*/}}
{{- define "gpu-steward.operatorRules" -}}
# GPU pods: indexed (kopf list/watch), owner chain read, cost and idle-state annotations patched.
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, patch]
# Node labels give the GPU model (price) and the per-node price override.
- apiGroups: [""]
  resources: [nodes]
  verbs: [get, list, watch]
# IdlePolicy namespaceSelector and kopf's namespace tracking.
- apiGroups: [""]
  resources: [namespaces]
  verbs: [get, list, watch]
# Notices and actions as Events on the workload (ours and kopf's). Events are only ever created.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# The ResourceQuota each GPUBudget owns in its namespace: create-if-absent, patch-if-different; its
# ownerReference to the budget lets the garbage collector remove it with the budget. The operator deletes
# it itself only when Kueue comes to admit the namespace's work (a quota beside Kueue refuses its pods).
- apiGroups: [""]
  resources: [resourcequotas]
  verbs: [get, create, patch, delete]
# Owner walk from a GPU pod (Pod -> ReplicaSet -> Deployment; DaemonSet pods end there): read one by one.
- apiGroups: [apps]
  resources: [replicasets, daemonsets]
  verbs: [get]
# Suspend/resume adapters: replicas to 0 and back, spec.suspend, their own suspend fields.
- apiGroups: [apps]
  resources: [deployments, statefulsets]
  verbs: [get, list, watch, patch]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, patch]
- apiGroups: [kubeflow.org]
  resources: [notebooks, pytorchjobs, tfjobs, mpijobs, xgboostjobs, paddlejobs, jaxjobs]
  verbs: [get, list, watch, patch]
- apiGroups: [trainer.kubeflow.org]
  resources: [trainjobs]
  verbs: [get, list, watch, patch]
- apiGroups: [jobset.x-k8s.io]
  resources: [jobsets]
  verbs: [get, list, watch, patch]
- apiGroups: [ray.io]
  resources: [rayjobs, rayclusters]
  verbs: [get, list, watch, patch]
- apiGroups: [leaderworkerset.x-k8s.io]
  resources: [leaderworkersets]
  verbs: [get, list, watch, patch]
# Workloads managed by Kueue are suspended by deactivating their Kueue Workload (spec.active).
- apiGroups: [kueue.x-k8s.io]
  resources: [workloads]
  verbs: [get, list, watch, patch]
# A GPUBudget beside Kueue: the namespace's LocalQueues name its ClusterQueue, whose nominal GPU quota
# the budget sets when that queue serves the namespace alone.
- apiGroups: [kueue.x-k8s.io]
  resources: [localqueues]
  verbs: [list]
- apiGroups: [kueue.x-k8s.io]
  resources: [clusterqueues]
  verbs: [get, patch]
# Our own resources: kopf handlers (finalizers, progress annotations) and status writes.
- apiGroups: [gpusteward.dev]
  resources: [gpubudgets, experimentleases, idlepolicies]
  verbs: [get, list, watch, patch]
- apiGroups: [gpusteward.dev]
  resources: [gpubudgets/status, experimentleases/status, idlepolicies/status]
  verbs: [get, patch]
# kopf scans CRDs to discover resources as they appear.
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
{{- if and .Values.webhook.enabled (eq .Values.webhook.certificates "kopf") }}
# kopf-managed admission: kopf creates its webhook configurations (create cannot be limited by
# name) and then reads and patches only those.
- apiGroups: [admissionregistration.k8s.io]
  resources: [validatingwebhookconfigurations, mutatingwebhookconfigurations]
  verbs: [create]
- apiGroups: [admissionregistration.k8s.io]
  resources: [validatingwebhookconfigurations, mutatingwebhookconfigurations]
  resourceNames: [{{ include "gpu-steward.webhookConfigurationName" . | quote }}]
  verbs: [get, patch]
{{- end }}
{{- if and .Values.webhook.enabled (eq .Values.webhook.certificates "operator") }}
# certificates: operator — the operator sets the caBundle of the chart's webhook configurations.
- apiGroups: [admissionregistration.k8s.io]
  resources: [validatingwebhookconfigurations, mutatingwebhookconfigurations]
  resourceNames: [{{ include "gpu-steward.webhookConfigurationName" . | quote }}]
  verbs: [get, patch]
{{- end }}
{{- with .Values.rbac.budgetSecretNames }}
# GPUBudget spec.notify.webhookSecretRef: only Secrets with these names, read-only.
- apiGroups: [""]
  resources: [secrets]
  resourceNames: {{ toJson . }}
  verbs: [get]
{{- end }}
{{- end -}}


{{/*
Leader election: the one Lease (one per shard when sharded: <lease>-shard-<i>), in the release
namespace (a Role, not the ClusterRole). create cannot be limited by name; reading and renewing can.
*/}}
{{- define "gpu-steward.leaderElectionRules" -}}
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [create]
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  resourceNames: {{ include "gpu-steward.shardNames" (dict "root" . "base" (include "gpu-steward.leaseName" .)) }}
  verbs: [get, update]
{{- end -}}


{{/*
The idle loop's blast-radius ConfigMaps in the release namespace (docs/idle.md, "Blast radius"): the
controls a platform engineer writes (read only), and the record of the last hour's suspensions (written
before each suspension; one per shard when sharded, <name>-shard-<i>, as each shard's leader keeps its
own); and the Slack buttons' used click ids (one for all shards: any shard's leader may take a click).
create cannot be limited by name; reading and updating can. The idle store and the cost history need no
rule here: the records Role (rbac.yaml) covers every ConfigMap of the release namespace.
*/}}
{{- define "gpu-steward.blastRadiusRules" -}}
{{- if and .Values.webhook.enabled (eq .Values.webhook.certificates "operator") }}
{{- /* certificates: operator — the webhook certificate's Secret (create cannot be limited by name). */}}
- apiGroups: [""]
  resources: [secrets]
  verbs: [create]
- apiGroups: [""]
  resources: [secrets]
  resourceNames: [{{ include "gpu-steward.webhookSecret" . | quote }}]
  verbs: [get, update]
{{- end }}
- apiGroups: [""]
  resources: [configmaps]
  verbs: [create]
- apiGroups: [""]
  resources: [configmaps]
  resourceNames: {{ include "gpu-steward.shardNames" (dict "root" . "base" (include "gpu-steward.blastRecordConfigMap" .)) }}
  verbs: [get, update]
- apiGroups: [""]
  resources: [configmaps]
  resourceNames: [{{ include "gpu-steward.controlsConfigMap" . | quote }}]
  verbs: [get]
{{- /* Slack buttons: the used click ids, written before a click acts (docs/security.md). */}}
- apiGroups: [""]
  resources: [configmaps]
  resourceNames: [{{ include "gpu-steward.slackClickRecordConfigMap" . | quote }}]
  verbs: [get, update]
{{- end -}}
