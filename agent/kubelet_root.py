"""Is ``--kubelet-root-dir`` kubelet's? Checked once at start, from the agent's own pod.

A wrong kubelet root (Rancher ``/opt/rke/var/lib/kubelet``, MicroK8s
``/var/snap/microk8s/common/var/lib/kubelet``) is upstream's classic "driver name
secrets-store.csi.k8s.io not found in the list of registered CSI drivers" (reference
``upstream-driver.md`` §16 item 11): the registrar registers a socket path kubelet never looks
at, and the pods dir the agent mounts into is not kubelet's. Kubelet keeps a directory for every
pod it runs, the agent's own included, so ``<root>/pods/<own uid>`` exists exactly when the
root is right. The chart passes the uid as ``$POD_UID`` (downward API); without it nothing is
checked.
"""

from __future__ import annotations

import os

POD_UID_ENV = "POD_UID"

FIX = (
    "set linux.kubeletRootDir in the chart values to kubelet's --root-dir (e.g. "
    "/opt/rke/var/lib/kubelet on Rancher, /var/snap/microk8s/common/var/lib/kubelet on "
    "MicroK8s): until then kubelet does not find the driver ('driver name "
    "secrets-store.csi.k8s.io not found in the list of registered CSI drivers') and no volume "
    "mounts"
)


def kubelet_root_problem(kubelet_root_dir: str, pod_uid: str) -> str | None:
    """Why ``kubelet_root_dir`` is not kubelet's, or None (also when ``pod_uid`` is empty)."""
    if not pod_uid:
        return None
    own = os.path.join(kubelet_root_dir, "pods", pod_uid)
    if os.path.isdir(own):
        return None
    return (
        f"the agent's own pod directory {own} does not exist: {kubelet_root_dir} is not "
        "kubelet's root directory on this node"
    )
