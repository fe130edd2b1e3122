"""Faithful fakes of external services the agent talks to, for which no emulator exists."""
