"""Backends: the in-process llama.cpp engine and HTTP providers, behind one protocol (base.py)."""
