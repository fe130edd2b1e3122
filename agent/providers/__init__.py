"""In-process secret-store providers and the registry that finds them by name."""
