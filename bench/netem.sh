#!/usr/bin/env bash
# `kuvert bench micro --net` on a shaped network: the three node processes
# run in a private network namespace whose loopback is limited to 1 Gbit/s
# and, where the kernel has sch_netem, delayed 5 ms each way (10 ms RTT).
#
# Kernels without sch_netem (e.g. minimal VM kernels) get the rate limit
# only (tbf), and the script adds the latency as a model: each round waits
# for one one-way delay, so time += rounds × RTT/2. The output says which.
# The rate limit is on the shared loopback device, so 1 Gbit/s is the
# aggregate of all three links (stricter than 1 Gbit/s per node).
#
# Needs root (ip netns, tc). Usage: bench/netem.sh [N] [RTT_MS]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
rtt_ms=${2:-10}
cargo build --release -q
ns="kuvert-bench-$$"
ip netns add "$ns"
trap 'ip netns del "$ns"' EXIT
ip netns exec "$ns" ip link set lo up
half=$(python3 -c "print($rtt_ms/2)")
if ip netns exec "$ns" tc qdisc add dev lo root netem delay "${half}ms" rate 1gbit 2>/dev/null; then
  mode="netem: ${rtt_ms} ms RTT and 1 Gbit/s, emulated by the kernel"
  model=0
else
  ip netns exec "$ns" tc qdisc add dev lo root tbf rate 1gbit burst 1mb latency 100ms
  mode="tbf: 1 Gbit/s by the kernel; ${rtt_ms} ms RTT modelled (sch_netem is not available)"
  model=$rtt_ms
fi
echo "network: $mode"
json=$(ip netns exec "$ns" ./target/release/kuvert bench micro --net --no-compare --n "$n" --json | tee /dev/stderr | tail -n 1)
python3 - "$json" "$model" "$n" <<'PY'
import json, sys
r, model_rtt, n = json.loads(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
print()
print(f"n = {n}; per-op time including {'modelled' if model_rtt else 'emulated'} latency")
print(f"{'op':<8} {'seconds':>9} {'elements/s':>12} {'rounds':>7} {'latency share':>14} {'bound by':>10}")
for op, m in r.items():
    lat = m["rounds"] * model_rtt / 2000.0
    t = m["seconds"] + lat
    # Time the data needs at 1 Gbit/s: the busiest party's bytes.
    wire = m["max_bytes_per_elem"] * n * 8 / 1e9
    total_lat = m["rounds"] * (model_rtt if model_rtt else 10.0) / 2000.0
    bound = "rounds" if total_lat > wire else "bandwidth"
    print(f"{op:<8} {t:>9.3f} {n / t:>12.0f} {m['rounds']:>7} {100 * total_lat / max(t, 1e-9):>13.1f}% {bound:>10}")
PY
