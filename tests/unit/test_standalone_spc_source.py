"""DirectorySecretProviderClassSource: manifests in a directory, reloaded when files change."""

from __future__ import annotations

import os
import tracemalloc
import uuid
from pathlib import Path

import pytest
import structlog
import yaml

from agent.errors import (
    InvalidSecretProviderClass,
    SecretProviderClassNotFound,
    ServiceAccountNotFound,
)
from agent.ports import SecretProviderClassSource
from agent.providers.common.goyaml import Decoder, Value, load_all
from agent.standalone import manifests
from agent.standalone.spc_source import DirectorySecretProviderClassSource

VAULT_SPC = """\
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: vault-db
  namespace: apps
spec:
  provider: vault
  parameters:
    roleName: db
    vaultAddress: http://vault:8200
    objects: |
      - objectName: password
        secretPath: secret/data/db
        secretKey: password
  secretObjects:
    - secretName: db
      type: Opaque
      data:
        - objectName: password
          key: password
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


def spc_doc(name: str, namespace: str | None = None, version: str = "v1", **params: str) -> str:
    meta: dict[str, object] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    return yaml.safe_dump(
        {
            "apiVersion": f"secrets-store.csi.x-k8s.io/{version}",
            "kind": "SecretProviderClass",
            "metadata": meta,
            "spec": {"provider": "fake", "parameters": params or {"a": "1"}},
        }
    )


async def test_loads_a_class_with_parameters_and_secret_objects(tmp_path: Path) -> None:
    write(tmp_path, "vault.yaml", VAULT_SPC)
    source = DirectorySecretProviderClassSource(tmp_path)

    spc = await source.get("apps", "vault-db")

    assert spc.name == "vault-db"
    assert spc.namespace == "apps"
    assert spc.provider == "vault"
    assert spc.parameters["roleName"] == "db"
    assert spc.parameters["objects"].startswith("- objectName: password")
    assert spc.secret_objects[0]["secretName"] == "db"
    assert isinstance(spc.secret_objects, tuple)
    assert spc.generation == 1
    assert spc.uid == str(uuid.uuid5(uuid.NAMESPACE_URL, "standalone:apps/vault-db"))


async def test_multi_document_files_v1alpha1_and_default_namespace(tmp_path: Path) -> None:
    other_kind = yaml.safe_dump(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
    )
    foreign = spc_doc("foreign").replace("secrets-store.csi.x-k8s.io", "example.com")
    write(
        tmp_path,
        "many.yml",
        "---\n".join(
            [spc_doc("one"), other_kind, spc_doc("two", "ns2", version="v1alpha1"), foreign]
        )
        + "---\n",
    )
    write(tmp_path, "notes.txt", spc_doc("ignored"))
    write(tmp_path, ".hidden.yaml", spc_doc("hidden"))
    source = DirectorySecretProviderClassSource(tmp_path)

    assert (await source.get("default", "one")).namespace == "default"
    assert (await source.get("ns2", "two")).parameters == {"a": "1"}
    for ignored in ("ignored", "hidden"):
        with pytest.raises(SecretProviderClassNotFound):
            await source.get("default", ignored)


async def test_metadata_uid_and_generation_are_used_when_present(tmp_path: Path) -> None:
    doc = yaml.safe_load(spc_doc("one"))
    doc["metadata"].update(uid="1234-abcd", generation=7)
    write(tmp_path, "one.yaml", yaml.safe_dump(doc))

    spc = await DirectorySecretProviderClassSource(tmp_path).get("default", "one")

    assert (spc.uid, spc.generation) == ("1234-abcd", 7)


async def test_reloads_on_change_and_bumps_generation_only_for_spec_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parses: list[str] = []
    real = load_all

    def counting(text: str, decoder: Decoder, *, where: str) -> list[Value]:
        parses.append(text)
        return real(text, decoder, where=where)

    monkeypatch.setattr(manifests, "load_all", counting)
    path = write(tmp_path, "one.yaml", spc_doc("one", a="1"))
    source = DirectorySecretProviderClassSource(tmp_path)
    first = await source.get("default", "one")
    await source.get("default", "one")
    assert len(parses) == 1  # unchanged files are not parsed again

    path.write_text(spc_doc("one", a="22"))
    changed = await source.get("default", "one")
    assert changed.parameters == {"a": "22"}
    assert (first.generation, changed.generation) == (1, 2)
    assert changed.uid == first.uid

    # Same spec, different metadata and mtime: re-parsed, generation unchanged.
    doc = yaml.safe_load(spc_doc("one", a="22"))
    doc["metadata"]["labels"] = {"team": "x"}
    path.write_text(yaml.safe_dump(doc))
    os.utime(path, ns=(1, 1))
    assert (await source.get("default", "one")).generation == 2
    assert len(parses) == 3


async def test_new_and_removed_files_are_seen(tmp_path: Path) -> None:
    source = DirectorySecretProviderClassSource(tmp_path)
    with pytest.raises(SecretProviderClassNotFound):
        await source.get("default", "one")
    path = write(tmp_path, "one.yaml", spc_doc("one"))
    assert (await source.get("default", "one")).name == "one"
    path.unlink()
    with pytest.raises(SecretProviderClassNotFound):
        await source.get("default", "one")


async def test_not_found_names_the_class_and_directory(tmp_path: Path) -> None:
    write(tmp_path, "one.yaml", spc_doc("one"))
    source = DirectorySecretProviderClassSource(tmp_path)

    with pytest.raises(SecretProviderClassNotFound) as info:
        await source.get("apps", "missing")

    assert str(info.value) == f"secretproviderclass apps/missing not found in {tmp_path}"
    assert info.value.reason == "SecretProviderClassNotFound"


async def test_missing_directory_is_not_found(tmp_path: Path) -> None:
    source = DirectorySecretProviderClassSource(tmp_path / "nope")
    with pytest.raises(SecretProviderClassNotFound, match="directory does not exist"):
        await source.get("default", "one")


async def test_malformed_file_does_not_break_other_files(tmp_path: Path) -> None:
    write(tmp_path, "good.yaml", spc_doc("good"))
    write(tmp_path, "bad.yaml", "kind: SecretProviderClass\nmetadata: [unclosed\n")
    source = DirectorySecretProviderClassSource(tmp_path)

    with structlog.testing.capture_logs() as logs:
        assert (await source.get("default", "good")).name == "good"
        with pytest.raises(SecretProviderClassNotFound, match=r"unreadable files: bad\.yaml: "):
            await source.get("default", "other")

    warnings = [e for e in logs if e["event"] == "standalone.spc_invalid"]
    assert len(warnings) == 1  # logged once per change, not once per lookup
    assert warnings[0]["file"] == "bad.yaml"
    assert warnings[0]["log_level"] == "warning"
    assert "\n" not in warnings[0]["reason"]


async def test_non_string_parameter_is_invalid_naming_file_and_key(tmp_path: Path) -> None:
    doc = yaml.safe_load(spc_doc("one"))
    doc["spec"]["parameters"]["port"] = 8200
    write(tmp_path, "multi.yaml", spc_doc("two") + "---\n" + yaml.safe_dump(doc))
    source = DirectorySecretProviderClassSource(tmp_path)

    with pytest.raises(InvalidSecretProviderClass) as info:
        await source.get("default", "one")

    message = str(info.value)
    assert "multi.yaml (document 2)" in message
    assert 'spec.parameters.port: Invalid value: "integer": must be of type string' in message
    # The valid document of the same file still works.
    assert (await source.get("default", "two")).name == "two"


# kubectl sends a manifest as sigs.k8s.io/yaml's YAMLToJSON makes it (yaml.v2 typing), and the
# API server's schema validation then refuses a non-string in spec.parameters (map[string]string).
@pytest.mark.parametrize(
    ("scalar", "json_type"),
    [
        ("0123", "integer"),
        ("8200", "integer"),
        ("0x1F", "integer"),
        ("1e3", "integer"),
        ("1.50", "number"),
        ("on", "boolean"),
        ("yes", "boolean"),
        ("true", "boolean"),
        ("~", "null"),
        ("", "null"),
        ("[a]", "array"),
        ("{a: b}", "object"),
    ],
)
async def test_parameters_typed_as_kubectl_types_them_are_refused(
    tmp_path: Path, scalar: str, json_type: str
) -> None:
    text = spc_doc("one").replace("  parameters:\n", f"  parameters:\n    value: {scalar}\n")
    write(tmp_path, "one.yaml", text)
    with pytest.raises(InvalidSecretProviderClass) as info:
        await DirectorySecretProviderClassSource(tmp_path).get("default", "one")
    assert info.value.message.endswith(
        f'spec.parameters.value: Invalid value: "{json_type}": '
        "must be of type string (quote it in the YAML)"
    )


@pytest.mark.parametrize(
    ("scalar", "text"),
    [
        ("2024-01-01", "2024-01-01"),  # yaml.v2 hands timestamps over as text
        ("1:30", "1:30"),  # no sexagesimal numbers in Go's yaml
        ("'0123'", "0123"),
        ('"on"', "on"),
        ("0123abc", "0123abc"),
        ("|\n      0123", "0123\n"),
    ],
)
async def test_parameters_kubectl_sends_as_strings_are_kept(
    tmp_path: Path, scalar: str, text: str
) -> None:
    manifest = spc_doc("one").replace("  parameters:\n", f"  parameters:\n    value: {scalar}\n")
    write(tmp_path, "one.yaml", manifest)
    spc = await DirectorySecretProviderClassSource(tmp_path).get("default", "one")
    assert spc.parameters["value"] == text


async def test_non_string_parameter_names_become_strings(tmp_path: Path) -> None:
    manifest = spc_doc("one").replace("  parameters:\n", "  parameters:\n    0123: x\n")
    write(tmp_path, "one.yaml", manifest)
    spc = await DirectorySecretProviderClassSource(tmp_path).get("default", "one")
    assert spc.parameters["83"] == "x"  # JSON keys are strings: kubectl formats the int


LAUGHS = "    lol: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"    l{i}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(6)
)


@pytest.mark.parametrize(
    ("spec_line", "where", "why"),
    [
        ("    value: .inf\n", ".spec.parameters.value", "an infinite or NaN number cannot be"),
        ("    ~: x\n", ".spec.parameters", "a null mapping key cannot be converted to JSON"),
        ("    ? [a, b]\n    : x\n", ".spec.parameters", "mapping keys must be scalars"),
        (LAUGHS, "", "expands to more than 100000 values (aliases)"),
    ],
    ids=["infinity", "null-key", "sequence-key", "alias-bomb"],
)
async def test_a_class_kubectl_could_not_convert_is_invalid_not_missing(
    tmp_path: Path, spec_line: str, where: str, why: str
) -> None:
    """The document is left out as kubectl would fail it, but known by its name, so a publish
    asking for it hears why. Before: "not found", the reason only in a warning line."""
    bad = spc_doc("one").replace("  parameters:\n", f"  parameters:\n{spec_line}")
    listed = yaml.safe_load(spc_doc("three"))
    del listed["kind"], listed["apiVersion"]  # takes the typed list's
    items = {"kind": "SecretProviderClassList", "apiVersion": "secrets-store.csi.x-k8s.io/v1"}
    typed_list = yaml.safe_dump({**items, "items": [listed]}).replace(
        "  spec:\n", f"  spec:\n    junk:\n  {spec_line.replace(chr(10), chr(10) + '  ')}\n", 1
    )
    write(tmp_path, "multi.yaml", f"{bad}---\n{spc_doc('two')}---\n{typed_list}")
    source = DirectorySecretProviderClassSource(tmp_path)

    with pytest.raises(InvalidSecretProviderClass) as info:
        await source.get("default", "one")
    place = f"multi.yaml (document 1){where}"
    assert info.value.message.startswith(f"secretproviderclass default/one in {place}: {why}")
    assert (await source.get("default", "two")).name == "two"
    with pytest.raises(InvalidSecretProviderClass) as listed_info:
        await source.get("default", "three")
    assert "multi.yaml (document 3) items[0]" in listed_info.value.message


async def test_another_kind_kubectl_could_not_convert_is_still_ignored(tmp_path: Path) -> None:
    other = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: one}\ndata: {a: .nan}\n"
    write(tmp_path, "other.yaml", other)
    with pytest.raises(SecretProviderClassNotFound):
        await DirectorySecretProviderClassSource(tmp_path).get("default", "one")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"provider": "x", "parameters": ["a"]}, "spec.parameters must be a mapping"),
        ({"provider": 3}, "spec.provider must be a string"),
        ({"provider": "x", "secretObjects": {"a": 1}}, "spec.secretObjects must be a list"),
        ("text", "spec must be a mapping"),
    ],
)
async def test_invalid_documents(tmp_path: Path, spec: object, expected: str) -> None:
    doc = yaml.safe_load(spc_doc("one"))
    doc["spec"] = spec
    write(tmp_path, "one.yaml", yaml.safe_dump(doc))

    with pytest.raises(InvalidSecretProviderClass, match=expected):
        await DirectorySecretProviderClassSource(tmp_path).get("default", "one")


async def test_document_without_a_name_is_skipped(tmp_path: Path) -> None:
    doc = yaml.safe_load(spc_doc("one"))
    del doc["metadata"]["name"]
    write(tmp_path, "noname.yaml", yaml.safe_dump(doc))
    write(tmp_path, "two.yaml", spc_doc("two"))

    with structlog.testing.capture_logs() as logs:
        assert (await DirectorySecretProviderClassSource(tmp_path).get("default", "two")).name
    assert {
        "file": "noname.yaml",
        "reason": "metadata.name must be a non-empty string",
    }.items() <= (logs[0].items())


async def test_duplicate_across_files_names_both(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", spc_doc("dup", "apps"))
    write(tmp_path, "b.yaml", spc_doc("dup", "apps"))
    write(tmp_path, "c.yaml", spc_doc("dup", "other"))
    source = DirectorySecretProviderClassSource(tmp_path)

    with pytest.raises(InvalidSecretProviderClass) as info:
        await source.get("apps", "dup")

    assert "a.yaml" in str(info.value)
    assert "b.yaml" in str(info.value)
    assert (await source.get("other", "dup")).namespace == "other"


def test_implements_the_port(tmp_path: Path) -> None:
    source: SecretProviderClassSource = DirectorySecretProviderClassSource(tmp_path)  # mypy
    assert callable(source.get)


SERVICE_ACCOUNT = """\
apiVersion: v1
kind: ServiceAccount
metadata:
  name: app
  namespace: apps
  annotations:
    eks.amazonaws.com/role-arn: arn:aws:iam::111122223333:role/app
