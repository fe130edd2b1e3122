{{/*
Values that cannot work fail `helm template` with what to change. Called once, from the
DaemonSet template.
*/}}
{{- define "ssa.validate" -}}
{{- $image := .Values.linux.image.repository | toString -}}
{{- if hasSuffix "csi-secrets-store/driver" $image -}}
{{- fail (printf "linux.image.repository is the upstream driver's image (%s); this chart runs secrets-store-agent: remove linux.image from your values or point it at the agent's image" $image) -}}
{{- end -}}
{{- $windowsImage := .Values.windows.image.repository | toString -}}
{{- if and .Values.windows.enabled (hasSuffix "csi-secrets-store/driver" $windowsImage) -}}
{{- fail (printf "windows.image.repository is the upstream driver's image (%s); this chart runs secrets-store-agent: remove windows.image from your values or point it at a Windows build of the agent" $windowsImage) -}}
{{- end -}}
{{- if not (or .Values.linux.enabled .Values.windows.enabled) -}}
{{- fail "linux.enabled=false and windows.enabled=false leave no DaemonSet to install: enable at least one" -}}
{{- end -}}
{{- $namespace := .Release.Namespace -}}
{{- if or (gt (len $namespace) 63) (not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" $namespace)) -}}
{{- fail (printf "namespace %q is not a Kubernetes namespace name (at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit): install with --namespace kube-system or another valid name" $namespace) -}}
{{- end -}}
{{- if and .Values.syncSecret.enabled (not .Values.rbac.install) -}}
{{- fail "syncSecret.enabled needs the agent to write Secrets, but rbac.install=false installs no Role for it: set rbac.install=true or grant the agent's service account Secret access yourself and keep syncSecret.enabled=false" -}}
{{- end -}}
{{- range $i, $request := .Values.tokenRequests -}}
{{- if not $request.audience -}}
{{- fail (printf "tokenRequests[%d].audience is empty: every token request names the audience the provider expects (e.g. vault)" $i) -}}
{{- end -}}
{{- end -}}
{{- include "ssa.validateDurations" . -}}
{{- include "ssa.validateProviders" . -}}
{{- if .Values.linux.enabled -}}
{{- include "ssa.validateNode" (dict "Values" .Values "node" .Values.linux "key" "linux") -}}
{{- end -}}
{{- if .Values.windows.enabled -}}
{{- include "ssa.validateNode" (dict "Values" .Values "node" .Values.windows "key" "windows") -}}
{{- end -}}
{{- end -}}

{{/* Durations the agent refuses at start (flags.py, flags_rotation.py), refused here first. */}}
{{- define "ssa.validateDurations" -}}
{{- with .Values.rotationPollInterval -}}
{{- if eq (include "ssa.seconds" (include "ssa.duration" .)) "0" -}}
{{- fail (printf "rotationPollInterval %q must be above zero: leave it empty for the agent's 2m, or e.g. 30s" .) -}}
{{- end -}}
{{- end -}}
{{- with .Values.providerTimeout -}}
{{- $seconds := include "ssa.seconds" (include "ssa.duration" .) | float64 -}}
{{- if or (le $seconds 0.0) (ge $seconds 120.0) -}}
{{- fail (printf "providerTimeout %q must be above 0 and below 2m, kubelet's deadline for a mount (a fetch still running then is abandoned by kubelet): leave it empty for 90s" .) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.providerHealthCheck (eq (include "ssa.seconds" (include "ssa.duration" .Values.providerHealthCheckInterval)) "0") -}}
{{- fail (printf "providerHealthCheckInterval %q must be above zero (e.g. 2m)" (toString .Values.providerHealthCheckInterval)) -}}
{{- end -}}
{{- end -}}

{{/*
A Go duration in seconds (a number as text; "0" for zero). Context: the duration; its form is
ssa.duration's to check (which it does wherever a duration is rendered).
*/}}
{{- define "ssa.seconds" -}}
{{- $units := dict "ns" 0.000000001 "us" 0.000001 "µs" 0.000001 "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 -}}
{{- $total := 0.0 -}}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h)" (toString .) -1 -}}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" . -}}
{{- $total = addf $total (mulf (float64 $number) (get $units (trimPrefix $number .))) -}}
{{- end -}}
{{- $total -}}
{{- end -}}

{{/*
One OS's DaemonSet: listen addresses the agent can bind and kubelet can probe, distinct ports in
the pod, provider dirs the comma-separated flag can carry, extraArgs.
Context: (dict "Values" .Values "node" .Values.linux "key" "linux").
*/}}
{{- define "ssa.validateNode" -}}
{{- $key := .key -}}
{{- $healthPort := int .Values.livenessProbe.port -}}
{{- with .node.metricsAddr -}}
{{- $port := include "ssa.port" (dict "address" . "key" (printf "%s.metricsAddr" $key)) | int -}}
{{- if and (eq $port $healthPort) (ne . (printf ":%d" $healthPort)) -}}
{{- fail (printf "%s.metricsAddr %q and livenessProbe.port %d are the same port on different addresses: the agent cannot listen on both; use another port, or exactly \":%d\" to serve /metrics beside /healthz" $key . $healthPort $healthPort) -}}
{{- end -}}
{{- end -}}
{{- with (.node.registrar | default dict).healthPort -}}
{{- $metricsPort := -1 -}}
{{- with $.node.metricsAddr }}{{ $metricsPort = include "ssa.port" (dict "address" . "key" "") | int }}{{ end -}}
{{- if or (eq (int .) $healthPort) (eq (int .) $metricsPort) -}}
{{- fail (printf "%s.registrar.healthPort %d is also the agent's port (livenessProbe.port or %s.metricsAddr): the registrar and the agent share the pod's network, so one of them could not listen; choose another port" $key (int .) $key) -}}
{{- end -}}
{{- end -}}
{{- range $i, $dir := prepend (.node.additionalProvidersDirs | default list) .node.providersDir -}}
{{- if contains "," $dir -}}
{{- fail (printf "%s: provider dir %q contains a comma, which separates dirs in --additional-provider-volume-paths: rename the directory" $key $dir) -}}
{{- end -}}
{{- end -}}
{{- include "ssa.validateExtraArgs" (dict "args" (.node.extraArgs | default list) "key" $key) -}}
{{- end -}}
