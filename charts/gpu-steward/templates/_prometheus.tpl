{{/*
Prometheus trust material for the operator (config.utilizationSource: prometheus): a CA bundle and a
bearer token, each from a Secret mounted read-only; the operator reads them as files
(GPU_STEWARD_PROMETHEUS_CA_FILE / _BEARER_TOKEN_FILE). TLS is always verified.
*/}}
{{- define "gpu-steward.prometheusCaDir" -}}/etc/gpu-steward/prometheus-ca{{- end -}}
{{- define "gpu-steward.prometheusTokenDir" -}}/etc/gpu-steward/prometheus-token{{- end -}}

{{- define "gpu-steward.prometheusEnv" -}}
{{- with .Values.prometheus.caSecret }}
- name: GPU_STEWARD_PROMETHEUS_CA_FILE
  value: {{ printf "%s/%s" (include "gpu-steward.prometheusCaDir" $) $.Values.prometheus.caKey | quote }}
{{- end }}
{{- with .Values.prometheus.tokenSecret }}
- name: GPU_STEWARD_PROMETHEUS_BEARER_TOKEN_FILE
  value: {{ printf "%s/%s" (include "gpu-steward.prometheusTokenDir" $) $.Values.prometheus.tokenKey | quote }}
{{- end }}
{{- end -}}

{{- define "gpu-steward.prometheusVolumeMounts" -}}
{{- if .Values.prometheus.caSecret }}
- name: prometheus-ca
  mountPath: {{ include "gpu-steward.prometheusCaDir" . }}
  readOnly: true
{{- end }}
{{- if .Values.prometheus.tokenSecret }}
- name: prometheus-token
  mountPath: {{ include "gpu-steward.prometheusTokenDir" . }}
  readOnly: true
{{- end }}
{{- end -}}

{{- define "gpu-steward.prometheusVolumes" -}}
{{- with .Values.prometheus.caSecret }}
- name: prometheus-ca
  secret:
    secretName: {{ . | quote }}
    items: [{key: {{ $.Values.prometheus.caKey | quote }}, path: {{ $.Values.prometheus.caKey | quote }}}]
    defaultMode: 0440
{{- end }}
{{- with .Values.prometheus.tokenSecret }}
- name: prometheus-token
  secret:
    secretName: {{ . | quote }}
    items: [{key: {{ $.Values.prometheus.tokenKey | quote }}, path: {{ $.Values.prometheus.tokenKey | quote }}}]
    defaultMode: 0440
{{- end }}
{{- end -}}
