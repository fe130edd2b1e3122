"""State of the fake Google Cloud: projects, secrets with versions, parameters, IAM grants and
issued access tokens, with the resolution rules of the real services.

Resolution follows Secret Manager's documentation: ``latest`` is the most recently created
version (a disabled or destroyed one fails with FAILED_PRECONDITION, it is not skipped), an
alias names a version number, and the resolved name uses the project *number*.
"""

from __future__ import annotations

import base64
import secrets as random_tokens
from dataclasses import dataclass, field

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"


class ApiError(Exception):
    """Answered as Google's ``{"error": {"code", "message", "status"}}``."""

    def __init__(self, code: int, status: str, message: str) -> None:
        super().__init__(message)
        self.code, self.status, self.message = code, status, message


@dataclass
class Version:
    number: int
    data: bytes
    state: str = "ENABLED"  # DISABLED, DESTROYED


@dataclass
class Secret:
    versions: list[Version] = field(default_factory=list)
    aliases: dict[str, int] = field(default_factory=dict)
    readers: set[str] = field(default_factory=set)  # principals with secretAccessor


@dataclass
class Parameter:
    versions: dict[str, bytes] = field(default_factory=dict)
    readers: set[str] = field(default_factory=set)


@dataclass
class IssuedToken:
    principal: str
    expires_at: float


@dataclass
class CloudState:
    project_numbers: dict[str, str] = field(default_factory=dict)  # project ID -> number
    # (project number, location or "", secret ID)
    secrets: dict[tuple[str, str, str], Secret] = field(default_factory=dict)
    parameters: dict[tuple[str, str, str], Parameter] = field(default_factory=dict)
    tokens: dict[str, IssuedToken] = field(default_factory=dict)
    # project number -> principals with secretAccessor on the whole project
    project_readers: dict[str, set[str]] = field(default_factory=dict)
    # Google service account email -> principals allowed to mint its tokens.
    token_creators: dict[str, set[str]] = field(default_factory=dict)

    def project_number(self, project: str) -> str:
        if project.isdigit() and project in self.project_numbers.values():
            return project
        if project not in self.project_numbers:
            raise ApiError(403, "PERMISSION_DENIED", f"Project '{project}' not found or denied.")
        return self.project_numbers[project]

    def add_secret_version(
        self, project: str, secret: str, data: bytes, *, location: str = "", state: str = ""
    ) -> int:
        number = self.project_numbers.setdefault(project, str(100000 + len(self.project_numbers)))
        entry = self.secrets.setdefault((number, location, secret), Secret())
        version = Version(len(entry.versions) + 1, data, state or "ENABLED")
        entry.versions.append(version)
        return version.number

    def issue(self, principal: str, lifetime: float, now: float) -> str:
        token = "ya29.fake-" + random_tokens.token_urlsafe(24)
        self.tokens[token] = IssuedToken(principal, now + lifetime)
        return token

    def caller(self, authorization: str, now: float) -> str:
        scheme, _, token = authorization.partition(" ")
        issued = self.tokens.get(token) if scheme.lower() == "bearer" else None
        if issued is None or issued.expires_at <= now:
            raise ApiError(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                "login cookie or other valid authentication credential.",
            )
        return issued.principal

    def access(
        self, principal: str, project: str, location: str, secret_id: str, version: str
    ) -> tuple[str, bytes]:
        """(resolved version name, payload) or ApiError as Secret Manager answers."""
        number = self.project_number(project)
        prefix = f"projects/{number}" + (f"/locations/{location}" if location else "")
        asked = f"{prefix}/secrets/{secret_id}/versions/{version}"
        secret = self.secrets.get((number, location, secret_id))
        granted = principal in self.project_readers.get(number, set()) or (
            secret is not None and principal in secret.readers
        )
        if not granted:
            raise ApiError(
                403,
                "PERMISSION_DENIED",
                f"Permission 'secretmanager.versions.access' denied for resource "
                f"'{asked}' (or it may not exist).",
            )
        if secret is None or not secret.versions:
            raise ApiError(
                404,
                "NOT_FOUND",
                f"Secret [{prefix}/secrets/{secret_id}] not found or has no versions.",
            )
        chosen = _resolve(secret, version, asked)
        resolved = f"{prefix}/secrets/{secret_id}/versions/{chosen.number}"
        if chosen.state != "ENABLED":
            raise ApiError(
                400,
                "FAILED_PRECONDITION",
                f"Secret Version [{resolved}] is in {chosen.state} state.",
            )
        return resolved, chosen.data

    def render(
        self, principal: str, project: str, location: str, parameter: str, version: str
    ) -> tuple[str, bytes]:
        number = self.project_number(project)
        name = f"projects/{number}/locations/{location or 'global'}/parameters/{parameter}"
        entry = self.parameters.get((number, location, parameter))
        if entry is None or principal not in entry.readers:
            raise ApiError(
                403,
                "PERMISSION_DENIED",
                f"Permission 'parametermanager.parameterVersions.render' denied on '{name}'.",
            )
        if version not in entry.versions:
            raise ApiError(
                404, "NOT_FOUND", f"Parameter version [{name}/versions/{version}] not found."
            )
        return f"{name}/versions/{version}", entry.versions[version]


def _resolve(secret: Secret, version: str, asked: str) -> Version:
    if version == "latest":
        return secret.versions[-1]
    number = secret.aliases.get(version) if not version.isdigit() else int(version)
    if number is None or not 1 <= number <= len(secret.versions):
        raise ApiError(404, "NOT_FOUND", f"Secret Version [{asked}] not found.")
    return secret.versions[number - 1]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