"""


async def test_service_account_annotations_come_from_manifests(tmp_path: Path) -> None:
    write(tmp_path, "app.yaml", VAULT_SPC + "---\n" + SERVICE_ACCOUNT)
    source = DirectorySecretProviderClassSource(tmp_path)
    annotations = await source.annotations("apps", "app")
    assert annotations == {"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/app"}
    assert (await source.get("apps", "vault-db")).provider == "vault"


async def test_service_account_without_annotations_is_empty(tmp_path: Path) -> None:
    write(tmp_path, "sa.yaml", "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: bare}\n")
    assert await DirectorySecretProviderClassSource(tmp_path).annotations("default", "bare") == {}


async def test_missing_service_account_names_the_directory(tmp_path: Path) -> None:
    source = DirectorySecretProviderClassSource(tmp_path)
    with pytest.raises(ServiceAccountNotFound, match=r"serviceaccount apps/app not found in"):
        await source.annotations("apps", "app")


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("name: app", "name: App_SA", "metadata.name"),
        ("namespace: apps", "namespace: a.b", "metadata.namespace"),
    ],
)
async def test_service_account_manifest_named_as_kubernetes_would_refuse_is_reported(
    tmp_path: Path, old: str, new: str, field: str
) -> None:
    """As for a class manifest: the API server would refuse it, and no pod could name it (the
    pod's service account is checked by the same rule), so it is reported, naming the field."""
    write(tmp_path, "sa.yaml", SERVICE_ACCOUNT.replace(old, new))
    with structlog.testing.capture_logs() as logs, pytest.raises(ServiceAccountNotFound):
        await DirectorySecretProviderClassSource(tmp_path).annotations("apps", "app")
    (warning,) = [e for e in logs if e["event"] == "standalone.spc_invalid"]
    assert warning["file"] == "sa.yaml"
    assert warning["reason"].startswith(f"{field}: ")
    assert "is not a lowercase RFC 1123" in warning["reason"]


async def test_a_long_service_account_name_is_quoted_cut(tmp_path: Path) -> None:
    with pytest.raises(ServiceAccountNotFound) as info:
        await DirectorySecretProviderClassSource(tmp_path).annotations("apps", "s" * 200)
    assert str(info.value).startswith(f"serviceaccount apps/{'s' * 80!r}... not found in ")


async def test_service_account_defined_twice_keeps_the_first(tmp_path: Path) -> None:
    other = SERVICE_ACCOUNT.replace("role/app", "role/admin")
    write(tmp_path, "a.yaml", SERVICE_ACCOUNT)
    write(tmp_path, "b.yaml", other)
    annotations = await DirectorySecretProviderClassSource(tmp_path).annotations("apps", "app")
    assert annotations["eks.amazonaws.com/role-arn"].endswith("role/app")


async def test_service_account_with_non_string_annotation_is_skipped(tmp_path: Path) -> None:
    write(tmp_path, "sa.yaml", SERVICE_ACCOUNT.replace("arn:aws:iam::111122223333:role/app", "3"))
    with pytest.raises(ServiceAccountNotFound):
        await DirectorySecretProviderClassSource(tmp_path).annotations("apps", "app")


@pytest.mark.parametrize("same_file", [False, True])
async def test_identical_service_account_copies_are_accepted_quietly(
    tmp_path: Path, same_file: bool
) -> None:
    """Upstream's e2e templates repeat one ServiceAccount, in one file or across files."""
    if same_file:
        write(tmp_path, "a.yaml", SERVICE_ACCOUNT + "---\n" + SERVICE_ACCOUNT)
    else:
        write(tmp_path, "a.yaml", SERVICE_ACCOUNT)
        write(tmp_path, "b.yaml", SERVICE_ACCOUNT)
    with structlog.testing.capture_logs() as logs:
        annotations = await DirectorySecretProviderClassSource(tmp_path).annotations("apps", "app")
    assert annotations["eks.amazonaws.com/role-arn"].endswith("role/app")
    assert not [e for e in logs if e["event"] == "standalone.spc_invalid"]


async def test_a_file_over_the_size_cap_is_reported_unread_and_the_others_served(
    tmp_path: Path,
) -> None:
    write(tmp_path, "good.yaml", spc_doc("good"))
    with (tmp_path / "big.yaml").open("wb") as handle:
        handle.truncate(16 * manifests.MAX_MANIFEST_BYTES)  # sparse: no disk, 64 MiB to read
    source = DirectorySecretProviderClassSource(tmp_path)

    tracemalloc.start()
    try:
        with structlog.testing.capture_logs() as logs:
            await source.rescan()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert peak < 2 * manifests.MAX_MANIFEST_BYTES  # never the whole file in memory
    assert [(e["file"], e["reason"]) for e in logs] == [
        ("big.yaml", "larger than the 4 MiB a standalone manifest file may hold; not read")
    ]
    assert (await source.get("default", "good")).name == "good"
    with pytest.raises(SecretProviderClassNotFound, match=r"unreadable files: big\.yaml: larger"):
        await source.get("default", "other")


async def test_a_file_of_exactly_the_size_cap_is_read(tmp_path: Path) -> None:
    text = spc_doc("full")
    padding = manifests.MAX_MANIFEST_BYTES - len(text) - 2
    write(tmp_path, "full.yaml", text + "#" + "x" * padding + "\n")
    assert (tmp_path / "full.yaml").stat().st_size == manifests.MAX_MANIFEST_BYTES
    assert (await DirectorySecretProviderClassSource(tmp_path).get("default", "full")).name
