"""The ``gcp`` SecretProviderClass parameters, decoded as the upstream provider decodes them
(gopkg.in/yaml.v3 into ``[]*Secret``), and its ``auth`` / node-publish secret rules."""

from __future__ import annotations

import threading

import pytest

from agent.errors import InvalidSecretProviderClass, ProviderError
from agent.providers.gcp.config import MountConfig, parse_config
from agent.providers.gcp.extract import extract_yaml_key

SM = "projects/p/secrets/s/versions/1"


def parse(
    secrets: str, *, auth: str = "", key: str | None = None, allow: bool = False
) -> MountConfig:
    attributes = {"secrets": secrets} | ({"auth": auth} if auth else {})
    node_publish = {"key.json": key} if key is not None else {}
    return parse_config(attributes, node_publish, allow_node_publish_secret=allow)


@pytest.mark.parametrize(
    ("literal", "mode"),
    [("0440", 0o440), ("0o440", 0o440), ("288", 0o440), ("0x120", 0o440), ("0", 0), ("~", None)],
)
def test_mode_literals_as_yaml_v3_reads_them(literal: str, mode: int | None) -> None:
    config = parse(f"- {{resourceName: {SM}, fileName: a, mode: {literal}}}")
    assert config.secrets[0].mode == mode


@pytest.mark.parametrize(
    ("literal", "message"),
    [
        ('"0440"', r"secrets\[0\]\.mode: .*string"),
        ("true", r"secrets\[0\]\.mode: "),
        ("0777777777777", r"secrets\[0\]\.mode: "),
        ("01000", r"secrets\[0\]\.mode: 512 is not a file mode"),
        ("-1", r"secrets\[0\]\.mode: -1 is not a file mode"),
    ],
)
def test_bad_modes_name_the_field(literal: str, message: str) -> None:
    with pytest.raises(InvalidSecretProviderClass, match=message):
        parse(f"- {{resourceName: {SM}, fileName: a, mode: {literal}}}")


def test_string_fields_take_the_literal_text() -> None:
    config = parse(
        "- resourceName: projects/p/secrets/s/versions/1\n  fileName: 0123\n  extractJSONKey: yes\n"
    )
    entry = config.secrets[0]
    assert (entry.path, entry.extract_json_key) == ("0123", "yes")


def test_duplicate_keys_fail_as_in_yaml_v3() -> None:
    with pytest.raises(InvalidSecretProviderClass, match=r"secrets\[0\]"):
        parse(f"- resourceName: {SM}\n  fileName: a\n  fileName: b\n")


def test_null_entry_and_unknown_keys() -> None:
    with pytest.raises(InvalidSecretProviderClass, match=r"secrets\[1\]: is empty"):
        parse(f"- {{resourceName: {SM}, fileName: a}}\n-\n")
    config = parse(f"- {{resourceName: {SM}, filename: a, path: b}}")
    assert config.warnings == ("secrets[0]: unknown keys ignored: filename",)


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        ("a", "a", r"secrets\[1\]\.path: 'a' is also the file of secrets\[0\]"),
        (
            "a",
            "a/b",
            r"secrets\[1\]\.path: 'a/b' needs the directory 'a', the file of secrets\[0\]",
        ),
        (
            "x/a/b",
            "x/a",
            r"secrets\[1\]\.path: 'x/a' is a directory of the file 'x/a/b' of secrets\[0\]",
        ),
    ],
)
def test_files_may_not_collide(first: str, second: str, message: str) -> None:
    other = "projects/p/secrets/t/versions/1"
    with pytest.raises(InvalidSecretProviderClass, match=message):
        parse(
            f"- {{resourceName: {SM}, path: {first}}}\n- {{resourceName: {other}, path: {second}}}"
        )
    siblings = parse(f"- {{resourceName: {SM}, path: x/a}}\n- {{resourceName: {SM}, path: x/b}}")
    assert [e.path for e in siblings.secrets] == ["x/a", "x/b"]


def test_empty_list_is_allowed_as_upstream() -> None:
    assert parse("").secrets == ()
    assert parse("[]").secrets == ()


def test_auth_selection() -> None:
    assert parse("[]").auth == "pod-adc"
    assert parse("[]", auth="provider-adc").auth == "provider-adc"
    # key.json only counts when the agent allows node-publish secrets.
    ignored = parse("[]", key="{}")
    assert ignored.auth == "pod-adc" and ignored.key_json == ""
    assert "ALLOW_NODE_PUBLISH_SECRET" in ignored.warnings[0]
    used = parse("[]", key='{"type": "service_account"}', allow=True)
    assert (used.auth, used.key_json) == ("key.json", '{"type": "service_account"}')
    with pytest.raises(InvalidSecretProviderClass, match="auth: 'provider-adc' and a node"):
        parse("[]", auth="provider-adc", key="{}", allow=True)


def test_key_json_never_in_repr() -> None:
    config = parse("[]", key='{"private_key": "-----BEGIN PRIVATE KEY-----"}', allow=True)
    assert "PRIVATE" not in repr(config)


def test_yaml_key_extraction_follows_yaml_v3() -> None:
    payload = b"on: yes\nport: 5432\nwhen: 2024-01-01\nname: 'db'\n1: one\n"
    assert extract_yaml_key("secrets[0]", payload, "on") == b"yes"  # YAML 1.2: strings
    assert extract_yaml_key("secrets[0]", payload, "name") == b"db"
    assert extract_yaml_key("secrets[0]", payload, "1") == b"one"
    for key in ("port", "when"):
        with pytest.raises(ProviderError, match=f"the value of '{key}' is not a string"):
            extract_yaml_key("secrets[0]", payload, key)
    for bad in (b"- a\n- b\n", b"a: [", b"\xff\xfe"):
        with pytest.raises(ProviderError, match=r"secrets\[0\]\.extractYAMLKey: .*not valid YAML"):
            extract_yaml_key("secrets[0]", bad, "a")
    with pytest.raises(ProviderError, match="key 'a' not found"):
        extract_yaml_key("secrets[0]", b"", "a")


@pytest.mark.parametrize("entries", [3, 2000])
async def test_a_large_secrets_list_is_parsed_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch, entries: int
) -> None:
    from agent.model import PodIdentity, ProviderRequest
    from agent.providers.common.parsed import OFF_LOOP_ABOVE
    from agent.providers.gcp import config as gcp_config
    from agent.providers.gcp import provider as gcp_provider
    from agent.providers.gcp.secrets_yaml import RawSecret, load_secrets

    threads: list[bool] = []

    def recording(text: str) -> tuple[list[RawSecret], list[str]]:
        threads.append(threading.current_thread() is threading.main_thread())
        return load_secrets(text)

    monkeypatch.setattr(gcp_config, "load_secrets", recording)
    text = "".join(f"- resourceName: {SM}\n  fileName: f{i}\n" for i in range(entries))
    request = ProviderRequest(
        attributes={"secrets": text + "- fileName: last\n"},
        secrets={},
        identity=PodIdentity("ns", "pod", "uid"),
        target_path="/t",
    )
    provider = gcp_provider.GcpProvider(env={})
    try:
        with pytest.raises(InvalidSecretProviderClass, match=rf"secrets\[{entries}\].resourceName"):
            await provider.mount(request)
    finally:
        await provider.close()
    small = len(text) <= OFF_LOOP_ABOVE
    assert threads == [small]  # on the loop's thread only when small
