{{/*
The operator's environment: Helm values -> GPU_STEWARD_<FIELD> for each field of
operator/gpu_steward/settings.py (tests/chart/test_settings_env.py loads Settings from exactly
this list). Lists and maps are JSON, which pydantic-settings parses for complex fields.
Secrets only arrive through secretKeyRef.
*/}}
{{- define "gpu-steward.operatorEnv" -}}
{{- $c := .Values.config -}}
- name: GPU_STEWARD_DRY_RUN
  value: {{ $c.dryRun | toString | quote }}
- name: GPU_STEWARD_ACTIONS_PAUSED
  value: {{ $c.pauseActions | toString | quote }}
- name: GPU_STEWARD_CONTROLS_CONFIGMAP
  value: {{ include "gpu-steward.controlsConfigMap" . | quote }}
- name: GPU_STEWARD_BLAST_RECORD_CONFIGMAP
  value: {{ include "gpu-steward.blastRecordConfigMap" . | quote }}
{{- with $c.blastRadius }}
- name: GPU_STEWARD_SUSPENSIONS_PER_PASS
  value: {{ .perPass | toString | quote }}
- name: GPU_STEWARD_SUSPENSIONS_PER_HOUR
  value: {{ .perHour | toString | quote }}
- name: GPU_STEWARD_SUSPENSIONS_PER_NAMESPACE_PER_HOUR
  value: {{ .perNamespacePerHour | toString | quote }}
- name: GPU_STEWARD_BREAKER_PERCENT
  value: {{ .breakerPercent | toString | quote }}
- name: GPU_STEWARD_BREAKER_MINIMUM
  value: {{ .breakerMinimum | toString | quote }}
{{- end }}
- name: GPU_STEWARD_NAMESPACES
  value: {{ $c.namespaces | toJson | quote }}
- name: GPU_STEWARD_PLATFORM_NAMESPACE
  value: {{ .Release.Namespace | quote }}
- name: GPU_STEWARD_EVALUATION_INTERVAL_SECONDS
  value: {{ $c.evaluationIntervalSeconds | toString | quote }}
- name: GPU_STEWARD_SAMPLE_MAX_AGE_SECONDS
  value: {{ $c.sampleMaxAgeSeconds | toString | quote }}
- name: GPU_STEWARD_UTILIZATION_SOURCE
  value: {{ $c.utilizationSource | quote }}
- name: GPU_STEWARD_AGENT_NAMESPACE
  value: {{ .Release.Namespace | quote }}
- name: GPU_STEWARD_AGENT_LABEL_SELECTOR
  value: {{ printf "app.kubernetes.io/component=agent,app.kubernetes.io/instance=%s" .Release.Name | quote }}
- name: GPU_STEWARD_AGENT_PORT
  value: {{ .Values.agent.port | toString | quote }}
- name: GPU_STEWARD_AGENT_TIMEOUT_SECONDS
  value: {{ $c.agentTimeoutSeconds | toString | quote }}
{{- with $c.prometheusUrl }}
- name: GPU_STEWARD_PROMETHEUS_URL
  value: {{ . | quote }}
{{- end }}
- name: GPU_STEWARD_PROMETHEUS_POD_LABEL
  value: {{ $c.prometheusPodLabel | default "pod" | quote }}
- name: GPU_STEWARD_PROMETHEUS_NAMESPACE_LABEL
  value: {{ $c.prometheusNamespaceLabel | default "namespace" | quote }}
{{- include "gpu-steward.prometheusEnv" . }}
- name: GPU_STEWARD_CURRENCY
  value: {{ .Values.prices.currency | quote }}
- name: GPU_STEWARD_DEFAULT_GPU_HOUR_PRICE
  value: {{ .Values.prices.default | quote }}
- name: GPU_STEWARD_GPU_HOUR_PRICES
  value: {{ .Values.prices.perModel | toJson | quote }}
- name: GPU_STEWARD_PRICE_OVERRIDE_LABEL
  value: {{ .Values.prices.overrideLabel | quote }}
- name: GPU_STEWARD_POOL_GPU_HOUR_PRICES
  value: {{ .Values.prices.perPool | toJson | quote }}
- name: GPU_STEWARD_SPOT_GPU_HOUR_PRICES
  value: {{ .Values.prices.spotPerModel | toJson | quote }}
