from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from agent.cli import _volume_id, main
from agent.cli_volume import describe_volume


def test_version_prints_upstream_shaped_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"BuildVersion", "GitCommit", "BuildDate"}


def test_bad_flag_exits_2_naming_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--rotation-poll-interval=soon"]) == 2
    assert "--rotation-poll-interval" in capsys.readouterr().err


def test_kubernetes_mode_needs_a_node_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--endpoint=unix:///tmp/never.sock", "--metrics-addr=", "--health-addr="]) == 1
    assert "--nodeid is required in Kubernetes mode" in capsys.readouterr().out


def test_kubernetes_mode_without_api_configuration_is_explained(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    argv = ["--endpoint=unix:///tmp/never.sock", "--metrics-addr=", "--health-addr="]
    assert main([*argv, "--nodeid=node-a"]) == 1
    out = capsys.readouterr().out
    assert "no Kubernetes API configuration" in out
    assert "--standalone-dir" in out


def test_volume_id_matches_kubelet_for_its_layout() -> None:
    target = "/var/lib/kubelet/pods/uid-1/volumes/kubernetes.io~csi/secrets/mount"
    expected = "csi-" + hashlib.sha256(b"uid-1" + b"secrets").hexdigest()
    assert _volume_id(target) == expected
    assert _volume_id("/tmp/elsewhere", "u").startswith("csi-")


def test_show_contents_never_follows_a_link_out_of_the_volume(tmp_path: Path) -> None:
    volume = tmp_path / "mount"
    volume.mkdir()
    (volume / "app.conf").write_text("inside")
    (tmp_path / "outside.txt").write_text("node file")
    (volume / "planted").symlink_to(tmp_path / "outside.txt")
    lines = "\n".join(describe_volume(str(volume), show_contents=True))
    assert "inside" in lines and "planted" in lines
    assert "node file" not in lines


def test_mount_help_warns_that_command_line_secrets_are_visible(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["mount", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "a value on the command line is visible to other users" in help_text
    assert "--secret-file KEY=FILE" in help_text


@pytest.mark.parametrize(
    ("content", "extra", "expected"),
    [
        (None, [], "--secret-file: cannot read {path}: No such file or directory"),
        (b"\xff\xfe", [], "--secret-file: {path} is not UTF-8 text"),
        (b"x", ["--secret=key.json=y"], "--secret-file: 'key.json' is also given by --secret"),
    ],
)
def test_mount_refuses_a_secret_file_it_cannot_send(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: bytes | None,
    extra: list[str],
    expected: str,
) -> None:
    path = tmp_path / "key.json"
    if content is not None:
        path.write_bytes(content)
    argv = ["mount", "--endpoint=unix:///nonexistent/csi.sock", f"--target={tmp_path}/t/mount"]
    argv += ["--pod=web-0", "--spc=app", f"--secret-file=key.json={path}", *extra]

    assert main(argv) == 2
    assert capsys.readouterr().err.strip().endswith(expected.format(path=path))
    assert not (tmp_path / "t").exists()  # refused before anything is made


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--uid", "../../escaped"), ("--uid", "a/b"), ("--volume", "../x"), ("--volume", "..")],
)
def test_mount_refuses_a_pod_uid_or_volume_that_is_not_one_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str
) -> None:
    """Kubelet's pod UID and volume name are one directory each. Before: joined into the path
    as given, so ``--uid ../../escaped`` made directories outside the kubelet root before the
    agent refused the target."""
    root = tmp_path / "kubelet"
    root.mkdir()
    argv = ["mount", "--endpoint=unix:///nonexistent/csi.sock", f"--kubelet-root-dir={root}"]
    argv += ["--uid=u1", "--pod=web-0", "--spc=app", f"{flag}={value}"]

    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == (
        f"secrets-store-agent mount: {flag}: {value!r} must be one directory name "
        "(no '/', not '.' or '..')"
    )
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["kubelet"]  # nothing made


def test_a_failed_mount_takes_back_the_directories_it_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Like kubelet, which removes the volume directory of a failed SetUp. Before: every
    failed ``mount`` left ``pods/<uid>/volumes/kubernetes.io~csi/<volume>`` behind (with a
    random UID unless --uid was given), an orphaned pod directory to kubelet."""
    (tmp_path / "pods" / "other").mkdir(parents=True)
    argv = ["mount", "--endpoint=unix:///nonexistent/csi.sock", f"--kubelet-root-dir={tmp_path}"]

    assert main([*argv, "--pod=web-0", "--spc=app"]) == 2
    assert "cannot reach the agent" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["other", "pods"]
