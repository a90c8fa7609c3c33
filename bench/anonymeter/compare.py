"""Compare `kuvert risk` with Anonymeter 1.1.0 on the same 100k-row data.

Data: `kuvert deid gen` (Adult-like, seeded). ori = 100k rows, control =
100k other rows of the same generator, released = 50k copies of ori rows plus
50k rows from an independent run (a planted partial leak).

Run from the repository root after building kuvert in release mode:
    .venv/bin/python bench/anonymeter/compare.py [KUVERT_BINARY]
Prints one JSON object with both tools' risks, intervals and wall times.
"""
import json, subprocess, sys, time, os, tempfile
import pandas as pd

KUVERT = sys.argv[1] if len(sys.argv) > 1 else "target/release/kuvert"
N = int(os.environ.get("N", "100000"))
N_ATTACKS = int(os.environ.get("N_ATTACKS", "500"))
COLS = ["age", "sex", "postcode", "education", "marital_status", "occupation", "hours_per_week", "diagnosis"]
QUASI = COLS[:-1]
SECRET = "diagnosis"

d = tempfile.mkdtemp(prefix="kuvert-anonymeter-")
def gen(rows, seed, name):
    p = os.path.join(d, name)
    subprocess.run([KUVERT, "deid", "gen", "--rows", str(rows), "--seed", str(seed), "--out", p], check=True, capture_output=True)
    return pd.read_csv(p, dtype={"postcode": "int64"})[COLS]

both = gen(2 * N, 7, "both.csv")
ori, control = both.iloc[:N].reset_index(drop=True), both.iloc[N:].reset_index(drop=True)
other = gen(N // 2, 8, "other.csv")
released = pd.concat([ori.sample(N - N // 2, random_state=1), other]).sample(frac=1, random_state=2).reset_index(drop=True)
paths = {}
for name, df in [("ori", ori), ("control", control), ("released", released)]:
    paths[name] = os.path.join(d, name + ".csv")
    df.to_csv(paths[name], index=False)

# kuvert
t0 = time.time()
out = subprocess.run([KUVERT, "risk", "--original", paths["ori"], "--released", paths["released"], "--control", paths["control"],
                      "--quasi", ",".join(QUASI), "--sensitive", SECRET, "--attacks", str(N_ATTACKS), "--json"],
                     check=True, capture_output=True, text=True)
kuvert_s = time.time() - t0
k = json.loads(out.stdout.strip().splitlines()[-1])

# Anonymeter
from anonymeter.evaluators import SinglingOutEvaluator, LinkabilityEvaluator, InferenceEvaluator
res = {}
t0 = time.time()
so = SinglingOutEvaluator(ori=ori, syn=released, control=control, n_attacks=N_ATTACKS, n_cols=3, seed=1).evaluate(mode="multivariate")
res["singling_out"] = so.risk()
half = len(QUASI) // 2
li = LinkabilityEvaluator(ori=ori, syn=released, control=control, n_attacks=N_ATTACKS, aux_cols=(QUASI[:half], QUASI[half:]), n_neighbors=1).evaluate(n_jobs=-1)
res["linkability"] = li.risk()
inf = InferenceEvaluator(ori=ori, syn=released, control=control, aux_cols=QUASI, secret=SECRET, n_attacks=N_ATTACKS).evaluate(n_jobs=-1)
res["inference"] = inf.risk()
anon_s = time.time() - t0

report = {"rows": N, "attacks": N_ATTACKS, "kuvert_seconds": kuvert_s, "anonymeter_seconds": anon_s,
          "speedup": anon_s / kuvert_s}
for name in ["singling_out", "linkability", "inference"]:
    a = res[name]
    kk = k[name]
    overlap = not (kk["risk_ci"][1] < a.ci[0] or a.ci[1] < kk["risk_ci"][0])
    report[name] = {"kuvert": {"risk": kk["risk"], "ci": kk["risk_ci"]},
                    "anonymeter": {"risk": a.value, "ci": list(a.ci)},
                    "intervals_overlap": overlap}
print(json.dumps(report))
