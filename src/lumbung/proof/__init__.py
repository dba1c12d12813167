"""Proof before the switch: recorded traffic, replayed on a candidate and compared (docs/migration.md)."""
