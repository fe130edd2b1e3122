"""The Windows DaemonSet (``windows.enabled``): valid Kubernetes, every flag accepted by the agent's
own parser under a Windows node's rules, and kubelet, registrar and agent agreeing on Windows
paths (drive letters, backslashes) so a Windows node could register and publish."""

from __future__ import annotations

import ntpath
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.config import Settings, socket_path_from_endpoint
from agent.flags import parse_settings
from agent.targets import make_target_rules
from tests.chart.conftest import CHART, OLDEST_KUBERNETES, UPSTREAM_DEFAULTS, Helm, one
from tests.chart.test_chart_daemonset import expand
from tests.chart.test_chart_manifests import NEWEST_KUBERNETES, validation_errors

WINDOWS = CHART / "ci" / "windows-values.yaml"
ON = ("windows.enabled=true",)
# Rendered with the defaults (and windows.enabled=true) or with every windows.* knob turned.
CASES = {"default": ((), ON), "custom": ((WINDOWS,), ())}
# securityContext fields the API server refuses in a pod with spec.os.name=windows.
LINUX_ONLY = {
    "privileged",
    "runAsUser",
    "runAsGroup",
    "readOnlyRootFilesystem",
    "allowPrivilegeEscalation",
    "capabilities",
    "seLinuxOptions",
    "seccompProfile",
}


def windows_daemonset(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = [
        o
        for o in objects
        if o["kind"] == "DaemonSet" and o["metadata"]["name"].endswith("-windows")
    ]
    return found


def pod_spec(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return dict(windows_daemonset(objects)["spec"]["template"]["spec"])


def container(objects: list[dict[str, Any]], name: str) -> dict[str, Any]:
    (found,) = [c for c in pod_spec(objects)["containers"] if c["name"] == name]
    return dict(found)


def agent_settings(objects: list[dict[str, Any]]) -> Settings:
    agent = container(objects, "secrets-store")
    env = {e["name"]: e.get("value", "node-from-downward-api") for e in agent["env"]}
    command, *flags = agent["args"]
    assert command == "serve"
    settings, _ = parse_settings([expand(flag, env) for flag in flags], windows=True)
    return settings


def mounts(c: dict[str, Any]) -> dict[str, str]:
    return {m["name"]: m["mountPath"] for m in c["volumeMounts"]}


def host_paths(objects: list[dict[str, Any]]) -> dict[str, str]:
    volumes = pod_spec(objects)["volumes"]
    return {v["name"]: v["hostPath"]["path"] for v in volumes if "hostPath" in v}


def same_path(a: str, b: str) -> bool:
    """Windows' comparison: case-insensitive, either slash, trailing separators ignored."""
    return ntpath.normcase(ntpath.normpath(a)) == ntpath.normcase(ntpath.normpath(b))


def flag(args: list[str], name: str) -> str:
    (value,) = [a.split("=", 1)[1] for a in args if a.startswith(name + "=")]
    return value


@pytest.mark.parametrize(("values", "sets"), CASES.values(), ids=CASES.keys())
@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, NEWEST_KUBERNETES])
def test_every_manifest_is_valid_kubernetes_with_windows(
    helm: Helm, values: tuple[Path, ...], sets: tuple[str, ...], version: str
) -> None:
    objects = helm.template(*values, sets=sets, kube_version=version)

    assert validation_errors(objects, version) == []
    names = {o["metadata"]["name"] for o in objects if o["kind"] == "DaemonSet"}
    assert names == {"rel-secrets-store-agent", "rel-secrets-store-agent-windows"}


