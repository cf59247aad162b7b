{{/* Names, labels and images shared by every template. */}}

{{- define "gpu-steward.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "gpu-steward.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "gpu-steward.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "gpu-steward.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels for every object; pass a dict {root: $, component: "operator"}. */}}
{{- define "gpu-steward.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: gpu-steward
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
{{ include "gpu-steward.selectorLabels" . }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "gpu-steward.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gpu-steward.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end -}}

{{/* Image reference; pass a dict {image: .Values.x.image, root: $}. A digest wins over a tag. */}}
{{- /* GPU Steward publishes no images: the platform team builds both (`make images`) and pushes them
to its own registry, so a missing repository stops the install with what to do instead of an
ImagePullBackOff on every node. */ -}}
{{- define "gpu-steward.image" -}}
{{- $repo := required (printf "%s.image.repository is required: GPU Steward publishes no images. Build them with `make images` (or scripts/build-images.sh), push them to your registry and set %s.image.repository (and tag or digest); see docs/install.md" .component .component) .image.repository -}}
{{- with .root.Values.global }}{{- if .imageRegistry }}{{- $repo = printf "%s/%s" (trimSuffix "/" .imageRegistry) $repo }}{{- end }}{{- end }}
{{- if .image.digest -}}
{{ $repo }}@{{ .image.digest }}
{{- else -}}
{{ $repo }}:{{ default .root.Chart.AppVersion .image.tag }}
{{- end -}}
{{- end -}}

{{/*
Sharded mode (operator.shards > 1): one operator Deployment per shard. Helpers of one shard take a dict
{root: $, index: <shard>}. With one shard every name and selector is the unsharded one, so an install
upgraded to this chart keeps its Deployment (a Deployment's selector cannot change).
*/}}
{{- define "gpu-steward.sharded" -}}
{{- if gt (int .Values.operator.shards) 1 }}true{{ end -}}
{{- end -}}

{{- define "gpu-steward.operatorName" -}}
{{ include "gpu-steward.fullname" .root }}-operator{{ if include "gpu-steward.sharded" .root }}-shard-{{ .index }}{{ end }}
{{- end -}}

{{/* The pod label that tells the shards' pods apart: no Deployment's selector matches another's pods. */}}
{{- define "gpu-steward.shardLabel" -}}
{{- if include "gpu-steward.sharded" .root -}}
gpusteward.dev/shard: {{ .index | toString | quote }}
{{- end -}}
{{- end -}}

{{- define "gpu-steward.operatorSelectorLabels" -}}
{{ include "gpu-steward.selectorLabels" (dict "root" .root "component" "operator") }}
{{- with include "gpu-steward.shardLabel" . }}
{{ . }}
{{- end }}
{{- end -}}

{{/*
The names an object the operator keeps under one name gets in each shard (the operator appends
"-shard-<index>" when sharded: policy.shards.Shard.name), as a JSON list for resourceNames.
Pass a dict {root: $, base: <name>}.
*/}}
{{- define "gpu-steward.shardNames" -}}
{{- $count := int .root.Values.operator.shards -}}
{{- $names := list .base -}}
{{- if gt $count 1 -}}
{{- $names = list -}}
{{- range $index := until $count -}}
{{- $names = append $names (printf "%s-shard-%d" $.base $index) -}}
{{- end -}}
{{- end -}}
{{- toJson $names -}}
{{- end -}}

{{- define "gpu-steward.operatorServiceAccount" -}}
{{- default (printf "%s-operator" (include "gpu-steward.fullname" .)) .Values.serviceAccount.operator.name -}}
{{- end -}}

{{- define "gpu-steward.agentServiceAccount" -}}
{{- default (printf "%s-agent" (include "gpu-steward.fullname" .)) .Values.serviceAccount.agent.name -}}
{{- end -}}

{{- define "gpu-steward.leaseName" -}}
{{- default (printf "%s-leader" (include "gpu-steward.fullname" .)) .Values.operator.leaderElection.leaseName -}}
{{- end -}}

{{- define "gpu-steward.webhookService" -}}
{{- printf "%s-webhook" (include "gpu-steward.fullname" .) -}}
{{- end -}}

{{- define "gpu-steward.webhookSecret" -}}
{{- printf "%s-webhook-tls" (include "gpu-steward.fullname" .) -}}
{{- end -}}

{{- define "gpu-steward.webhookConfigurationName" -}}
{{- printf "%s.gpusteward.dev" (include "gpu-steward.fullname" .) -}}
{{- end -}}

{{/* The webhook serving certificate's files are mounted here (certificates: helm | certManager). */}}
{{- define "gpu-steward.webhookCertDir" -}}
/etc/gpu-steward/webhook-tls
{{- end -}}

{{/* Checks that span several values, which a JSON schema cannot express. */}}
{{- define "gpu-steward.validate" -}}
{{- /* kopf's own certificate is per pod and each pod writes the webhook configurations: one pod only. */}}
{{- if and .Values.webhook.enabled (eq .Values.webhook.certificates "kopf") (gt (int .Values.operator.shards) 1) -}}
{{- fail "webhook.certificates=kopf makes one self-signed certificate per operator pod and each shard would write the webhook configurations: set operator.shards: 1 (and operator.replicas: 1), or use certificates: operator, helm or certManager" -}}
{{- end -}}
{{- if and .Values.webhook.enabled (eq .Values.webhook.certificates "kopf") (gt (int .Values.operator.replicas) 1) -}}
{{- fail "webhook.certificates=kopf makes one self-signed certificate per replica: set operator.replicas: 1, or use certificates: operator, helm or certManager" -}}
{{- end -}}
{{- /* The shards split these caps (Settings refuses a share of 0 that would never let a shard suspend). */}}
{{- range $key := list "perPass" "perHour" }}
{{- $cap := int (get $.Values.config.blastRadius $key) }}
{{- if and (gt $cap 0) (lt $cap (int $.Values.operator.shards)) -}}
{{- fail (printf "config.blastRadius.%s (%d) must be 0 or at least operator.shards (%d): the shards split it, and a shard with a share of 0 could never suspend" $key $cap (int $.Values.operator.shards)) -}}
{{- end -}}
{{- end }}
{{- if and (gt (int .Values.operator.replicas) 1) (not .Values.operator.leaderElection.enabled) -}}
{{- fail "operator.replicas > 1 needs operator.leaderElection.enabled: without it every replica would act" -}}
{{- end -}}
{{- with .Values.operator.leaderElection }}
{{- if and .enabled (not (and (lt (float64 .retryPeriodSeconds) (float64 .renewDeadlineSeconds)) (lt (float64 .renewDeadlineSeconds) (float64 .leaseDurationSeconds)))) -}}
{{- fail "operator.leaderElection needs retryPeriodSeconds < renewDeadlineSeconds < leaseDurationSeconds" -}}
{{- end -}}
{{- end -}}
{{- if and (eq .Values.config.utilizationSource "prometheus") (not .Values.config.prometheusUrl) -}}
{{- fail "config.utilizationSource=prometheus needs config.prometheusUrl" -}}
{{- end -}}
{{- if and (ne .Values.config.ownershipAdmission "off") (not .Values.webhook.enabled) -}}
{{- fail "config.ownershipAdmission needs webhook.enabled" -}}
{{- end -}}
{{- end -}}

{{/* Slack buttons: on when the Slack Secret holds a signing secret (requests are verified with it) and a
bot token (users.info tells who clicked: only owners may). */}}
{{- define "gpu-steward.slackInteractive" -}}
{{- if and .Values.slack.existingSecret .Values.slack.signingSecretKey .Values.slack.botTokenKey }}true{{ end -}}
{{- end }}


{{/* The runtime controls (the global switch, the breaker acknowledgement) and the blast-radius record. */}}
{{- define "gpu-steward.controlsConfigMap" -}}
{{ include "gpu-steward.fullname" . }}-controls
{{- end -}}
{{- define "gpu-steward.blastRecordConfigMap" -}}
{{ include "gpu-steward.fullname" . }}-blast-radius
{{- end -}}
{{/* Used Slack click ids (replay protection for the Snooze/Resume buttons, docs/security.md). */}}
{{- define "gpu-steward.slackClickRecordConfigMap" -}}
{{ include "gpu-steward.fullname" . }}-slack-clicks
{{- end -}}

{{/* imagePullSecrets of the pods: the chart's and a parent chart's global ones. */}}
{{- define "gpu-steward.imagePullSecrets" -}}
{{- $secrets := concat (.Values.imagePullSecrets | default list) ((.Values.global | default dict).imagePullSecrets | default list) -}}
{{- with $secrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
