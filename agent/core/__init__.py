"""Use cases (publish, unpublish, recovery). Reaches the outside only through agent.ports."""
