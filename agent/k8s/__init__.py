"""Kubernetes mode: the only package that talks to the API (kubernetes_asyncio)."""
