"""The rotation flags (upstream's ``--enable-secret-rotation`` and ``--rotation-poll-interval``,
and the scheduler's own) → Settings fields. See docs/rotation.md."""

from __future__ import annotations

import argparse
from typing import Any

from agent.errors import ConfigError
from agent.flag_types import DEFAULTS, duration, go_bool


def add_rotation_flags(p: argparse.ArgumentParser) -> None:
    add = p.add_argument
    go_bool("--enable-secret-rotation", p)
    add(
        "--rotation-poll-interval",
        default=DEFAULTS.rotation_poll_interval,
        type=duration,
        help="how often mounted contents are refetched (a class annotation may set its own)",
    )
    add(
        "--rotation-min-poll-interval",
        default=DEFAULTS.rotation_min_poll_interval,
        type=duration,
        help="shortest interval a SecretProviderClass annotation may ask for, and the least "
        "time between two refresh-now rotations of a volume",
    )
    add(
        "--rotation-concurrency",
        default=DEFAULTS.rotation_concurrency,
        type=int,
        help="most provider fetches the rotation scheduler runs at once",
    )


def rotation_options(ns: argparse.Namespace) -> dict[str, Any]:
    """The Settings fields of these flags, checked; ConfigError names the flag at fault."""
    if ns.rotation_poll_interval <= 0:
        raise ConfigError("--rotation-poll-interval must be positive")
    if ns.rotation_min_poll_interval < 0:
        raise ConfigError("--rotation-min-poll-interval must not be negative")
    if ns.rotation_concurrency < 1:
        raise ConfigError("--rotation-concurrency must be at least 1")
    return {
        "enable_secret_rotation": bool(ns.enable_secret_rotation),
        "rotation_poll_interval": ns.rotation_poll_interval,
        "rotation_min_poll_interval": ns.rotation_min_poll_interval,
        "rotation_concurrency": ns.rotation_concurrency,
    }
