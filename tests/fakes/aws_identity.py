"""A fake AWS STS (AssumeRoleWithWebIdentity) and EKS Pod Identity Agent, over real HTTP.

moto accepts any web identity token and any role, so it cannot show a denial. These fakes check
what the real services check: the token's signature (the tests' JwtSigner key, standing in for
the cluster's OIDC issuer), its audience, and that the role trusts (IRSA) or an association
exists for (Pod Identity) the token's ``system:serviceaccount:<ns>:<sa>`` subject. Replies have
the real shapes: STS query-protocol XML, and the agent's container-credentials JSON.
"""

from __future__ import annotations

import datetime
import itertools
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web

from tests.support.jwt_signer import JwtSigner

STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"


@dataclass
class Issued:
    """Credentials handed out, and to whom."""

    access_key: str
    subject: str
    role_arn: str = ""


@dataclass
class FakeAwsIdentity:
    signer: JwtSigner
    trust: dict[str, str] = field(default_factory=dict)  # role ARN -> trusted subject
    associations: set[str] = field(default_factory=set)  # subjects with a Pod Identity association
    lifetime: datetime.timedelta = datetime.timedelta(hours=1)
    unavailable: bool = False  # answer every call with a server error
    # Answer every call with (status, content type, body) instead: what a proxy, a captive
    # portal or a broken service in the way sends.
    answer: tuple[int, str, str] | None = None
    issued: list[Issued] = field(default_factory=list)
    address: str = ""
    _runner: web.AppRunner | None = None
    _serial: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def pod_identity_url(self) -> str:
        return f"{self.address}/v1/credentials"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/", self._sts)
        app.router.add_get("/v1/credentials", self._pod_identity)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.address = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _subject(self, token: str, audience: str) -> str:
        claims: dict[str, Any] = jwt.decode(
            token,
            self.signer.key.public_key(),
            algorithms=["RS256"],
            audience=audience,
            issuer=self.signer.issuer,
        )
        return str(claims["sub"])

    def _credentials(self, subject: str, role_arn: str = "") -> tuple[str, str, str, str]:
        number = next(self._serial)
        access_key = f"ASIAFAKE{number:012d}"
        self.issued.append(Issued(access_key, subject, role_arn))
        expires = datetime.datetime.now(datetime.UTC) + self.lifetime
        return (
            access_key,
            f"secret-{number}",
            f"session-{number}",
            expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )

    async def _sts(self, request: web.Request) -> web.Response:
        form = await request.post()
        if self.answer is not None:
            return _raw(self.answer)
        if form.get("Action") != "AssumeRoleWithWebIdentity":
            return _sts_error(400, "Sender", "InvalidAction", "unsupported action")
        if self.unavailable:
            return _sts_error(503, "Receiver", "ServiceUnavailable", "Service unavailable")
        role_arn = str(form.get("RoleArn", ""))
        try:
            subject = self._subject(str(form.get("WebIdentityToken", "")), "sts.amazonaws.com")
        except jwt.InvalidTokenError:
            return _sts_error(
                400, "Sender", "InvalidIdentityToken", "Incorrect token audience or signature"
            )
        if self.trust.get(role_arn) != subject:
            return _sts_error(
                403,
                "Sender",
                "AccessDenied",
                "Not authorized to perform sts:AssumeRoleWithWebIdentity",
            )
        key, secret, token, expires = self._credentials(subject, role_arn)
        body = (
            f'<AssumeRoleWithWebIdentityResponse xmlns="{STS_NS}">'
            "<AssumeRoleWithWebIdentityResult>"
            f"<SubjectFromWebIdentityToken>{subject}</SubjectFromWebIdentityToken>"
            "<Credentials>"
            f"<AccessKeyId>{key}</AccessKeyId><SecretAccessKey>{secret}</SecretAccessKey>"
            f"<SessionToken>{token}</SessionToken><Expiration>{expires}</Expiration>"
            "</Credentials>"
            f"<AssumedRoleUser><Arn>{role_arn}/session</Arn><AssumedRoleId>AROA:s</AssumedRoleId>"
            "</AssumedRoleUser>"
            "</AssumeRoleWithWebIdentityResult>"
            "<ResponseMetadata><RequestId>fake</RequestId></ResponseMetadata>"
            "</AssumeRoleWithWebIdentityResponse>"
        )
        return web.Response(text=body, content_type="text/xml")

    async def _pod_identity(self, request: web.Request) -> web.Response:
        if self.answer is not None:
            return _raw(self.answer)
        if self.unavailable:
            return web.json_response({"code": "ServiceUnavailable", "message": "busy"}, status=503)
        token = request.headers.get("Authorization", "")
        if not token:
            return web.json_response(
                {"code": "InvalidToken", "message": "Service account token cannot be empty"},
                status=400,
            )
        try:
            subject = self._subject(token, "pods.eks.amazonaws.com")
        except jwt.InvalidTokenError:
            return web.json_response(
                {"code": "InvalidToken", "message": "Service account token is invalid"}, status=400
            )
        if subject not in self.associations:
            return web.json_response(
                {"code": "AccessDeniedException", "message": "no pod identity association"},
                status=403,
            )
        key, secret, session, expires = self._credentials(subject)
        return web.json_response(
            {
                "AccessKeyId": key,
                "SecretAccessKey": secret,
                "Token": session,
                "AccountId": "123456789012",
                "Expiration": expires,
            }
        )


def _sts_error(status: int, kind: str, code: str, message: str) -> web.Response:
    body = (
        f'<ErrorResponse xmlns="{STS_NS}"><Error><Type>{kind}</Type><Code>{code}</Code>'
        f"<Message>{message}</Message></Error><RequestId>fake</RequestId></ErrorResponse>"
    )
    return web.Response(status=status, text=body, content_type="text/xml")


def _raw(answer: tuple[int, str, str]) -> web.Response:
    status, content_type, body = answer
    return web.Response(status=status, text=body, content_type=content_type)
