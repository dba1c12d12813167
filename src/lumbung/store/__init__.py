"""The local model store."""
