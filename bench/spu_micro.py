"""SecretFlow SPU baseline for `kuvert bench micro` (mul and lt).

Runs SPU's ABY3 protocol (three parties as threads of this process, ring
FM64) through its simulator on n random 64-bit integers (|v| < 2^40), the
way SPU's own examples drive it, with SPU's profiler on. Prints one JSON
line with two timings per operation:

- "call": wall clock of the whole simulated call (SPU's input sharing and
  output reveal included): how SPU is usually measured from Python;
- "op": the duration of the operation alone, as SPU's own HLO profiler
  reports it (stricter for Kuvert: it excludes SPU's I/O).

Note: SPU's `less` returns the sign of x - y (it assumes no overflow), which
is Kuvert's `lt63`; Kuvert's `lt` is exact over the full 64-bit range.

Usage: python spu_micro.py N
"""
import json
import os
import re
import sys
import tempfile
import time

import jax.numpy as jnp
import numpy as np
import spu.libspu as libspu
import spu.utils.simulation as spsim


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    cfg = libspu.RuntimeConfig(protocol=libspu.ProtocolKind.ABY3, field=libspu.FieldType.FM64)
    cfg.enable_pphlo_profile = True
    sim = spsim.Simulator(3, cfg)
    rng = np.random.default_rng(1)
    x = rng.integers(-(2**40), 2**40, size=n, dtype=np.int64)
    y = rng.integers(-(2**40), 2**40, size=n, dtype=np.int64)
    ops = {"mul": (lambda a, b: a * b, "pphlo.multiply"), "lt": (lambda a, b: a < b, "pphlo.less")}
    res = {"n": n}
    for name, (f, hlo) in ops.items():
        g = spsim.sim_jax(sim, f)
        # SPU logs its profile from C++ to stdout: capture fd 1 around the calls.
        with tempfile.TemporaryFile(mode="w+b") as cap:
            saved = os.dup(1)
            os.dup2(cap.fileno(), 1)
            try:
                out = g(x, y)  # warm-up: compiles and runs once
                best = float("inf")
                for _ in range(3):
                    t = time.perf_counter()
                    out = g(x, y)
                    best = min(best, time.perf_counter() - t)
            finally:
                sys.stdout.flush()
                os.dup2(saved, 1)
                os.close(saved)
            cap.seek(0)
            log = cap.read().decode(errors="replace")
        expect = np.asarray(f(jnp.asarray(x), jnp.asarray(y)))
        assert np.array_equal(np.asarray(out), expect), f"SPU {name} gave a wrong answer"
        durations = [float(m) for m in re.findall(re.escape(hlo) + r", executed 1 times, duration ([0-9.e-]+)s", log)]
        op = min(durations[1:] or durations) if durations else float("nan")
        res[name] = {"call_seconds": best, "call_per_sec": n / best, "op_seconds": op, "op_per_sec": n / op}
    print(json.dumps(res))


if __name__ == "__main__":
    main()
