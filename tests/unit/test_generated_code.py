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
