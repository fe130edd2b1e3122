"""Secrets Store CSI node agent: mounts secrets from external stores into pods."""

from importlib.metadata import PackageNotFoundError, version

DRIVER_NAME = "secrets-store.csi.k8s.io"

try:
    __version__ = version("secrets-store-agent")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
