{{/* Names, labels and the values every Harrier pod shares. */}}

{{- define "harrier.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-scoped name; truncated to 63 characters (DNS label limit). */}}
{{- define "harrier.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "harrier.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "harrier.selectorLabels" -}}
app.kubernetes.io/name: {{ include "harrier.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "harrier.labels" -}}
helm.sh/chart: {{ include "harrier.chart" . }}
{{ include "harrier.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of one component: (dict "ctx" $ "component" "worker"). */}}
{{- define "harrier.componentSelectorLabels" -}}
{{ include "harrier.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "harrier.componentLabels" -}}
{{ include "harrier.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "harrier.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "harrier.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "harrier.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "harrier.redisFullname" -}}
{{- printf "%s-redis" (include "harrier.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The broker URL: the bundled Redis, or redis.external.url (required then). */}}
{{- define "harrier.brokerUrl" -}}
{{- if .Values.redis.enabled }}
{{- printf "redis://%s:6379/0" (include "harrier.redisFullname" .) }}
{{- else }}
{{- required "redis.external.url is required when redis.enabled is false" .Values.redis.external.url }}
{{- end }}
{{- end }}

{{/* host:port of the broker's Redis, for KEDA. */}}
{{- define "harrier.redisAddress" -}}
{{- if .Values.worker.keda.address }}
{{- .Values.worker.keda.address }}
{{- else }}
{{- $url := urlParse (include "harrier.brokerUrl" .) }}
{{- if not (hasPrefix "redis" $url.scheme) }}
{{- fail "worker.keda.enabled needs a Redis broker (redis:// or rediss://) or worker.keda.address" }}
{{- end }}
{{- if contains ":" $url.host }}
{{- $url.host }}
{{- else }}
{{- printf "%s:6379" $url.host }}
{{- end }}
{{- end }}
{{- end }}

{{- define "harrier.checksums" -}}
checksum/flows: {{ include (print $.Template.BasePath "/configmap-flows.yaml") . | sha256sum }}
checksum/secret: {{ include (print $.Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end }}

{{/* Environment shared by scheduler and worker containers. */}}
{{- define "harrier.env" -}}
- name: HARRIER_FLOWS_DIR
  value: /app/flows
- name: HARRIER_LOG_LEVEL
  value: {{ .Values.config.logLevel | quote }}
- name: HARRIER_VISIBILITY_TIMEOUT
  value: {{ .Values.config.visibilityTimeout | quote }}
- name: HARRIER_EXECUTION_RETENTION
  value: {{ .Values.config.executionRetention | quote }}
- name: HARRIER_WEBHOOK_MAX_BODY
  value: {{ .Values.config.webhookMaxBody | quote }}
- name: HARRIER_API_MAX_BODY
  value: {{ .Values.config.apiMaxBody | quote }}
- name: HARRIER_API_WORKERS
  value: {{ .Values.config.apiWorkers | quote }}
- name: HARRIER_DEFAULT_TASK_RUNNER
  value: {{ .Values.config.defaultTaskRunner | quote }}
{{- with .Values.config.dockerHost }}
- name: HARRIER_DOCKER_HOST
  value: {{ . | quote }}
{{- end }}
{{- with .Values.config.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* envFrom: the chart's Secret, then the user's own. */}}
{{- define "harrier.envFrom" -}}
- secretRef:
    name: {{ include "harrier.fullname" . }}
{{- with .Values.existingSecret }}
- secretRef:
    name: {{ . }}
{{- end }}
{{- end }}

{{- define "harrier.flowsVolume" -}}
- name: flows
  configMap:
    name: {{ include "harrier.fullname" . }}-flows
- name: tmp
  emptyDir: {}
- name: work
  emptyDir: {}
- name: storage
  {{- if .Values.storage.existingClaim }}
  persistentVolumeClaim:
    claimName: {{ .Values.storage.existingClaim }}
  {{- else }}
  emptyDir: {}
  {{- end }}
{{- end }}

{{- define "harrier.flowsVolumeMounts" -}}
- name: flows
  mountPath: /app/flows
  readOnly: true
- name: tmp
  mountPath: /tmp
- name: work
  mountPath: /app/work
- name: storage
  mountPath: /app/storage
{{- end }}

{{- /*
The API password: auth.password when given, else the one this release's Secret
already holds (so an upgrade keeps it), else a new random one.
*/}}
{{- define "harrier.apiPassword" -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "harrier.fullname" .) | default dict -}}
{{- $kept := dig "data" "HARRIER_API_PASSWORD" "" $existing -}}
{{- if .Values.auth.password -}}
{{- .Values.auth.password -}}
{{- else if $kept -}}
{{- $kept | b64dec -}}
{{- else -}}
{{- randAlphaNum 32 -}}
{{- end -}}
{{- end -}}
