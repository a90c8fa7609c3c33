"""Accuracy at equal ε: Kuvert's `kuvert dp release` against OpenDP (PyPI
`opendp`) on the same machine, for a count, a clamped sum and a 4-key
histogram, plus an (ε, δ) count; and time per release.

Usage (from the repository root, with a release build of `kuvert`):
    python3 -m venv .venv && .venv/bin/pip install opendp==0.16.0
    .venv/bin/python crates/kuvert-dp/bench/opendp_compare.py target/release/kuvert

Prints a Markdown table: empirical RMSE of each tool over many releases, and
the analytic noise std each tool declares.
"""
import csv, json, math, os, random, subprocess, sys, tempfile, time

import opendp.prelude as dp

dp.enable_features("contrib")

KUVERT = sys.argv[1] if len(sys.argv) > 1 else "target/release/kuvert"
N_KUVERT = int(os.environ.get("N_KUVERT", "200"))
N_OPENDP = int(os.environ.get("N_OPENDP", "2000"))
ROWS = 10_000
KEYS = ["north", "south", "east", "west"]

rng = random.Random(7)
data = [(i, rng.randint(0, 150), KEYS[rng.randrange(4)]) for i in range(ROWS)]
tmp = tempfile.mkdtemp()
path = os.path.join(tmp, "t.csv")
with open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["pid", "amount", "region"])
    w.writerows(data)

true_count = ROWS
true_sum = sum(min(max(a, 0), 100) for _, a, _ in data)
true_hist = [sum(1 for _, _, r in data if r == k) for k in KEYS]


def kuvert(sql, eps, extra=()):
    args = [KUVERT, "dp", "release", "--table", f"t={path}", "--sql", sql,
            "--epsilon", str(eps), "--json", *extra]
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def rmse(errs):
    return math.sqrt(sum(e * e for e in errs) / len(errs))


rows = []

for eps in [0.1, 1.0]:
    # --- count, pure ε ---
    t0 = time.perf_counter()
    ks = [kuvert("SELECT COUNT(*) AS n FROM t", eps) for _ in range(N_KUVERT)]
    k_time = (time.perf_counter() - t0) / N_KUVERT
    k_err = [r["values"][0]["n"] - true_count for r in ks]
    space = dp.vector_domain(dp.atom_domain(T=int)), dp.symmetric_distance()
    meas = space >> dp.t.then_count() >> dp.m.then_laplace(scale=1.0 / eps)
    assert meas.map(1) <= eps + 1e-12
    col = [a for _, a, _ in data]
    t0 = time.perf_counter()
    o_err = [meas(col) - true_count for _ in range(N_OPENDP)]
    o_time = (time.perf_counter() - t0) / N_OPENDP
    q = math.exp(-eps)
    std = math.sqrt(2 * q) / (1 - q)
    rows.append(("count", f"ε={eps}", rmse(k_err), ks[0]["noise_std"], rmse(o_err), std, k_time, o_time))

    # --- clamped sum, pure ε ---
    ks = [kuvert("SELECT SUM(amount) AS s FROM t", eps, ["--bounds", "amount=0:100"]) for _ in range(N_KUVERT)]
    k_err = [r["values"][0]["s"] - true_sum for r in ks]
    meas = (space >> dp.t.then_clamp(bounds=(0, 100)) >> dp.t.then_sum()
            >> dp.m.then_laplace(scale=100.0 / eps))
    assert meas.map(1) <= eps + 1e-9
    t0 = time.perf_counter()
    o_err = [meas(col) - true_sum for _ in range(N_OPENDP)]
    o_time = (time.perf_counter() - t0) / N_OPENDP
    q = math.exp(-eps / 100.0)
    std = math.sqrt(2 * q) / (1 - q)
    rows.append(("sum [0,100]", f"ε={eps}", rmse(k_err), ks[0]["noise_std"], rmse(o_err), std, float("nan"), o_time))

    # --- histogram over 4 declared keys, pure ε ---
    ks = [kuvert("SELECT region, COUNT(*) AS n FROM t GROUP BY region", eps,
                 ["--keys", "region=" + ",".join(KEYS)]) for _ in range(N_KUVERT)]
    k_err = [row["n"] - true_hist[i] for r in ks for i, row in enumerate(r["values"])]
    sspace = dp.vector_domain(dp.atom_domain(T=str)), dp.symmetric_distance()
    meas = (sspace >> dp.t.then_count_by_categories(categories=KEYS, null_category=False)
            >> dp.m.then_laplace(scale=1.0 / eps))
    assert meas.map(1) <= eps + 1e-12
    regions = [r for _, _, r in data]
    t0 = time.perf_counter()
    o_err = []
    for _ in range(N_OPENDP // 4):
        v = meas(regions)
        o_err += [v[i] - true_hist[i] for i in range(4)]
    o_time = (time.perf_counter() - t0) / (N_OPENDP // 4)
    q = math.exp(-eps)
    std = math.sqrt(2 * q) / (1 - q)
    rows.append(("histogram 4 keys", f"ε={eps}", rmse(k_err), ks[0]["noise_std"], rmse(o_err), std, float("nan"), o_time))

    # --- count, (ε, δ = 1e-6): discrete Gaussian; OpenDP scale found by binary search ---
    ks = [kuvert("SELECT COUNT(*) AS n FROM t", eps, ["--delta", "1e-6"]) for _ in range(N_KUVERT)]
    k_err = [r["values"][0]["n"] - true_count for r in ks]

    def make(scale):
        m = space >> dp.t.then_count() >> dp.m.then_gaussian(scale=scale)
        return dp.c.make_zCDP_to_approxDP(m)

    lo, hi = 0.01, 1e4
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        if make(mid).map(1).epsilon(1e-6) <= eps:
            hi = mid
        else:
            lo = mid
    meas = make(hi)
    t0 = time.perf_counter()
    o_err = [meas(col) - true_count for _ in range(N_OPENDP)]
    o_time = (time.perf_counter() - t0) / N_OPENDP
    rows.append(("count, δ=1e-6", f"ε={eps}", rmse(k_err), ks[0]["noise_std"], rmse(o_err), hi, float("nan"), o_time))

print(f"rows={ROWS}, kuvert releases per cell={N_KUVERT}, opendp releases per cell={N_OPENDP}")
print("| query | ε | Kuvert RMSE | Kuvert declared std | OpenDP RMSE | OpenDP scale/std | Kuvert s/release (CLI, incl. process + CSV) | OpenDP s/release (in-process) |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for r in rows:
    kt = "" if math.isnan(r[6]) else f"{r[6]:.4f}"
    print(f"| {r[0]} | {r[1]} | {r[2]:.3f} | {r[3]:.3f} | {r[4]:.3f} | {r[5]:.3f} | {kt} | {r[7]:.6f} |")
