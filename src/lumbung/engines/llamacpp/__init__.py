"""The in-process llama.cpp engine.

llama.cpp's CPU threads meet at a barrier hundreds of times per token; with OpenMP (how the
llama-cpp-python wheels are built) a waiting thread spins by default. When anything else wants a
core (the server's own event loop, another process), spinning threads starve the one they wait
for: measured on 2 busy cores, 1-1.6 tokens/s spinning against 11-18 sleeping. libgomp reads this
when it is loaded, so it is set before llama_cpp is imported; a value set by the user wins.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
