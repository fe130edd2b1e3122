"""Logging: one JSON line per event, and nothing secret ever reaches the output."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime

import pytest
import structlog

from agent import log_redaction, logs
from agent.flags import parse_settings
from agent.lifecycle import effective_configuration
from agent.log_redaction import (
    REDACTED,
    forget_sensitive,
    register_sensitive,
)
from agent.logs import configure_logging

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2lnbmF0dXJl"
VAULT = "hvs.CAESIJ3kzWkq2cYq0pQk8QvXrQ5r"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    level = root.level
    out = io.StringIO()
    yield out
    structlog.reset_defaults()
    for handler in [h for h in root.handlers if isinstance(h, logs._Handler)]:
        root.removeHandler(handler)
    root.setLevel(level)
    for name in ("hpack", "h2"):
        logging.getLogger(name).setLevel(logging.NOTSET)
    log_redaction.clear_sensitive()


def records(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def emit(out: io.StringIO, event: str = "test.event", **kw: object) -> dict[str, object]:
    configure_logging(json=True, verbosity=0, stream=out)
    structlog.get_logger("test").info(event, **kw)
    return records(out)[-1]


def test_json_lines_have_ts_level_event(stream: io.StringIO) -> None:
    configure_logging(json=True, verbosity=0, stream=stream)
    log = structlog.get_logger()
    log.info("node_publish.completed", pod="web-0", duration_ms=3)
    log.warning("node_publish.failed", reason="FailedToMount")

    first, second = records(stream)
    assert first["event"] == "node_publish.completed"
    assert first["level"] == "info"
    assert (first["pod"], first["duration_ms"]) == ("web-0", 3)
    assert str(first["ts"]).endswith("Z")
    datetime.fromisoformat(str(first["ts"]).replace("Z", "+00:00"))
    assert second["level"] == "warning"


def test_verbosity_controls_debug(stream: io.StringIO) -> None:
    configure_logging(json=True, verbosity=0, stream=stream)
    structlog.get_logger().debug("hidden")
    configure_logging(json=True, verbosity=1, stream=stream)
    structlog.get_logger().debug("shown")

    assert [r["event"] for r in records(stream)] == ["shown"]


def test_no_verbosity_opens_third_party_debug_logs(stream: io.StringIO) -> None:
    configure_logging(json=True, verbosity=10, stream=stream)
    logging.getLogger("hpack.hpack").debug("Decoding b'...'")
    logging.getLogger("grpclib.protocol").info("connection made")  # INFO still passes
    structlog.get_logger().debug("ours")

    assert [r["event"] for r in records(stream)] == ["connection made", "ours"]


def test_debug_loggers_open_named_libraries_only_until_reconfigured(
    stream: io.StringIO,
) -> None:
    configure_logging(json=True, verbosity=0, stream=stream, debug_loggers=("hpack", "h2"))
    logging.getLogger("hpack.hpack").debug("hpack line")
    logging.getLogger("h2.connection").debug("h2 line")
    logging.getLogger("aiohttp.client").debug("aiohttp line")
    configure_logging(json=True, verbosity=0, stream=stream)
    logging.getLogger("hpack.hpack").debug("after")

    assert [r["event"] for r in records(stream)] == ["hpack line", "h2 line"]
    assert records(stream)[0]["logger"] == "hpack.hpack"
    assert logging.getLogger("hpack").level == logging.NOTSET


def test_debug_logger_lines_are_redacted(stream: io.StringIO) -> None:
    configure_logging(json=True, verbosity=0, stream=stream, debug_loggers=("hpack",))
    logging.getLogger("hpack.hpack").debug("Decoded (b'authorization', b'Bearer %s')", JWT)

    assert JWT not in stream.getvalue()
    assert REDACTED in stream.getvalue()


def test_parse_debug_loggers() -> None:
    assert logs.parse_debug_loggers(" hpack, h2,,hpack ") == ("hpack", "h2")
    assert logs.parse_debug_loggers("") == ()


def test_module_level_logger_follows_reconfiguration(stream: io.StringIO) -> None:
    early = structlog.get_logger("early")  # as a module would, before configure_logging
    configure_logging(json=True, verbosity=0, stream=stream)
    early.info("late.configured")

    assert records(stream)[0]["event"] == "late.configured"


@pytest.mark.parametrize(
    "key",
    ["token", "Password", "client_secret", "apiKey", "AUTHORIZATION", "private_key", "contents"],
)
def test_sensitive_keys_are_redacted(stream: io.StringIO, key: str) -> None:
    assert emit(stream, **{key: "plain-text-value"})[key] == REDACTED


def test_counts_flags_and_safe_names_survive(stream: io.StringIO) -> None:
    record = emit(
        stream,
        secrets_count=3,
        token_valid=True,
        password=None,
        secret_name="db-creds",
        secretProviderClass="vault-db",
        token_ttl=1.5,
    )

    assert record["secrets_count"] == 3
    assert record["token_valid"] is True
    assert record["password"] is None
    assert record["secret_name"] == "db-creds"
    assert record["secretProviderClass"] == "vault-db"
    assert record["token_ttl"] == REDACTED  # strict: only ints, bools and None pass


def test_nested_structures_and_service_account_tokens(stream: io.StringIO) -> None:
    tokens = json.dumps({"vault": {"token": JWT, "expirationTimestamp": "2030-01-01T00:00:00Z"}})
    record = emit(
        stream,
        volume_context={
            "csi.storage.k8s.io/serviceAccount.tokens": tokens,
            "csi.storage.k8s.io/pod.name": "web-0",
            "nested": [{"password": "p4ssw0rd!"}, ("x", JWT)],
        },
        files=[{"path": "a.txt", "contents": b"secret bytes"}],
        raw=b"\x00\x01secret",
    )

    context = record["volume_context"]
    assert isinstance(context, dict)
    assert context["csi.storage.k8s.io/serviceAccount.tokens"] == REDACTED
    assert context["csi.storage.k8s.io/pod.name"] == "web-0"
    assert context["nested"] == [{"password": REDACTED}, ["x", REDACTED]]
    assert record["files"] == [{"path": "a.txt", "contents": REDACTED}]
    assert record["raw"] == "<8 bytes>"


def test_jwts_and_vault_tokens_are_scrubbed_from_any_string(stream: io.StringIO) -> None:
    record = emit(
        stream,
        f"login with {JWT} failed",
        detail=f"vault said {VAULT} and s.AbCdEfGhIjKlMnOpQrStUvWx and hvb.{'A' * 40}",
        url="https://vault.example.com/v1/secret/data/app",
        attributes=json.dumps({"csi.storage.k8s.io/serviceAccount.tokens": {"a": JWT}}),
    )

    text = json.dumps(record)
    for leaked in (JWT, VAULT, "s.AbCdEfGh", "hvb.AAAA", "eyJ"):
        assert leaked not in text
    assert record["event"] == f"login with {REDACTED} failed"
    assert record["url"] == "https://vault.example.com/v1/secret/data/app"


def test_registered_values_are_scrubbed_until_forgotten(stream: io.StringIO) -> None:
    register_sensitive("correct-horse-battery")
    register_sensitive("correct-horse-battery")  # two volumes use it
    register_sensitive("abc")  # too short: would mangle ordinary words

    assert emit(stream, note="pw is correct-horse-battery!")["note"] == f"pw is {REDACTED}!"
    assert emit(stream, note="abc")["note"] == "abc"
    forget_sensitive("correct-horse-battery")
    assert REDACTED in str(emit(stream, note="correct-horse-battery")["note"])
    forget_sensitive("correct-horse-battery")
    assert emit(stream, note="correct-horse-battery")["note"] == "correct-horse-battery"


def test_large_registry_uses_the_index(stream: io.StringIO) -> None:
    values = [f"value-{i:04d}-xyz" for i in range(500)]
    for value in values:
        register_sensitive(value)
    register_sensitive("value-0007-xyz-longer")

    note = emit(stream, note="a value-0007-xyz-longer b value-0499-xyz c value-9999-xyz")["note"]

    assert note == f"a {REDACTED} b {REDACTED} c value-9999-xyz"


def test_registry_is_bounded(stream: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log_redaction._SensitiveValues, "CAPACITY", 2)
    for value in ("first-value", "second-value", "third-value"):
        register_sensitive(value)

    note = emit(stream, note="first-value second-value third-value")["note"]

    assert note == f"first-value {REDACTED} {REDACTED}"


def test_exceptions_are_rendered_and_scrubbed(stream: io.StringIO) -> None:
    configure_logging(json=True, verbosity=0, stream=stream)
    register_sensitive("s3cr3t-password")
    try:
        raise ValueError(f"auth failed for {JWT} with s3cr3t-password")
    except ValueError as exc:
        structlog.get_logger().exception("provider.failed", error=exc)

    record = records(stream)[0]
    assert "ValueError: auth failed for" in str(record["exception"])
    assert JWT not in stream.getvalue()
    assert "s3cr3t-password" not in stream.getvalue()
    assert record["error"] == f"ValueError: auth failed for {REDACTED} with {REDACTED}"


def test_stdlib_logging_is_routed_and_redacted(stream: io.StringIO) -> None:
    configure_logging(json=True, verbosity=0, stream=stream)
    configure_logging(json=True, verbosity=0, stream=stream)  # no duplicate handlers
    library = logging.getLogger("grpclib.server")
    library.warning("bad header %s", JWT)
    library.debug("too chatty")
    try:
        raise RuntimeError(VAULT)
    except RuntimeError:
        library.exception("handler crashed")

    first, second = records(stream)
    assert first["event"] == f"bad header {REDACTED}"
    assert first["level"] == "warning"
    assert first["logger"] == "grpclib.server"
    assert "ts" in first
    assert second["level"] == "error"
    assert f"RuntimeError: {REDACTED}" in str(second["exception"])


def test_console_format_without_colors(stream: io.StringIO) -> None:
    configure_logging(json=False, verbosity=0, stream=stream)
    structlog.get_logger().info("node_publish.completed", pod="web-0", token=JWT)
    logging.getLogger("aiohttp.access").warning("hello")

    text = stream.getvalue()
    assert "\x1b[" not in text
    assert "node_publish.completed" in text
    assert "pod=web-0" in text
    assert JWT not in text
    assert "hello" in text
    assert len(text.splitlines()) == 2


def test_console_values_are_klog_like(stream: io.StringIO) -> None:
    configure_logging(json=False, verbosity=0, stream=stream)
    structlog.get_logger().warning(
        "provider.config",
        vault_namespace=None,
        providers=["aws", "azure", "gcp"],
        excluded=[],
        rotation=True,
        poll_s=120.0,
        lag_s=0.25,
        error="failed to create /a b: 'x'",
        pod="web-0",
        token=JWT,
    )
    [line] = stream.getvalue().splitlines()
    pairs = line.split("provider.config", 1)[1].strip()
    assert pairs == (
        "error=\"failed to create /a b: 'x'\" excluded= lag_s=0.25 pod=web-0 poll_s=120 "
        f"providers=aws,azure,gcp rotation=true token={REDACTED}"
    )  # vault_namespace=None: the key is left out


def test_console_configuration_line_keeps_every_setting_compact(stream: io.StringIO) -> None:
    settings, _ = parse_settings(["--standalone-dir=/tmp", "--nodeid=node-1"])
    configure_logging(json=False, verbosity=0, stream=stream)
    structlog.get_logger().info("agent.configuration", **effective_configuration(settings))
    [line] = stream.getvalue().splitlines()
    shown = line.split("settings={", 1)[1].removesuffix("}")
    for field in dataclasses.fields(settings):
        assert f" {field.name}=" in f" {shown}"
    assert " tmpfs_size= " in line  # None inside the mapping: present, empty
    assert " builtin_providers=vault,openbao,aws,azure,gcp " in line
    assert " enable_secret_rotation=false " in line
    assert " rotation_poll_interval=120 " in line
    assert "None" not in line and "'" not in line and "[" not in line.split("]", 1)[1]


def test_json_format_keeps_python_values(stream: io.StringIO) -> None:
    configure_logging(json=True, verbosity=0, stream=stream)
    structlog.get_logger().info("x", vault_namespace=None, providers=["aws"], poll_s=120.0)
    [record] = records(stream)
    assert record["vault_namespace"] is None
    assert record["providers"] == ["aws"]
    assert record["poll_s"] == 120.0
