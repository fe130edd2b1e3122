"""Pure codecs for the CRD documents, shared by the API adapter and standalone mode."""
