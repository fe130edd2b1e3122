"""The volume stack of a Windows node: path-based, no POSIX directory descriptors, no symlinks.

``volumes`` checks kubelet's directories, ``writer`` replaces files one by one atomically,
``mounter`` treats the target directory as the volume, ``metadata`` and ``reader`` read and
write beside it. Everything runs on Linux too, which is how the tests exercise it
(``agent.platform.emulated_windows``).
"""
