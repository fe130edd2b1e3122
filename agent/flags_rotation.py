"""The rotation flags (upstream's ``--enable-secret-rotation`` and ``--rotation-poll-interval``,
and the scheduler's own) → Settings fields. See docs/rotation.md."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from agent.config import Settings, parse_duration
from agent.errors import ConfigError

_DEFAULTS = Settings()


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_rotation_flags(
    p: argparse.ArgumentParser, go_bool: Callable[[str, argparse.ArgumentParser], None]
) -> None:
    add = p.add_argument
    go_bool("--enable-secret-rotation", p)
    add(
        "--rotation-poll-interval",
        default=_DEFAULTS.rotation_poll_interval,
        type=_duration,
        help="how often mounted contents are refetched (a class annotation may set its own)",
    )
    add(
        "--rotation-min-poll-interval",
        default=_DEFAULTS.rotation_min_poll_interval,
        type=_duration,
        help="shortest interval a SecretProviderClass annotation may ask for, and the least "
        "time between two refresh-now rotations of a volume",
    )
    add(
        "--rotation-concurrency",
        default=_DEFAULTS.rotation_concurrency,
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