- name: GPU_STEWARD_MIG_PROFILE_PRICES
  value: {{ .Values.prices.migProfiles | toJson | quote }}
- name: GPU_STEWARD_MIG_SLICES_PER_GPU
  value: {{ .Values.prices.migSlices | toJson | quote }}
- name: GPU_STEWARD_GPU_REPLICAS_DEFAULT
  value: {{ .Values.prices.replicasPerGpu | toString | quote }}
- name: GPU_STEWARD_OPENCOST_ENABLED
  value: {{ .Values.prices.opencost.enabled | toString | quote }}
- name: GPU_STEWARD_FOCUS_PROVIDER_NAME
  value: {{ .Values.prices.focus.providerName | quote }}
- name: GPU_STEWARD_FOCUS_PUBLISHER_NAME
  value: {{ .Values.prices.focus.publisherName | quote }}
- name: GPU_STEWARD_FOCUS_INVOICE_ISSUER_NAME
  value: {{ .Values.prices.focus.invoiceIssuerName | quote }}
- name: GPU_STEWARD_FOCUS_BILLING_ACCOUNT_ID
  value: {{ .Values.prices.focus.billingAccountId | quote }}
- name: GPU_STEWARD_COST_ANNOTATION_MIN_INTERVAL_SECONDS
  value: {{ $c.costAnnotationMinIntervalSeconds | toString | quote }}
- name: GPU_STEWARD_COST_ANNOTATION_REFRESH_SECONDS
  value: {{ $c.costAnnotationRefreshSeconds | toString | quote }}
- name: GPU_STEWARD_COST_ANNOTATION_WRITES_PER_SECOND
  value: {{ $c.costAnnotationWritesPerSecond | toString | quote }}
- name: GPU_STEWARD_WATCH_PAGE_SIZE
  value: {{ $c.watchPageSize | toString | quote }}
- name: GPU_STEWARD_COST_IDLE_UTIL_PERCENT
  value: {{ $c.costIdleUtilPercent | toString | quote }}
- name: GPU_STEWARD_BUDGET_SUSPEND_NOTICE_SECONDS
  value: {{ $c.budgetSuspendNoticeSeconds | toString | quote }}
- name: GPU_STEWARD_STORE_PREFIX
  value: {{ $c.storePrefix | quote }}
- name: GPU_STEWARD_STORE_SHARDS
  value: {{ $c.storeShards | toString | quote }}
- name: GPU_STEWARD_STORE_RESYNC_SECONDS
  value: {{ $c.storeResyncSeconds | toString | quote }}
- name: GPU_STEWARD_STORE_RETENTION_SECONDS
  value: {{ $c.storeRetentionSeconds | toString | quote }}
- name: GPU_STEWARD_LEGACY_ADOPTION_SECONDS
  value: {{ $c.legacyAdoptionSeconds | toString | quote }}
- name: GPU_STEWARD_OWNER_KEYS
  value: {{ $c.ownerKeys | toJson | quote }}
- name: GPU_STEWARD_OWNER_EMAIL_KEYS
  value: {{ $c.ownerEmailKeys | toJson | quote }}
- name: GPU_STEWARD_TEAM_KEYS
  value: {{ $c.teamKeys | toJson | quote }}
- name: GPU_STEWARD_COST_CENTER_KEYS
  value: {{ $c.costCenterKeys | toJson | quote }}
- name: GPU_STEWARD_APPROVER_GROUPS
  value: {{ $c.approverGroups | toJson | quote }}
- name: GPU_STEWARD_OWNERSHIP_ADMISSION
  value: {{ $c.ownershipAdmission | quote }}
- name: GPU_STEWARD_REQUIRED_POD_LABELS
  value: {{ $c.requiredPodLabels | toJson | quote }}
{{- with .Values.slack }}
{{- if .existingSecret }}
{{- range $key, $field := dict "webhookUrlKey" "SLACK_WEBHOOK_URL" "botTokenKey" "SLACK_BOT_TOKEN" "signingSecretKey" "SLACK_SIGNING_SECRET" }}
{{- with (get $.Values.slack $key) }}
- name: GPU_STEWARD_{{ $field }}
  valueFrom:
    secretKeyRef:
      name: {{ $.Values.slack.existingSecret | quote }}
      key: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}
