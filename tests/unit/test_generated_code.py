"""The committed agent/_proto matches what scripts/gen-protos makes from protos/ today."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    out = tmp_path / "_proto"
    subprocess.run(
        [str(ROOT / "scripts" / "gen-protos"), str(out)],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHON": sys.executable},
    )
    committed = ROOT / "agent" / "_proto"
    stale = _differences(filecmp.dircmp(committed, out, ignore=["__pycache__"]))
    assert not stale, f"agent/_proto is stale; run scripts/gen-protos ({stale})"


def _differences(cmp: filecmp.dircmp[str]) -> list[str]:
    found = [*cmp.left_only, *cmp.right_only, *cmp.diff_files, *cmp.funny_files]
    for sub in cmp.subdirs.values():
        found += _differences(sub)
    return found


def test_wire_names_match_upstream() -> None:
    """Service and method paths kubelet and provider plugins use on the wire."""
    csi_code = (ROOT / "agent/_proto/csi/v1/__init__.py").read_text()
    plugin_code = (ROOT / "agent/_proto/v1alpha1/__init__.py").read_text()
    for path in (
        "/csi.v1.Identity/GetPluginInfo",
        "/csi.v1.Identity/Probe",
        "/csi.v1.Node/NodePublishVolume",
        "/csi.v1.Node/NodeUnpublishVolume",
        "/csi.v1.Controller/ControllerGetCapabilities",
    ):
        assert f'"{path}"' in csi_code
    for path in ("/v1alpha1.CSIDriverProvider/Mount", "/v1alpha1.CSIDriverProvider/Version"):
        assert f'"{path}"' in plugin_code


def test_field_numbers_match_the_spec() -> None:
    from agent._proto.csi import v1 as csi

    # volume_context is field 8 (tag 0x42), secrets field 7 (0x3a), readonly field 6 (0x30).
    encoded = bytes(
        csi.NodePublishVolumeRequest(readonly=True, secrets={"k": "v"}, volume_context={"a": "b"})
    )
    assert encoded.startswith(b"\x30\x01\x3a") and b"\x42\x06\n\x01a\x12\x01b" in encoded


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (strings, bytes, messages): tag, length, payload."""
    assert len(payload) < 128
    return bytes([number << 3 | 2, len(payload)]) + payload


def _varint_field(number: int, value: int) -> bytes:
    """A varint field (int32): tag, then seven bits a byte, low first, high bit = more."""
    encoded = bytearray()
    while value >= 0x80:
        encoded.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes([number << 3, *encoded, value])


def test_provider_messages_have_upstreams_field_numbers() -> None:
    """The plugin protocol's field numbers (reference upstream-driver §4.3), checked on bytes
    written by hand from that table: the fake plugin of the integration tests is built from
    the same generated code as the client, so it would not notice a wrong number."""
    from agent._proto import v1alpha1 as pb

    object_version = _field(1, b"secret/a") + _field(2, b"v7")  # ObjectVersion{id, version}
    reply = pb.MountResponse.parse(
        _field(1, object_version)
        + _field(2, _field(1, b"KeyVaultNotFound"))
        + _field(3, _field(1, b"dir/a") + _varint_field(2, 0o400) + _field(3, b"A"))
    )
    assert [(v.id, v.version) for v in reply.object_version] == [("secret/a", "v7")]
    assert reply.error is not None and reply.error.code == "KeyVaultNotFound"
    assert [(f.path, f.mode, f.contents) for f in reply.files] == [("dir/a", 0o400, b"A")]

    request = pb.MountRequest(
        attributes="{}",
        secrets="null",
        target_path="/t",
        permission="420",
        current_object_version=[pb.ObjectVersion(id="secret/a", version="v7")],
    )
    assert bytes(request) == (
        _field(1, b"{}")
        + _field(2, b"null")
        + _field(3, b"/t")
        + _field(4, b"420")
        + _field(5, object_version)
    )
    assert bytes(pb.VersionRequest(version="v1alpha1")) == _field(1, b"v1alpha1")
    answer = pb.VersionResponse.parse(_field(1, b"v1alpha1") + _field(2, b"e2e") + _field(3, b"1"))
    assert (answer.version, answer.runtime_name, answer.runtime_version) == ("v1alpha1", "e2e", "1")
