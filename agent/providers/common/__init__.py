"""Pieces shared by the in-process providers (never imports a provider package)."""
