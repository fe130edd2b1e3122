"""Windows target paths: drive letters, backslashes, NTFS case-insensitivity, and every
spelling that could reach another directory refused with the rule it breaks."""

from __future__ import annotations

import pytest

from agent.errors import ConfigError, InvalidRequest
from agent.targets import make_target_rules, pod_uid_and_volume
from agent.targets_windows import WindowsTargetRules

ROOT = "C:\\var\\lib\\kubelet"
UID = "0b7d8c1e-1c5a-4a2e-9d6f-0123456789ab"
CANONICAL = f"{ROOT}\\pods\\{UID}\\volumes\\kubernetes.io~csi\\secrets-store-inline\\mount"


@pytest.fixture
def rules() -> WindowsTargetRules:
    chosen = make_target_rules(ROOT, windows=True)
    assert isinstance(chosen, WindowsTargetRules) and chosen.windows
    return chosen


def test_kubelet_path_parses_into_its_parts(rules: WindowsTargetRules) -> None:
    target = rules.parse(CANONICAL)
    assert (target.path, target.root, target.pod_uid, target.volume) == (
        CANONICAL,
        ROOT,
        UID,
        "secrets-store-inline",
    )
    assert target.volume_dir == CANONICAL.rsplit("\\", 1)[0]
    assert rules.target_for(UID, "secrets-store-inline") == CANONICAL
    assert pod_uid_and_volume(CANONICAL) == (UID, "secrets-store-inline")


@pytest.mark.parametrize(
    "spelling",
    [
        CANONICAL.replace("C:\\var\\lib\\kubelet", "c:\\var\\lib\\kubelet"),
        CANONICAL.replace("C:\\var\\lib\\kubelet", "C:\\VAR\\Lib\\KUBELET"),
        CANONICAL.replace("\\pods\\", "\\Pods\\").replace("\\mount", "\\MOUNT"),
        CANONICAL.replace("kubernetes.io~csi", "Kubernetes.IO~CSI"),
    ],
)
def test_every_case_spelling_is_one_volume_with_one_key(
    rules: WindowsTargetRules, spelling: str
) -> None:
    assert rules.parse(spelling).path == CANONICAL


def test_a_root_given_with_slashes_or_lower_case_is_normalized() -> None:
    assert WindowsTargetRules("c:/var/lib/kubelet/").root == "c:\\var\\lib\\kubelet"
    rules = WindowsTargetRules("D:\\k\\kubelet")
    assert rules.parse(rules.target_for(UID, "v")).path.startswith("D:\\k\\kubelet\\pods\\")


@pytest.mark.parametrize("root", ["", "/var/lib/kubelet", "var\\lib", "C:kubelet", "\\\\srv\\k"])
def test_a_root_that_is_not_drive_absolute_names_the_flag(root: str) -> None:
    with pytest.raises(ConfigError, match="--kubelet-root-dir"):
        WindowsTargetRules(root)


@pytest.mark.parametrize(
    ("path", "rule"),
    [
        ("\\\\server\\share\\pods\\x\\mount", "UNC or device"),
        ("\\\\?\\" + CANONICAL, "UNC or device"),
        ("\\\\.\\" + CANONICAL, "UNC or device"),
        ("//?/" + CANONICAL, "UNC or device"),
        (CANONICAL.replace("\\", "/"), "backslashes only"),
        (CANONICAL.replace("\\volumes", "\\\\volumes"), "normalized"),
        (CANONICAL.replace("\\volumes", "\\.\\volumes"), "normalized"),
        (CANONICAL.replace("\\volumes", "\\x\\..\\volumes"), "normalized"),
        (CANONICAL + "\\", "normalized"),
        ("pods\\x\\mount", "drive-absolute"),
        ("C:pods\\x", "drive-absolute"),
        (CANONICAL + ":stream", "alternate data stream"),
        (CANONICAL + "::$DATA", "alternate data stream"),
        (CANONICAL.replace(UID, UID + ":x"), "alternate data stream"),
        (CANONICAL + "\0", "NUL"),
        (
            "D:\\var\\lib\\kubelet\\pods\\u\\volumes\\kubernetes.io~csi\\v\\mount",
            "below the kubelet root",
        ),
        (
            "C:\\var\\lib\\kubeletx\\pods\\u\\volumes\\kubernetes.io~csi\\v\\mount",
            "below the kubelet root",
        ),
        (f"{ROOT}\\pods\\{UID}\\volumes\\kubernetes.io~csi\\v", "kubelet's shape"),
        (f"{ROOT}\\pods\\{UID}\\volumes\\kubernetes.io~empty-dir\\v\\mount", "kubelet's shape"),
        (f"{ROOT}\\plugins\\{UID}\\volumes\\kubernetes.io~csi\\v\\mount", "kubelet's shape"),
        (CANONICAL.replace(UID, UID.upper()), "not a name kubelet makes"),
        (CANONICAL.replace(UID, "0B7D8C~1"), "8.3 short name"),
        (CANONICAL.replace("secrets-store-inline", "vol."), "ends with a dot"),
        (CANONICAL.replace("secrets-store-inline", "vol "), "ends with a dot or a space"),
        (CANONICAL.replace("secrets-store-inline", "nul"), "reserved device name"),
        (CANONICAL.replace("secrets-store-inline", "com1.txt"), "reserved device name"),
        (CANONICAL.replace("secrets-store-inline", "a*b"), "does not allow"),
        ("C:\\" + "a\\" * 20000 + "mount", "at most 32767 characters"),
    ],
)
def test_refusals_name_the_rule(rules: WindowsTargetRules, path: str, rule: str) -> None:
    with pytest.raises(InvalidRequest, match=rule.replace("(", "\\(").replace("?", "\\?")):
        rules.parse(path)


def test_linux_rules_are_unchanged() -> None:
    rules = make_target_rules("/var/lib/kubelet", windows=False)
    assert not rules.windows
    path = f"/var/lib/kubelet/pods/{UID}/volumes/kubernetes.io~csi/v/mount"
    assert rules.parse(path).path == path
    with pytest.raises(InvalidRequest):
        rules.parse(path.replace("/var", "/VAR"))  # case matters on Linux
