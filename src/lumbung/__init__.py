"""lumbung: a self-hosted AI server and gateway for open-weight models."""

__version__ = "0.1.0"
