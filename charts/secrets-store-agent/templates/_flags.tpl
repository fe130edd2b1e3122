{{/*
Every flag of the agent and where the chart takes it from (tests/chart keep this table equal to
the agent's own parser). "value KEY": rendered from KEY, which other objects follow too
(hostPaths, ports, the CSIDriver, RBAC): extraArgs may not set it, or the last one would win
and they would disagree.
"tunable KEY": rendered from KEY when set; extraArgs may override it for one OS.
"extraArgs": only extraArgs sets it. "fixed": the chart's own setting.
*/}}
{{- define "ssa.agentFlags" -}}
endpoint: fixed (the socket kubelet and the registrar share)
nodeid: fixed (the node's name, from the downward API)
drivername: fixed (secrets-store.csi.k8s.io, which pods reference)
provider-volume: "value {os}.providersDir"
additional-provider-volume-paths: "value {os}.additionalProvidersDirs"
metrics-addr: "value {os}.metricsAddr"
health-addr: value livenessProbe.port
enable-secret-rotation: value enableSecretRotation
rotation-poll-interval: tunable rotationPollInterval
rotation-min-poll-interval: tunable rotationMinPollInterval
rotation-concurrency: tunable rotationConcurrency
max-call-recv-msg-size: tunable maxCallRecvMsgSize
log-format-json: tunable logFormatJSON
provider-health-check: tunable providerHealthCheck
provider-health-check-interval: tunable providerHealthCheckInterval
version: fixed (not a serving flag)
v: tunable logVerbosity
debug-loggers: extraArgs
enable-pprof: extraArgs
pprof-port: extraArgs
metrics-backend: extraArgs
kubeconfig: fixed (in a pod the agent uses the in-cluster configuration)
kube-api-qps: tunable kubernetes.apiQPS
kube-api-burst: tunable kubernetes.apiBurst
agent-namespace: fixed (the release namespace, from the downward API)
hmac-secret-name: value providers.vault.hmacSecretName
token-request-fallback: value tokenRequestFallback
pod-cleanup-grace-period: tunable kubernetes.podCleanupGracePeriod
cache-sync-timeout: tunable kubernetes.cacheSyncTimeout
secret-resync-interval: tunable syncSecret.resyncInterval
standalone-dir: fixed (the chart runs the agent in Kubernetes mode)
mount-mode: fixed (tmpfs on Linux, directory on Windows)
event-loop: fixed (uvloop on Linux, asyncio on Windows)
tmpfs-size: value linux.tmpfsSize
provider-timeout: tunable providerTimeout
shutdown-grace: extraArgs
max-payload-size: extraArgs
vault-address: tunable providers.vault.address
azure-cloud-name: tunable providers.azure.cloudName
azure-construct-pem-chain: tunable providers.azure.constructPemChain
azure-write-cert-and-key-in-separate-files: tunable providers.azure.writeCertAndKeyInSeparateFiles
trusted-file-dirs: extraArgs
state-dir: "value {os}.stateDir"
kubelet-root-dir: "value {os}.kubeletRootDir"
prefer-plugin-providers: tunable preferPluginProviders
builtin-providers: "value providers.<name>.enabled"
aws-pod-identity-endpoint: tunable providers.aws.podIdentityEndpoint
logtostderr: extraArgs
alsologtostderr: extraArgs
add_dir_header: extraArgs
skip_headers: extraArgs
skip_log_headers: extraArgs
one_output: extraArgs
legacy_stderr_threshold_behavior: extraArgs
vmodule: extraArgs
log_dir: extraArgs
log_file: extraArgs
log_backtrace_at: extraArgs
log_file_max_size: extraArgs
stderrthreshold: extraArgs
{{- end -}}

{{/*
extraArgs of one OS: each an agent flag that is not fixed or tied to other objects, with no
credentials in it (a pod's args are readable by anyone who may get pods). Context: (dict "args" list "key" "linux").
*/}}
{{- define "ssa.validateExtraArgs" -}}
{{- $flags := include "ssa.agentFlags" . | fromYaml -}}
{{- $key := .key -}}
{{- range $i, $arg := .args -}}
{{- $name := regexReplaceAll "=.*$" (toString $arg) "" | trimPrefix "-" | trimPrefix "-" -}}
{{- /* Names the flag, never its value: a mistaken extraArgs entry may hold a secret. */}}
{{- $where := printf "%s.extraArgs[%d] (-%s)" $key $i (ternary "v" (printf "-%s" $name) (eq $name "v")) -}}
{{- $setBy := get $flags $name -}}
{{- if not $setBy -}}
{{- fail (printf "%s is not a flag of the agent (`secrets-store-agent serve --help` lists them; docs/helm.md says which belong in extraArgs)" $where) -}}
{{- else if hasPrefix "fixed" $setBy -}}
{{- fail (printf "%s: the chart sets this flag itself (%s): remove it from extraArgs" $where (trimPrefix "fixed (" $setBy | trimSuffix ")")) -}}
{{- else if hasPrefix "value " $setBy -}}
{{- fail (printf "%s: the chart renders this flag from the value %s, which the DaemonSet's paths, ports, CSIDriver or RBAC follow too: set that value instead and remove the flag from extraArgs" $where (replace "{os}" $key (trimPrefix "value " $setBy))) -}}
{{- end -}}
{{- include "ssa.noCredentials" (dict "where" $where "text" $arg) -}}
{{- end -}}
{{- end -}}

{{/*
A URL with user:password@ would put a credential in the pod spec. The message names the value,
never shows it. Context: (dict "where" "providers.vault.address" "text" value).
*/}}
{{- define "ssa.noCredentials" -}}
{{- if regexMatch "[a-zA-Z][a-zA-Z0-9+.-]*://[^/@]*@" (toString .text) -}}
{{- fail (printf "%s carries credentials in a URL (user:password@): the DaemonSet's args and values are readable by anyone who may get pods or Helm releases. Remove them; the agent authenticates as each pod (tokenRequests), never with a credential of its own" .where) -}}
{{- end -}}
{{- end -}}
