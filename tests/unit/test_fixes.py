"""The fix named for each known failure, and none for the rest."""

from __future__ import annotations

import pytest

from agent.fixes import fix_fields, fix_for


@pytest.mark.parametrize(
    ("reason", "message", "expected"),
    [
        (
            "GRPCProviderError",
            "no token ...; the CSIDriver spec.tokenRequests must list audience 'vault', or ...",
            "add {audience: vault} to tokenRequests",
        ),
        (
            "GRPCProviderError",
            "(tokens present for: x) - ensure the CSIDriver spec.tokenRequests includes "
            "audience 'sts.amazonaws.com'",
            "add {audience: sts.amazonaws.com} to tokenRequests",
        ),
        ("GRPCProviderError", "grpc: received message larger than max (5 vs. 4)", "raise maxCall"),
        (
            "FailedToCreateSecret",
            "x: the agent is not allowed to manage Secrets; ...",
            "syncSecret",
        ),
        ("GRPCProviderError", 'serviceaccounts "web" is forbidden: ...', "providers.aws/azure/gcp"),
        ("ProviderNotFound", "provider not found: provider 'x'", "install the provider's plugin"),
        ("GRPCProviderError", "provider 'x' is not reachable at /p/x.sock: gone", "not serving"),
        ("SecretProviderClassNotFound", "failed to get secretproviderclass a/b", "create the"),
        ("GRPCProviderError", "did not answer within 90s (--provider-timeout)", "providerTimeout"),
        ("FailedToMount", "missing csi.storage.k8s.io/pod.name", "podInfoOnMount: true"),
        ("FailedToMount", "Readonly is not true in request", "readOnly: true"),
    ],
)
def test_known_failures_name_their_fix(reason: str, message: str, expected: str) -> None:
    fix = fix_for(reason, message)
    assert fix is not None and expected in fix


def test_unknown_failures_add_no_fix_key() -> None:
    assert fix_for("GRPCProviderError", "permission denied by the store") is None
    assert fix_fields("FileWriteError", "disk full") == {}
    assert fix_fields("ProviderNotFound", "x")["fix"].startswith("install")
