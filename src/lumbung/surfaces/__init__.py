"""API surfaces: pure translators between each wire format and the core types, plus HTTP routes."""
