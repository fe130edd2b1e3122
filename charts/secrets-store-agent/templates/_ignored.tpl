{{/*
Upstream values this chart accepts, so that an upstream values file installs unchanged, but that
have no effect here: one "- key: why" line for each such value the release sets, or nothing.
NOTES.txt prints them after install; docs/migration.md's values table lists the same keys.
*/}}
{{- define "ssa.ignoredUpstreamValues" -}}
{{- if hasKey .Values "filteredWatchSecret" }}
- filteredWatchSecret: it set upstream's --filtered-watch-secret (a no-op since driver v0.3.0,
  gone from the chart in v1.0.1). The agent never watches Secrets cluster-wide: kubelet hands it
  each volume's nodePublishSecretRef Secret with the mount, and with syncSecret.enabled it lists
  only Secrets labelled secrets-store.csi.k8s.io/managed=true.
{{- end }}
{{- if .Values.rbac.pspEnabled }}
- rbac.pspEnabled: PodSecurityPolicy was removed in Kubernetes 1.25, so no policy is created;
  the namespace's Pod Security admission level must allow privileged pods.
{{- end }}
{{- if not (dig "crds" "enabled" true .Values.linux) }}
- linux.crds.enabled: the CRDs are in the chart's crds/ directory, which Helm installs before
  anything else; to leave them out, run helm install with --skip-crds.
{{- end }}
{{- end -}}