def test_helm_lint_strict_with_windows(helm: Helm) -> None:
    done = helm.run("lint", "--strict", str(CHART), "-f", str(WINDOWS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_windows_flags_are_the_agents_windows_defaults(helm: Helm) -> None:
    settings = agent_settings(helm.template(sets=ON))

    assert settings.event_loop == "asyncio"
    assert settings.mount_mode == "directory"
    assert settings.kubelet_root_dir == "C:\\var\\lib\\kubelet"
    assert settings.provider_volume == "C:\\k\\secrets-store-csi-providers"
    assert settings.additional_provider_volume_paths == ()
    assert settings.state_dir == "C:\\k\\secrets-store-agent"
    assert socket_path_from_endpoint(settings.endpoint, windows=True) == "C:\\csi\\csi.sock"


def test_custom_windows_values_reach_the_agent(helm: Helm) -> None:
    settings = agent_settings(helm.template(WINDOWS))

    assert settings.kubelet_root_dir == "D:\\kubelet"
    assert settings.provider_volume == "D:\\k\\secrets-store-csi-providers"
    assert settings.additional_provider_volume_paths == (
        "C:\\k\\secrets-store-csi-providers",
        "D:\\k\\secrets-store-csi-providers",
    )
    assert settings.metrics_addr == ":8097"
    assert settings.provider_timeout == 60.0
    assert settings.trusted_file_dirs == ("C:\\ssa-trusted",)
    assert settings.enable_secret_rotation is True
    assert settings.rotation_poll_interval == 300.0
    assert settings.verbosity == 3


@pytest.mark.parametrize(("values", "sets"), CASES.values(), ids=CASES.keys())
def test_kubelet_registrar_and_agent_agree_on_windows_paths(
    helm: Helm, values: tuple[Path, ...], sets: tuple[str, ...]
) -> None:
    objects = helm.template(*values, sets=sets)
    settings = agent_settings(objects)
    registrar, agent = (
        container(objects, "node-driver-registrar"),
        container(objects, "secrets-store"),
    )
    hosts = host_paths(objects)
    root = settings.kubelet_root_dir

    # The agent binds the socket the registrar dials, inside the same mounted plugin dir...
    socket = socket_path_from_endpoint(settings.endpoint, windows=True)
    registrar_socket = flag(registrar["args"], "--csi-address")
    assert socket_path_from_endpoint(registrar_socket, windows=True) == socket
    assert mounts(agent)["plugin-dir"] == mounts(registrar)["plugin-dir"]
    assert same_path(ntpath.dirname(socket), mounts(agent)["plugin-dir"])
    # ...which is where kubelet is told to dial it on the node.
    registration = flag(registrar["args"], "--kubelet-registration-path")
    assert same_path(registration, ntpath.join(hosts["plugin-dir"], ntpath.basename(socket)))
    assert same_path(hosts["plugin-dir"], ntpath.join(root, "plugins", "csi-secrets-store"))
    assert same_path(hosts["registration-dir"], ntpath.join(root, "plugins_registry"))

    # Pods' volumes: the same path inside and out, so kubelet's target paths hold in the
    # container, and the agent's Windows target rules accept them (drive letter case too).
    assert mounts(agent)["mountpoint-dir"] == hosts["mountpoint-dir"]
    assert same_path(hosts["mountpoint-dir"], ntpath.join(root, "pods"))
    target = ntpath.join(root.lower(), "pods", "0f9c", "volumes", "kubernetes.io~csi", "v", "mount")
    rules = make_target_rules(root, windows=True)
    assert rules.parse(target).volume_dir == rules.target_for("0f9c", "v").rsplit("\\", 1)[0]

    # Provider sockets and state: each flag's directory mounted from the same host path.
    for directory in (
        settings.provider_volume,
        *settings.additional_provider_volume_paths,
        settings.state_dir,
    ):
        names = [n for n, path in hosts.items() if path == directory]
        assert names, f"{directory} is not mounted"
        assert mounts(agent)[names[0]] == directory


def test_windows_pod_is_a_windows_pod(helm: Helm) -> None:
    objects = helm.template(sets=ON)
    pod = pod_spec(objects)

    assert pod["nodeSelector"] == {"kubernetes.io/os": "windows"}
    assert pod["os"] == {"name": "windows"}
    assert pod["tolerations"] == [{"operator": "Exists"}]
    assert pod["priorityClassName"] == "system-node-critical"
    for c in pod["containers"]:
        assert not LINUX_ONLY & set(c.get("securityContext", {})), c["name"]
        assert all("mountPropagation" not in m for m in c["volumeMounts"]), c["name"]
    assert set(pod["securityContext"]) == {"windowsOptions"}
    linux = one(objects, "DaemonSet", "rel-secrets-store-agent")["spec"]["template"]["spec"]
    assert linux["nodeSelector"] == {"kubernetes.io/os": "linux"}


def test_windows_probes_are_the_agents_own_endpoints(helm: Helm) -> None:
    objects = helm.template(WINDOWS)
    agent = container(objects, "secrets-store")
    ports = {p["name"]: p["containerPort"] for p in agent["ports"]}

    assert ports == {"healthz": 9808, "metrics": 8097}
    assert agent["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    assert agent["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "healthz"}
    assert {c["name"] for c in pod_spec(objects)["containers"]} == {
        "node-driver-registrar",
        "secrets-store",
    }


def test_each_daemonsets_selector_leaves_the_other_ones_pods_alone(helm: Helm) -> None:
    """Else `kubectl logs daemonset/<release>-secrets-store-agent` (install.md) may pick a
    Windows pod, and the two controllers' selectors overlap."""
    objects = helm.template(sets=ON)
    linux_daemonset = one(objects, "DaemonSet", "rel-secrets-store-agent")
    selector = windows_daemonset(objects)["spec"]["selector"]["matchLabels"]
    linux_selector = linux_daemonset["spec"]["selector"]["matchLabels"]
    linux = linux_daemonset["spec"]["template"]["metadata"]
    windows = windows_daemonset(objects)["spec"]["template"]["metadata"]

    assert selector.items() <= windows["labels"].items()
    assert not selector.items() <= linux["labels"].items()
    assert linux_selector.items() <= linux["labels"].items()
    assert not linux_selector.items() <= windows["labels"].items()


def test_windows_only_renders_one_daemonset(helm: Helm) -> None:
    objects = helm.template(sets=[*ON, "linux.enabled=false"])

    (daemonset,) = [o for o in objects if o["kind"] == "DaemonSet"]
    assert daemonset["metadata"]["name"] == "rel-secrets-store-agent-windows"
    assert validation_errors(objects, NEWEST_KUBERNETES) == []


def upstream_values(tmp_path: Path, *, keep_windows_image: bool) -> Path:
    values = yaml.safe_load(UPSTREAM_DEFAULTS.read_text())
    del values["linux"]["image"]
    if not keep_windows_image:
        del values["windows"]["image"]
    values["windows"]["enabled"] = True
    path = tmp_path / "upstream-values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def test_upstream_windows_values_carry_over(helm: Helm, tmp_path: Path) -> None:
    objects = helm.template(upstream_values(tmp_path, keep_windows_image=False))
    settings = agent_settings(objects)

    # Upstream's providersDir is C:\\k\\... (doubled in its YAML); Windows reads it as C:\k\...
    assert same_path(settings.provider_volume, "C:\\k\\secrets-store-csi-providers")
    assert same_path(settings.kubelet_root_dir, "C:\\var\\lib\\kubelet")
    assert container(objects, "secrets-store")["resources"]["limits"] == {
        "cpu": "400m",
        "memory": "400Mi",
    }
    assert validation_errors(objects, NEWEST_KUBERNETES) == []


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        ([*ON, "windows.kubeletRootDir=/var/lib/kubelet"], "at '/windows/kubeletRootDir'"),
        ([*ON, "windows.stateDir=k\\state"], "at '/windows/stateDir'"),
        ([*ON, "windows.extraArgs[0]=provider-timeout=60s"], "at '/windows/extraArgs/0'"),
    ],
    ids=["posix-root", "relative-state", "bare-arg"],
)
def test_windows_values_that_cannot_work_say_what_to_change(
    helm: Helm, sets: list[str], expected: str
) -> None:
    assert expected in helm.template_error(sets=sets)


def test_upstream_windows_image_is_refused_with_what_to_change(helm: Helm, tmp_path: Path) -> None:
    message = helm.template_error(upstream_values(tmp_path, keep_windows_image=True))

    assert "windows.image.repository is the upstream driver's image" in message
    assert "remove windows.image from your values" in message
