{{/* Names: <release>-<chart>, shortened to 63 characters, as `helm create` does. */}}
{{- define "ssa.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ssa.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The CSI driver name kubelet and pods know; upstream's, so this is a drop-in. */}}
{{- define "ssa.driverName" -}}secrets-store.csi.k8s.io{{- end -}}

{{- define "ssa.serviceAccountName" -}}{{ include "ssa.fullname" . }}{{- end -}}

{{- define "ssa.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ssa.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ssa.labels" -}}
{{ include "ssa.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app: {{ include "ssa.name" . }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* repository[:tag|@digest]; an empty tag means the chart's appVersion. */}}
{{- define "ssa.image" -}}
{{- $image := .image -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository (default .appVersion $image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
A duration as the agent's flags take it: Go's form, "90s", "2m", "1h30m", at most Go's longest
(2562047h47m16.854775807s; config.parse_duration refuses more).
*/}}
{{- define "ssa.duration" -}}
{{- $text := toString . -}}
{{- if not (regexMatch "^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$" $text) -}}
{{- fail (printf "%q is not a duration: use Go's form, e.g. 90s, 2m, 1h30m" $text) -}}
{{- end -}}
{{- if gt (include "ssa.seconds" $text | float64) 9223372036.854775 -}}
{{- fail (printf "%q is longer than a Go duration can be (2562047h47m16.854775807s): use a shorter one" $text) -}}
{{- end -}}
{{- $text -}}
{{- end -}}

{{/*
The port of a Go listen address (":8095", "0.0.0.0:8095", "[::]:8095"), 1-65535, else a failure
naming the value. Context: (dict "address" ":8095" "key" "linux.metricsAddr").
*/}}
{{- define "ssa.port" -}}
{{- $address := .address | toString -}}
{{- $port := regexFind "[0-9]+$" $address -}}
{{- if or (not (regexMatch "^(\\[[0-9A-Fa-f:.%a-z]+\\]|[^:\\[\\]]*):[0-9]{1,5}$" $address)) (lt (int $port) 1) (gt (int $port) 65535) -}}
{{- fail (printf "%s %q is not a listen address kubelet can probe: use :PORT or HOST:PORT with a port from 1 to 65535 (IPv6 hosts in brackets), e.g. \":8095\"" .key $address) -}}
{{- end -}}
{{- $port -}}
{{- end -}}

{{/*
The agent's flags (upstream's names; every one is parsed by the agent's own parser in the
chart's tests). $(VAR) references are expanded by kubelet from the container's env.
Context: (dict "Values" .Values "node" .Values.linux), or .Values.windows on Windows nodes.
*/}}
{{- define "ssa.agentArgs" -}}
{{- if .Values.logVerbosity }}
- {{ printf "-v=%d" (int .Values.logVerbosity) | quote }}
{{- end }}
{{- if .Values.logFormatJSON }}
- --log-format-json
{{- end }}
- --endpoint=$(CSI_ENDPOINT)
- --nodeid=$(KUBE_NODE_NAME)
- {{ printf "--provider-volume=%s" .node.providersDir | quote }}
- {{ printf "--additional-provider-volume-paths=%s" (join "," (.node.additionalProvidersDirs | default list)) | quote }}
{{- if .Values.enableSecretRotation }}
- --enable-secret-rotation=true
{{- end }}
{{- with .Values.rotationPollInterval }}
- {{ printf "--rotation-poll-interval=%s" (include "ssa.duration" .) | quote }}
{{- end }}
{{- with .Values.rotationMinPollInterval }}
- {{ printf "--rotation-min-poll-interval=%s" (include "ssa.duration" .) | quote }}
{{- end }}
{{- with .Values.rotationConcurrency }}
- {{ printf "--rotation-concurrency=%d" (int .) | quote }}
{{- end }}
- {{ printf "--metrics-addr=%s" .node.metricsAddr | quote }}
- {{ printf "--health-addr=:%d" (int .Values.livenessProbe.port) | quote }}
{{- if .Values.providerHealthCheck }}
- --provider-health-check=true
- {{ printf "--provider-health-check-interval=%s" (include "ssa.duration" .Values.providerHealthCheckInterval) | quote }}
{{- end }}
- {{ printf "--max-call-recv-msg-size=%d" (int64 .Values.maxCallRecvMsgSize) | quote }}
{{- with .Values.preferPluginProviders }}
- {{ printf "--prefer-plugin-providers=%s" (join "," .) | quote }}
{{- end }}
- {{ printf "--state-dir=%s" .node.stateDir | quote }}
- {{ printf "--kubelet-root-dir=%s" (.node.kubeletRootDir | trimSuffix "/" | trimSuffix "\\") | quote }}
{{- include "ssa.kubernetesArgs" . }}
{{- include "ssa.providerArgs" . }}
{{- with .node.tmpfsSize }}
- {{ printf "--tmpfs-size=%s" (toString .) | quote }}
{{- end }}
{{- range .node.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}
