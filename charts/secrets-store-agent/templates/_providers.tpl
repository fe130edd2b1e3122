{{/*
The built-in providers (providers.<name>.enabled) and what follows from them: the agent's
flags, the RBAC only they need, and the checks on their tokens.
*/}}

{{/* Comma-separated --builtin-providers; openbao is Vault's other name. */}}
{{- define "ssa.builtinProviders" -}}
{{- $names := list -}}
{{- if .Values.providers.vault.enabled }}{{ $names = concat $names (list "vault" "openbao") }}{{ end -}}
{{- range $name := list "aws" "azure" "gcp" -}}
{{- if (index $.Values.providers $name).enabled }}{{ $names = append $names $name }}{{ end -}}
{{- end -}}
{{- join "," $names -}}
{{- end -}}

{{/* "true" when a provider reads pods' service accounts (identity annotations). */}}
{{- define "ssa.readsServiceAccounts" -}}
{{- if or .Values.providers.aws.enabled .Values.providers.azure.enabled .Values.providers.gcp.enabled }}true{{ end -}}
{{- end -}}

{{- define "ssa.providerArgs" -}}
{{- $p := .Values.providers }}
- {{ printf "--builtin-providers=%s" (include "ssa.builtinProviders" .) | quote }}
{{- if $p.vault.enabled }}
- {{ printf "--hmac-secret-name=%s" $p.vault.hmacSecretName | quote }}
{{- with $p.vault.address }}
- {{ printf "--vault-address=%s" . | quote }}
{{- end }}
{{- else }}
- --hmac-secret-name=
{{- end }}
{{- if $p.aws.enabled }}
{{- with $p.aws.podIdentityEndpoint }}
- {{ printf "--aws-pod-identity-endpoint=%s" . | quote }}
{{- end }}
{{- end }}
{{- if $p.azure.enabled }}
- {{ printf "--azure-cloud-name=%s" $p.azure.cloudName | quote }}
- {{ printf "--azure-construct-pem-chain=%t" $p.azure.constructPemChain | quote }}
- {{ printf "--azure-write-cert-and-key-in-separate-files=%t" $p.azure.writeCertAndKeyInSeparateFiles | quote }}
{{- end }}
{{- with .Values.providerTimeout }}
- {{ printf "--provider-timeout=%s" (include "ssa.duration" .) | quote }}
{{- end }}
{{- if .Values.tokenRequestFallback }}
- --token-request-fallback=true
{{- end }}
{{- end -}}

{{- define "ssa.kubernetesArgs" -}}
{{- $k := .Values.kubernetes }}
{{- if not (kindIs "invalid" $k.apiQPS) }}
- {{ printf "--kube-api-qps=%v" $k.apiQPS | quote }}
{{- end }}
{{- if not (kindIs "invalid" $k.apiBurst) }}
- {{ printf "--kube-api-burst=%d" (int $k.apiBurst) | quote }}
{{- end }}
{{- with $k.podCleanupGracePeriod }}
- {{ printf "--pod-cleanup-grace-period=%s" (include "ssa.duration" .) | quote }}
{{- end }}
{{- with $k.cacheSyncTimeout }}
- {{ printf "--cache-sync-timeout=%s" (include "ssa.duration" .) | quote }}
{{- end }}
{{- with .Values.syncSecret.resyncInterval }}
- {{ printf "--secret-resync-interval=%s" (include "ssa.duration" .) | quote }}
{{- end }}
{{- end -}}

{{/*
Token checks: a provider that logs in with the pod's token gets one only for an audience in
tokenRequests (or from the API with tokenRequestFallback). Without rotation an empty
tokenRequests renders (upstream's default values must), and NOTES says what is missing.
*/}}
{{- define "ssa.validateProviders" -}}
{{- $p := .Values.providers -}}
{{- include "ssa.noCredentials" (dict "where" "providers.vault.address" "text" $p.vault.address) -}}
{{- include "ssa.noCredentials" (dict "where" "providers.aws.podIdentityEndpoint" "text" $p.aws.podIdentityEndpoint) -}}
{{- $seen := list -}}
{{- range $i, $request := .Values.tokenRequests -}}
{{- if has $request.audience $seen -}}
{{- fail (printf "tokenRequests[%d].audience %q is listed twice (the API refuses a CSIDriver with a repeated audience): keep one entry per audience" $i $request.audience) -}}
{{- end -}}
{{- $seen = append $seen $request.audience -}}
{{- end -}}
{{- $audiences := list -}}
{{- range .Values.tokenRequests }}{{ $audiences = append $audiences .audience }}{{ end -}}
{{- if and $p.vault.enabled $p.vault.audience (not .Values.tokenRequestFallback) -}}
{{- if and .Values.enableSecretRotation (not $audiences) -}}
{{- fail (printf "enableSecretRotation=true, but tokenRequests is empty: Vault logs in with the pod's service-account token for audience %q and kubelet would hand the agent none, at mount or at rotation. Add {audience: %s} to tokenRequests, set tokenRequestFallback=true (the agent asks the API for the token), or set providers.vault.enabled=false if no SecretProviderClass uses Vault" $p.vault.audience $p.vault.audience) -}}
{{- end -}}
{{- if and $audiences (not (has $p.vault.audience $audiences)) -}}
{{- fail (printf "providers.vault.audience %q is not in tokenRequests (%s): Vault would get no token for it. Add {audience: %s} to tokenRequests, set providers.vault.audience to the audience your SecretProviderClasses use, set tokenRequestFallback=true, or set providers.vault.enabled=false if no SecretProviderClass uses Vault" $p.vault.audience (join ", " $audiences) $p.vault.audience) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.tokenRequestFallback (not .Values.rbac.install) -}}
{{- fail "tokenRequestFallback needs the agent to create service-account tokens, but rbac.install=false installs no role for it: set rbac.install=true, or keep tokenRequestFallback=false and list every audience in tokenRequests" -}}
{{- end -}}
{{- end -}}
