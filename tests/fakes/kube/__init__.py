"""A fake Kubernetes API server for tests; see ``tests/fakes/kube_api.py`` for the entry
points and ``docs/testing-kube-fake.md`` for the guide."""
