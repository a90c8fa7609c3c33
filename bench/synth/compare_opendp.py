"""Kuvert's DP synthesizer side by side with OpenDP's MST and AIM.

Same data, same declared domain (categories and integer bins), same zCDP
budget ρ; each tool fits and samples as many rows as the input has, and one
evaluator (below, independent of both tools) bins every synthetic table on the
declared domain and computes the total-variation distance (TVD) of every 1-way
and 2-way marginal against the real data.

    .venv/bin/pip install 'opendp[mbi]==0.16.0' polars
    .venv/bin/python bench/synth/compare_opendp.py --data adult.csv \
        --epsilon 1 --delta 1e-6 [--repeats 3] [--tools kuvert-mst,opendp-mst,opendp-aim]

Prints one line per run and a summary table; `--json FILE` writes all runs.
ρ is the one Kuvert derives from (ε, δ) (CKS conversion) and records in its
model file; OpenDP is given the same ρ. Wall times include each tool's fit
and sample, not the Python start-up or the evaluation.
"""
import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import polars as pl

BINS = 16


def domain_of(df, bins):
    """Categories of text columns; equal-width integer bins of numeric ones.

    The benchmark treats the data's own categories and ranges as public (for
    Adult they are listed in the UCI documentation); both tools get the same.
    """
    dom = {}
    for c in df.columns:
        s = df[c]
        try:
            v = s.cast(pl.Int64, strict=True)
            numeric = v.null_count() == 0
        except Exception:
            numeric = False
        if numeric:
            lo, hi = int(v.min()), int(v.max())
            # Kuvert's equal-width bins: width = ceil(span / bins) over [lo, hi].
            span = hi - lo + 1
            w = max(1, -(-span // bins))
            edges = [lo + i * w for i in range(-(-span // w))] + [hi + 1]
            dom[c] = {"kind": "int", "lo": lo, "hi": hi, "bins": bins, "edges": edges}
        else:
            dom[c] = {"kind": "cat", "values": sorted(s.unique().to_list())}
    return dom


def binned(df, dom):
    out = {}
    for c, d in dom.items():
        s = df[c]
        if d["kind"] == "int":
            edges = d["edges"]
            v = s.cast(pl.Float64, strict=False).fill_null(edges[0])
            # bin i = [edges[i], edges[i+1]); values outside go to the end bins
            out[c] = v.cut([e - 0.5 for e in edges[1:-1]], labels=[str(i) for i in range(len(edges) - 1)]).cast(pl.Utf8)
        else:
            out[c] = s.cast(pl.Utf8)
    return pl.DataFrame(out)


def tvd(real_b, syn_b, cols):
    r = real_b.group_by(cols).len().rename({"len": "r"})
    s = syn_b.group_by(cols).len().rename({"len": "s"})
    j = r.join(s, on=cols, how="full", coalesce=True).fill_null(0)
    return 0.5 * float((j["r"] / real_b.height - j["s"] / syn_b.height).abs().sum())


def evaluate(real_b, syn, dom):
    syn_b = binned(syn, dom)
    cols = list(dom)
    one = [tvd(real_b, syn_b, [c]) for c in cols]
    two = [tvd(real_b, syn_b, list(p)) for p in itertools.combinations(cols, 2)]
    return {"mean_tvd_1way": statistics.mean(one), "max_tvd_1way": max(one),
            "mean_tvd_2way": statistics.mean(two), "max_tvd_2way": max(two)}


def kuvert_schema(dom, path):
    """The same domain as a Kuvert `--schema` file."""
    lines = []
    for c, d in dom.items():
        lines.append(f'[columns.{json.dumps(c)}]')
        if d["kind"] == "int":
            lines.append('kind = "integer"')
            lines.append(f'bounds = [{d["lo"]}, {d["hi"]}]')
            lines.append(f'bins = {d["bins"]}')
        else:
            lines.append('kind = "categorical"')
            lines.append(f'categories = {json.dumps(d["values"])}')
        lines.append("")
    with open(path, "w") as f:
        f.write("\n".join(lines))


def run_kuvert(kuvert, data, schema, eps, delta, method, rows, tmp):
    out, model = os.path.join(tmp, f"kuvert-{method}.csv"), os.path.join(tmp, f"kuvert-{method}.model")
    t0 = time.time()
    subprocess.run([kuvert, "synth", "fit", "--input", data, "--schema", schema, "--epsilon", str(eps),
                    "--delta", str(delta), "--method", method, "--model", model],
                   check=True, capture_output=True)
    subprocess.run([kuvert, "synth", "sample", "--model", model, "--rows", str(rows), "--out", out],
                   check=True, capture_output=True)
    wall = time.time() - t0
    with open(model) as f:
        rho = json.load(f)["rho"]
    return pl.read_csv(out, infer_schema_length=0), wall, rho


def run_opendp(df, dom, rho, algorithm, rows):
    import opendp.prelude as dp
    dp.enable_features("contrib")
    keys = {c: d["values"] for c, d in dom.items() if d["kind"] == "cat"}
    # OpenDP bins are left-open (a, b]: integer bin [e_i, e_{i+1}) is (e_i - 1, e_{i+1} - 1].
    cuts = {c: [e - 1 for e in d["edges"][1:-1]] for c, d in dom.items() if d["kind"] == "int"}
    typed = df.with_columns(pl.col(c).cast(pl.Int64) for c in cuts)
    alg = dp.mbi.MST() if algorithm == "mst" else dp.mbi.AIM()
    # OpenDP 0.16 splits ρ in floating point and refuses some values by
    # rounding ("insufficient budget ... 0.000999999999999999 >
    # 0.0009999999999999987"); give the compositor the smallest slack that works.
    for slack in (1.0, 1 + 1e-9, 1 + 1e-6, 1 + 1e-4):
        try:
            t0 = time.time()
            ctx = dp.Context.compositor(data=typed.lazy(), privacy_unit=dp.unit_of(contributions=1),
                                        privacy_loss=dp.loss_of(rho=rho * slack))
            table = ctx.query(rho=rho).contingency_table(keys=keys, cuts=cuts, algorithm=alg).release()
            syn = table.synthesize(rows=rows, method="sample")
            wall = time.time() - t0
            break
        except Exception as e:  # noqa: BLE001 - OpenDP raises OpenDPException
            if "insufficient budget" not in str(e):
                raise
    else:
        raise SystemExit("OpenDP refused every ρ slack")
    # Map OpenDP's bin labels back to a value inside the bin, for the common evaluator.
    for c, d in dom.items():
        if d["kind"] == "int":
            e = d["edges"]
            labels = {f"({lb}, {rb}]": str(lo) for lb, rb, lo in
                      zip(["-inf", *[x - 1 for x in e[1:-1]]], [*[x - 1 for x in e[1:-1]], "inf"], e[:-1])}
            syn = syn.with_columns(pl.col(c).cast(pl.Utf8).replace(labels))
    return syn.select(df.columns).cast(pl.Utf8), wall


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--kuvert", default="target/release/kuvert")
    ap.add_argument("--epsilon", type=float, default=1.0)
    ap.add_argument("--delta", type=float, default=1e-6)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--bins", type=int, default=BINS)
    ap.add_argument("--tools", default="kuvert-mst,opendp-mst")
    ap.add_argument("--json")
    a = ap.parse_args()

    df = pl.read_csv(a.data, infer_schema_length=0)
    dom = domain_of(df, a.bins)
    real_b = binned(df, dom)
    tmp = tempfile.mkdtemp(prefix="kuvert-synth-cmp-")
    schema = os.path.join(tmp, "schema.toml")
    kuvert_schema(dom, schema)
    rho = None
    runs = []
    for rep in range(a.repeats):
        for tool in a.tools.split(","):
            vendor, method = tool.split("-")
            if vendor == "kuvert":
                syn, wall, rho_k = run_kuvert(a.kuvert, a.data, schema, a.epsilon, a.delta, method, df.height, tmp)
                rho = rho_k
            else:
                if rho is None:
                    raise SystemExit("list a kuvert tool first: OpenDP gets the ρ Kuvert derives")
                syn, wall = run_opendp(df, dom, rho, method, df.height)
            m = evaluate(real_b, syn, dom)
            m.update(tool=tool, repeat=rep, seconds=wall, rho=rho)
            runs.append(m)
            print(json.dumps(m), flush=True)
    print(f"\n{a.data}: {df.height} rows x {df.width} columns, epsilon={a.epsilon}, delta={a.delta}, rho={rho:.6f}, {a.repeats} run(s) each")
    print(f"{'tool':<12} {'fit+sample s':>13} {'mean TVD 1-way':>15} {'mean TVD 2-way':>15} {'max TVD 2-way':>14}")
    for tool in a.tools.split(","):
        rs = [r for r in runs if r["tool"] == tool]
        f = lambda k: statistics.mean(r[k] for r in rs)
        sd = lambda k: (statistics.stdev(r[k] for r in rs) if len(rs) > 1 else 0.0)
        print(f"{tool:<12} {f('seconds'):>13.2f} {f('mean_tvd_1way'):>9.4f}±{sd('mean_tvd_1way'):.4f} "
              f"{f('mean_tvd_2way'):>9.4f}±{sd('mean_tvd_2way'):.4f} {f('max_tvd_2way'):>14.4f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"data": a.data, "rows": df.height, "epsilon": a.epsilon, "delta": a.delta, "rho": rho,
                       "runs": runs}, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
