# The agent's image: exactly the file scripts/build makes, and nothing else to run.
#
#   scripts/build && docker build -t secrets-store-agent:0.1.0 .
#
# The file is static (its own loader, libc, OpenSSL and Python inside), so the base only has to
# supply what the file reads from the system: CA certificates for TLS to secret stores, time
# zones, /etc/passwd, and a /tmp to unpack into. distroless/static is that and no more: no
# shell, no package manager, no compiler, no libc. Not built on the project's machines (no
# docker build there); tests/unit/test_dockerfile.py checks these invariants instead.
# Releases pin the base by digest (FROM ...@sha256:...); no digest could be looked up here.
FROM gcr.io/distroless/static-debian12:latest

LABEL org.opencontainers.image.title="secrets-store-agent" \
      org.opencontainers.image.description="Secrets Store CSI node agent (drop-in for secrets-store.csi.k8s.io)" \
      org.opencontainers.image.licenses="Apache-2.0"

COPY --chmod=0555 dist/secrets-store-agent /secrets-store-agent

# The bundled OpenSSL looks for Debian's /usr/lib/ssl, which the base does not have.
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
# The file unpacks itself here on every start (40-90 MiB; removed on exit): the chart mounts
# an emptyDir so the root filesystem can stay read-only.
ENV TMPDIR=/tmp

# Root: mount(2) and umount2(2) of the volumes' tmpfs need CAP_SYS_ADMIN in the node's user
# namespace, and kubelet's directories belong to root. The e2e test publishes with
# CAP_SYS_ADMIN alone; CAP_CHOWN is needed only for files given a non-root owner. Kubernetes
# still requires a privileged container for the Bidirectional mount propagation that makes
# the mounts visible to pods.
USER 0:0

# Metrics (--metrics-addr) and /healthz, /readyz (--health-addr), the agent's defaults.
EXPOSE 8095 9808

ENTRYPOINT ["/secrets-store-agent"]
CMD ["serve"]