- name: GPU_STEWARD_SLACK_API_URL
  value: {{ .apiUrl | quote }}
{{- if include "gpu-steward.slackInteractive" $ }}
- name: GPU_STEWARD_SLACK_INTERACTIONS_LISTEN_ADDR
  value: "0.0.0.0"
- name: GPU_STEWARD_SLACK_INTERACTIONS_PORT
  value: {{ .interactionsPort | toString | quote }}
- name: GPU_STEWARD_SLACK_CLICK_RECORD_CONFIGMAP
  value: {{ include "gpu-steward.slackClickRecordConfigMap" $ | quote }}
{{- end }}
{{- with .defaultChannel }}
- name: GPU_STEWARD_SLACK_DEFAULT_CHANNEL
  value: {{ . | quote }}
{{- end }}
{{- end }}
- name: GPU_STEWARD_METRICS_PORT
  value: {{ .Values.operator.metricsPort | toString | quote }}
- name: GPU_STEWARD_LOG_FORMAT
  value: {{ .Values.operator.logFormat | quote }}
- name: GPU_STEWARD_LOG_LEVEL
  value: {{ .Values.operator.logLevel | quote }}
{{- with .Values.operator.leaderElection }}
{{- if .enabled }}
- name: GPU_STEWARD_LEADER_ELECTION_LEASE_NAME
  value: {{ include "gpu-steward.leaseName" $ | quote }}
- name: GPU_STEWARD_LEADER_ELECTION_NAMESPACE
  value: {{ $.Release.Namespace | quote }}
- name: GPU_STEWARD_LEADER_ELECTION_LEASE_DURATION_SECONDS
  value: {{ .leaseDurationSeconds | toString | quote }}
- name: GPU_STEWARD_LEADER_ELECTION_RENEW_DEADLINE_SECONDS
  value: {{ .renewDeadlineSeconds | toString | quote }}
- name: GPU_STEWARD_LEADER_ELECTION_RETRY_PERIOD_SECONDS
  value: {{ .retryPeriodSeconds | toString | quote }}
{{- end }}
{{- end }}
- name: GPU_STEWARD_LIVENESS_ENDPOINT
  value: {{ printf "http://0.0.0.0:%v/healthz" .Values.operator.livenessPort | quote }}
- name: GPU_STEWARD_WEBHOOK_ENABLED
  value: {{ .Values.webhook.enabled | toString | quote }}
{{- if .Values.webhook.enabled }}
{{- $kopfManaged := eq .Values.webhook.certificates "kopf" }}
- name: GPU_STEWARD_WEBHOOK_LISTEN_ADDR
  value: "0.0.0.0"
- name: GPU_STEWARD_WEBHOOK_PORT
  value: {{ .Values.webhook.port | toString | quote }}
- name: GPU_STEWARD_WEBHOOK_HOST
  value: {{ printf "%s.%s.svc" (include "gpu-steward.webhookService" .) .Release.Namespace | quote }}
{{- if eq .Values.webhook.certificates "operator" }}
- name: GPU_STEWARD_WEBHOOK_CERT_SECRET
  value: {{ include "gpu-steward.webhookSecret" . | quote }}
- name: GPU_STEWARD_WEBHOOK_SERVICE
  value: {{ include "gpu-steward.webhookService" . | quote }}
{{- else if not $kopfManaged }}
- name: GPU_STEWARD_WEBHOOK_CERT_DIR
  value: {{ include "gpu-steward.webhookCertDir" . | quote }}
{{- end }}
- name: GPU_STEWARD_WEBHOOK_MANAGE_CONFIGURATION
  value: {{ $kopfManaged | toString | quote }}
- name: GPU_STEWARD_WEBHOOK_CONFIGURATION_NAME
  value: {{ include "gpu-steward.webhookConfigurationName" . | quote }}
{{- end }}
{{- end -}}

{{/*
Which shard a Deployment's pods are (Settings.shard_count, shard_index): 1 and 0 when not sharded.
Pass a dict {root: $, index: <shard>}.
*/}}
{{- define "gpu-steward.shardEnv" -}}
- name: GPU_STEWARD_SHARD_COUNT
  value: {{ .root.Values.operator.shards | toString | quote }}
- name: GPU_STEWARD_SHARD_INDEX
  value: {{ .index | toString | quote }}
{{- end -}}
