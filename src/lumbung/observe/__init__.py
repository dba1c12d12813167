"""Observability: Prometheus metrics (``metrics.py``: request series; ``state.py``: gateway and engine
state read at scrape time). Above the gateway, below the surfaces that serve ``GET /metrics``."""
