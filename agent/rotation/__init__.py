"""The rotation scheduler: keeps every mounted volume's files current (docs/rotation.md).

Each mounted volume has a next-due time (``--rotation-poll-interval`` plus jitter, or its
SecretProviderClass's own interval); due volumes are grouped by fetch key so each group costs
one provider call; fetches run with bounded concurrency; a throttling provider backs off as a
whole while the others carry on; files change only when their content did.
"""
