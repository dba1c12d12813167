"""Whether llama.cpp may use its AMX kernels for a model on this machine.

A llama-cpp-python built natively on a CPU that reports Intel AMX (Xeon 4th generation and later)
compiles llama.cpp's AMX backend in, and llama.cpp then repacks most weights for it. On some
machines, virtual ones in particular, those kernels kill the process on the first decode: a
segfault at ``ldtilecfg`` or an illegal instruction in ``ggml_backend_amx_mul_mat`` (llama.cpp issue
20824). Measured on lumbung's 2-core development VM with llama-cpp-python 0.3.36 and with a newer
llama.cpp alike. A crash inside llama.cpp cannot be caught: it would take the whole server down.

So where the build has AMX and the setting is ``auto``, the first load of each model file is tried
in a child process (``python -m lumbung.engines.llamacpp.amx MODEL``: load, read a prompt, decode a
few rows, the kernel shapes serving uses); only if the child survives does the server load the model
with llama.cpp's extra buffer types. Otherwise the model loads without them (plain CPU kernels) and
a warning says why. Builds without AMX (the portable wheel, non-Intel CPUs) skip all of this.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from functools import cache
from pathlib import Path

from lumbung.config import AmxMode

__all__ = ["build_has_amx", "probe", "use_extra_buffers"]

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 300.0  # seconds: a large model's load and repack in the child

_lock = threading.Lock()
_verdicts: dict[tuple[str, int, int], bool] = {}


@cache
def build_has_amx() -> bool:
    """Whether the llama.cpp this process runs was compiled with its AMX kernels."""
    import llama_cpp

    info: bytes = llama_cpp.llama_print_system_info()
    return b"AMX_INT8 = 1" in info


def use_extra_buffers(path: Path, mode: AmxMode) -> bool:
    """Whether to load ``path`` with llama.cpp's extra buffer types (AMX, weight repacking).

    Off only where the build has AMX and the setting, or the child's crash, says so: in builds
    without AMX the extra buffer types are the safe, faster weight repacking for AVX2/AVX-512."""
    if mode == "on" or not build_has_amx():
        return True
    if mode == "off":
        return False
    if not path.is_file():
        return True  # nothing to try: LlamaModel reports the missing file in its own words
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _lock:  # one child at a time; a second load of the same file waits for the verdict
        if key not in _verdicts:
            failure = probe(path)
            if failure:
                log.warning(
                    "llama.cpp's AMX kernels failed a trial run of %s on this machine: %s "
                    "(llama.cpp issue 20824). Loading it without them; `amx: on` forces them, "
                    "`amx: off` skips the trial.",
                    path.name,
                    failure,
                )
            _verdicts[key] = failure is None
        return _verdicts[key]


def probe(path: Path, argv: list[str] | None = None, timeout: float = PROBE_TIMEOUT) -> str | None:
    """Run the trial in a child process: None if it exits cleanly within ``timeout``, else why not."""
    cmd = argv or [sys.executable, "-m", "lumbung.engines.llamacpp.amx", str(path)]
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return f"it did not finish in {timeout:.0f} s"
    if done.returncode < 0:
        try:
            return f"it was killed by {signal.Signals(-done.returncode).name}"
        except ValueError:
            return f"it was killed by signal {-done.returncode}"
    if done.returncode > 0:
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
        return f"it exited with status {done.returncode} ({tail[0][:200]})"
    return None


def _trial(path: Path) -> None:
    """Load with the default (extra) buffer types and decode the shapes serving uses: a prompt of
    48 rows, a step of 4 sequences, a step of one."""
    import llama_cpp

    from lumbung.engines.llamacpp.model import LlamaModel  # loads with the extra buffer types

    try:
        model = LlamaModel(path)
    except Exception as exc:  # not an AMX verdict; the server's own load will say the same
        raise SystemExit(str(exc)) from None
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = 256
    params.n_batch = params.n_ubatch = 64
    params.n_seq_max = 4
    params.n_threads = params.n_threads_batch = min(2, os.cpu_count() or 1)
    ctx = llama_cpp.llama_init_from_model(model.ptr, params)
    batch = llama_cpp.llama_batch_init(64, 0, 1)
    next_pos = [0, 0, 0, 0]
    for seqs in ([0] * 48, [0, 1, 2, 3], [0, 1, 2, 3], [0]):
        batch.n_tokens = len(seqs)
        for i, seq in enumerate(seqs):
            batch.token[i] = (seq * 131 + next_pos[seq] * 7 + 1) % model.n_vocab
            batch.pos[i] = next_pos[seq]
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = True
            next_pos[seq] += 1
        if llama_cpp.llama_decode(ctx, batch) != 0:
            raise SystemExit("llama_decode failed in the AMX trial")


if __name__ == "__main__":
    _trial(Path(sys.argv[1]))
