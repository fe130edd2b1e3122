"""The fix for a known failure, in the terms a cluster administrator acts on (chart values,
the pod's volume, the SecretProviderClass), for the ``fix`` key of failure log lines.

Failures arrive as (reason, message): the reason is upstream's ``error_type``, the message the
agent's own vetted text. A rule matches the reason, a pattern in the message, or both; the
first match wins. The rules cover upstream's most common failures (reference
``upstream-driver.md`` §16) as docs/troubleshooting.md shows them; each one is asserted by
``tests/integration/k8s/test_troubleshooting.py`` against the line the agent really prints.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class _Rule:
    fix: str  # may use the pattern's named groups: {audience}
    reasons: frozenset[str] = frozenset()  # empty: any reason
    pattern: re.Pattern[str] | None = None  # None: any message


def _rule(fix: str, *reasons: str, pattern: str | None = None) -> _Rule:
    return _Rule(fix, frozenset(reasons), re.compile(pattern) if pattern else None)


_RULES = (
    _rule(
        "add {{audience: {audience}}} to tokenRequests in the chart values (the CSIDriver's "
        "spec.tokenRequests; kubelet then hands the pod's token for it), or set "
        "tokenRequestFallback=true",
        pattern=r"tokenRequests (?:must list|includes) audience '(?P<audience>[^']*)'",
    ),
    _rule(
        "raise maxCallRecvMsgSize in the chart values (--max-call-recv-msg-size) above the "
        "reply's size, or split the objects across SecretProviderClasses",
        pattern=r"received message larger than max",
    ),
    _rule(
        "set syncSecret.enabled=true in the chart values: it grants the agent's service "
        "account the Secret access syncing secretObjects needs",
        pattern=r"not allowed to manage Secrets",
    ),
    _rule(
        "enable the provider that reads service accounts in the chart values "
        "(providers.aws/azure/gcp.enabled=true grants serviceaccounts get)",
        pattern=r"serviceaccounts \S+ is forbidden|may not read service accounts",
    ),
    _rule(
        "the provider's plugin is not serving on this node (its DaemonSet pod restarting, "
        "crashing or not scheduled here): check that pod on this node; the agent retries with "
        "backoff and keeps the mounted content meanwhile",
        pattern=r"is not reachable at \S+\.sock",
    ),
    _rule(
        "install the provider's plugin DaemonSet so <provider>.sock appears in a providers "
        "directory (linux.providersDir, linux.additionalProvidersDirs), or set spec.provider to "
        "a built-in provider turned on in the chart values (providers.<name>.enabled)",
        "ProviderNotFound",
    ),
    _rule(
        "create the SecretProviderClass in the pod's namespace, or correct the volume's "
        "volumeAttributes.secretProviderClass (a class is read from the pod's namespace only)",
        "SecretProviderClassNotFound",
    ),
    _rule(
        "check that the agent reaches the store (NetworkPolicy, proxy, DNS, the store's "
        "health); for a slow store raise providerTimeout in the chart values (below kubelet's "
        "2m); kubelet retries the mount",
        pattern=r"--provider-timeout",
    ),
    _rule(
        "the CSIDriver secrets-store.csi.k8s.io must have podInfoOnMount: true; the chart sets "
        "it, a CSIDriver left by another install may not: delete it and reinstall the chart",
        # Only for keys that are missing: a key sent with a wrong value is the sender's error.
        pattern=r"missing\b.*csi\.storage\.k8s\.io/pod\.(?:name|namespace|uid)",
    ),
    _rule(
        "set readOnly: true on the pod's csi volume (secrets-store volumes are read-only)",
        pattern=r"(?i)\breadonly\b",
    ),
)


def fix_for(reason: str, message: str) -> str | None:
    """The administrator's fix for a failure, or None when none is known."""
    for rule in _RULES:
        if rule.reasons and reason not in rule.reasons:
            continue
        found = rule.pattern.search(message) if rule.pattern else None
        if rule.pattern is not None and found is None:
            continue
        return rule.fix.format(**found.groupdict()) if found else rule.fix
    return None


def fix_fields(reason: str, message: str) -> dict[str, str]:
    """``{"fix": ...}`` for a log line's keyword arguments, or nothing when no fix is known."""
    fix = fix_for(reason, message)
    return {"fix": fix} if fix else {}
