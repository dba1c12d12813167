"""The clock moved to ``lumbung.clock`` (a leaf the engine imports too); this name stays for imports
that still use it."""

from lumbung.clock import Clock, FakeClock, Monotonic, TimerClock, monotonic

__all__ = ["Clock", "FakeClock", "Monotonic", "TimerClock", "monotonic"]
