#!/usr/bin/env bash
# Kuvert's micro benchmark next to SecretFlow SPU 0.9.5 (ABY3), same machine,
# back to back. Needs a Python with spu==0.9.5 (pip install spu==0.9.5);
# set SPU_PYTHON to its interpreter (default: python3).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
py=${SPU_PYTHON:-python3}
cargo build --release -q
kuvert_json=$(./target/release/kuvert bench micro --n "$n" --ops mul,lt --json | tail -n 1)
spu_json=$("$py" bench/spu_micro.py "$n" | tail -n 1)
"$py" - "$kuvert_json" "$spu_json" <<'PY'
import json, sys
k, s = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"n = {s['n']}")
print(f"{'op':<5} {'kuvert/s':>14} {'SPU/s (raw)':>14} {'SPU/s (-io)':>14} {'ratio':>8}")
for op in ("mul", "lt"):
    ratio = k[op]["per_sec"] / s[op]["per_sec"]
    print(f"{op:<5} {k[op]['per_sec']:>14.0f} {s[op]['per_sec_raw']:>14.0f} {s[op]['per_sec']:>14.0f} {ratio:>7.1f}x")
PY
