"""API keys, limits and usage."""
