"""A Linux node never loads the Windows code: the composition root, a Linux agent's volume
stack and target rules leave ``agent.fs.windows`` and ``agent.targets_windows`` unimported;
asking for Windows rules loads them."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import sys
    from agent.app import build_agent
    from agent.fs.stack import build_volume_stack
    from agent.platform import linux
    from agent.targets import make_target_rules

    def loaded():
        return sorted(
            m for m in sys.modules if m.startswith(("agent.fs.windows", "agent.targets_windows"))
        )

    rules = make_target_rules("/var/lib/kubelet", windows=False)
    build_volume_stack(linux(), rules, mount_mode="tmpfs", tmpfs_size=None, max_total_bytes=1)
    print("linux", loaded() == [])
    make_target_rules("C:\\\\var\\\\lib\\\\kubelet", windows=True)
    print("windows", "agent.targets_windows" in loaded())
    """
)


def test_linux_never_loads_the_windows_modules() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["linux True", "windows True"]
