{{- define "skewscope.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "skewscope.fullname" -}}
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

{{- define "skewscope.selectorLabels" -}}
app.kubernetes.io/name: {{ include "skewscope.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "skewscope.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "skewscope.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: agent
app.kubernetes.io/part-of: skewscope
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "skewscope.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "skewscope.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The address the agent's listener binds: every address when Prometheus scrapes it,
     loopback when only the kubelet's probes use it. */}}
{{- define "skewscope.listen" -}}
{{- if .Values.prometheus.enabled }}0.0.0.0{{ else }}127.0.0.1{{ end }}:{{ .Values.prometheus.port }}
{{- end }}

{{- define "skewscope.headersSecret" -}}
{{- if .Values.otlp.headersSecret.name }}{{ .Values.otlp.headersSecret.name }}{{ else }}{{ include "skewscope.fullname" . }}-otlp-headers{{ end }}
{{- end }}

{{/* One TOML value: strings and lists through toJson (a JSON string or array of
     strings is a TOML basic string or array), booleans as is, integral numbers as
     integers (values arrive as float64; a count like max_groups must stay an integer),
     other numbers as floats. */}}
{{- define "skewscope.toml.value" -}}
{{- $v := . }}
{{- if kindIs "string" $v }}{{ toJson $v }}
{{- else if kindIs "bool" $v }}{{ $v }}
{{- else if kindIs "slice" $v }}{{ toJson $v }}
{{- else if and (kindIs "float64" $v) (eq (float64 (int64 $v)) $v) }}{{ int64 $v }}
{{- else }}{{ $v }}
{{- end }}
{{- end }}

{{/* A TOML table from a map: its scalar keys first, then each sub-map as a
     [parent."key"] table (TOML wants a table's own keys before its sub-tables). Keys
     are quoted, so dotted attribute names stay one key. Nulls and empty maps are left out. */}}
{{- define "skewscope.toml.table" -}}
{{- $path := .path }}
{{- range $k, $v := .map }}
{{- if and (not (kindIs "map" $v)) (not (kindIs "invalid" $v)) }}
{{ toJson $k }} = {{ include "skewscope.toml.value" $v }}
{{- end }}
{{- end }}
{{- range $k, $v := .map }}
{{- if and (kindIs "map" $v) $v }}
{{- $sub := append $path (toJson $k) }}

[{{ join "." $sub }}]
{{- include "skewscope.toml.table" (dict "path" $sub "map" $v) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The agent's config file: values.config plus [otlp] and [prometheus]. */}}
{{- define "skewscope.config" -}}
{{- $cfg := deepCopy .Values.config }}
{{- $otlp := dict }}
{{- with .Values.otlp }}
{{- if .endpoint }}
{{- $_ := set $otlp "endpoint" .endpoint }}
{{- $_ := set $otlp "protocol" .protocol }}
{{- $_ := set $otlp "timeout_secs" .timeoutSecs }}
{{- $_ := set $otlp "export_interval_secs" .exportIntervalSecs }}
{{- $_ := set $otlp "compression" .compression }}
{{- $_ := set $cfg "otlp" $otlp }}
{{- end }}
{{- end }}
{{- $_ := set $cfg "prometheus" (dict "listen" (include "skewscope.listen" .)) }}
# Rendered by the skewscope chart from its values; docs/configuration.md has every key.
{{- include "skewscope.toml.table" (dict "path" (list) "map" $cfg) }}
{{- end }}

{{/* Whether an OTLP headers Secret is used. */}}
{{- define "skewscope.hasHeaders" -}}
{{- if or .Values.otlp.headersSecret.name .Values.otlp.headers }}true{{ end }}
{{- end }}
