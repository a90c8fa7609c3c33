#!/usr/bin/env bash
# Kuvert's micro benchmark next to SecretFlow SPU 0.9.5 (ABY3), same machine,
# back to back. Needs a Python with spu==0.9.5 (pip install spu==0.9.5);
# set SPU_PYTHON to its interpreter (default: python3).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
py=${SPU_PYTHON:-python3}
cargo build --release -q
kuvert_json=$(./target/release/kuvert bench micro --n "$n" --ops mul,lt,lt63 --json | tail -n 1)
spu_json=$("$py" bench/spu_micro.py "$n" 2>/dev/null | tail -n 1)
"$py" - "$kuvert_json" "$spu_json" <<'PY'
import json, sys
k, s = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"n = {s['n']}; elements per second; ratio = Kuvert / SPU")
print(f"{'Kuvert op':<10} {'Kuvert':>12} {'SPU op':<8} {'SPU call':>12} {'SPU op only':>12} {'vs call':>8} {'vs op':>8}")
for kop, sop, note in (("mul", "mul", ""), ("lt", "lt", "exact, 64-bit"), ("lt63", "lt", "same semantics as SPU")):
    kv = k[kop]["per_sec"]
    print(f"{kop:<10} {kv:>12.0f} {sop:<8} {s[sop]['call_per_sec']:>12.0f} {s[sop]['op_per_sec']:>12.0f} "
          f"{kv / s[sop]['call_per_sec']:>7.1f}x {kv / s[sop]['op_per_sec']:>7.1f}x  {note}")
PY
