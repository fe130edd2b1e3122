"""A required SecretProviderClass parameter, the message when it is missing, and the
warnings about a class's parameters in the log.

Upstream providers ignore parameters they do not know, and so does the agent (the volume
context adds ``csi.storage.k8s.io/*`` keys, and classes carry other providers' keys). The price
is that a misspelled ``objetcs`` reads as "no objects": the class owner then hunts for a
mistake the agent could have pointed at. So when a required parameter is missing, the message
names the present keys that look like it (``difflib``'s ratio, the standard library's
near-miss test).
"""

from __future__ import annotations

import difflib
from collections import OrderedDict
from collections.abc import Iterable, Mapping

import structlog

from agent.errors import InvalidSecretProviderClass
from agent.model import ProviderRequest

log = structlog.get_logger(__name__)
SPC_ATTRIBUTE = "secretProviderClass"  # the volume context's class name, in every request

# Keys kubelet and the driver add to the volume context; never a user's spelling mistake.
_CONTEXT_PREFIXES = ("csi.storage.k8s.io/", SPC_ATTRIBUTE)
_CUTOFF = 0.75  # "objetcs", "object", "Objects" match "objects"; "roleName" does not


def lookalikes(attributes: Mapping[str, str], name: str) -> list[str]:
    """Present keys that are probably ``name`` misspelled, closest first (case ignored)."""
    keys = [key for key in attributes if key != name and not key.startswith(_CONTEXT_PREFIXES)]
    by_folded = {key.casefold(): key for key in keys}
    close = difflib.get_close_matches(name.casefold(), list(by_folded), n=3, cutoff=_CUTOFF)
    return [by_folded[key] for key in close]


def require_parameter(attributes: Mapping[str, str], name: str, shape: str) -> str:
    """``attributes[name]``; if absent, InvalidSecretProviderClass ``"<name>: is required
    (<shape>)"`` plus the lookalike keys present, e.g. ``spec.parameters has 'objetcs'``."""
    value = attributes.get(name)
    if value is not None:
        return value
    message = f"{name}: is required ({shape})"
    near = lookalikes(attributes, name)
    if near:
        found = ", ".join(repr(key) for key in near)
        message += f"; spec.parameters has {found}: misspelled?"
    raise InvalidSecretProviderClass(message)


class ConfigWarnings:
    """Logs a provider's warnings about a class (unknown fields ignored, a doubtful value), once
    per class and warning, naming the class and the pod that used it first.

    Every publish and every rotation parses the class again; without the once, a class with a
    typo would log the same line every rotation poll for every pod using it. The memory of what
    was said is bounded (least recently said dropped first), so a node cycling through many
    classes may repeat a line, never grow without bound.
    """

    def __init__(self, event: str, limit: int = 1024) -> None:
        self._event = event
        self._limit = limit
        self._said: OrderedDict[tuple[str, str, str, str], None] = OrderedDict()

    def log(self, provider: str, request: ProviderRequest, warnings: Iterable[str]) -> None:
        """``warnings``: the parser's messages (field names, never values)."""
        pod = request.identity
        spc = request.attributes.get(SPC_ATTRIBUTE, "")
        for warning in warnings:
            key = (provider, pod.namespace, spc, warning)
            if key in self._said:
                self._said.move_to_end(key)
                continue
            self._said[key] = None
            if len(self._said) > self._limit:
                self._said.popitem(last=False)
            log.warning(
                self._event,
                provider=provider,
                namespace=pod.namespace,
                spc=spc,
                pod=pod.name,
                warning=warning,
            )
