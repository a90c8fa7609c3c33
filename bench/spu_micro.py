"""SecretFlow SPU baseline for `kuvert bench micro` (mul and lt).

Runs SPU's ABY3 protocol (three parties as threads of this process, ring
FM64) through its simulator on n random 64-bit integers, the way SPU's own
examples drive it. Each timed call includes SPU's input sharing and output
reveal, so the script also times `x + y` (no communication in the
computation itself) and reports the op time both raw and with that baseline
subtracted; the ratio printed by compare_spu.sh uses the subtracted time,
which favours SPU.

Usage: python spu_micro.py N  -> prints one JSON line.
"""
import json
import sys
import time

import jax.numpy as jnp
import numpy as np
import spu.libspu as libspu
import spu.utils.simulation as spsim


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    sim = spsim.Simulator.simple(3, libspu.ProtocolKind.ABY3, libspu.FieldType.FM64)
    rng = np.random.default_rng(1)
    x = rng.integers(-(2**40), 2**40, size=n, dtype=np.int64)
    y = rng.integers(-(2**40), 2**40, size=n, dtype=np.int64)
    fns = {
        "add": lambda a, b: a + b,
        "mul": lambda a, b: a * b,
        "lt": lambda a, b: a < b,
    }
    secs = {}
    for name, f in fns.items():
        g = spsim.sim_jax(sim, f)
        out = g(x, y)  # warm-up: compiles and runs once
        best = float("inf")
        for _ in range(2):
            t = time.perf_counter()
            out = g(x, y)
            best = min(best, time.perf_counter() - t)
        secs[name] = best
        expect = np.asarray(f(jnp.asarray(x), jnp.asarray(y)))
        assert np.array_equal(np.asarray(out), expect), f"SPU {name} gave a wrong answer"
    res = {"n": n}
    for name in ("mul", "lt"):
        net = max(secs[name] - secs["add"], 1e-9)
        res[name] = {
            "seconds_raw": secs[name],
            "seconds_minus_io": net,
            "per_sec_raw": n / secs[name],
            "per_sec": n / net,
        }
    res["add_seconds"] = secs["add"]
    print(json.dumps(res))


if __name__ == "__main__":
    main()
