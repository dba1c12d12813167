"""The gateway: from a public model name to a backend."""
