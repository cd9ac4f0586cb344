"""Reads an exported tree (or a store's Parquet archives) with DuckDB, pyarrow and polars and
compares every row with the CSV that `tickrec query range all --format csv` printed for the
same range.

    python check_export.py TREE EXPECTED.csv            an export: TREE/date=YYYY-MM-DD/part-0.parquet
    python check_export.py BASE EXPECTED.csv --archive  archives: BASE/YYYY/MM/ticks_YYYY-MM-DD.parquet

Prints `OK <rows>` or the first difference, and exits 1 on a difference.
"""
import csv
import sys
from decimal import Decimal

import duckdb
import polars as pl
import pyarrow.dataset as ds

tree, expected_csv = sys.argv[1], sys.argv[2]
archive = "--archive" in sys.argv[3:]
files = f"{tree}/*/*/ticks_*.parquet" if archive else f"{tree}/**/*.parquet"
COLS = ["seq", "symbol", "ts_event_ns", "ts_recv_ns", "bid", "ask", "bid_size", "ask_size", "source"]


def norm(v):
    if v is None or v == "":
        return None
    if isinstance(v, Decimal):
        return v.normalize()
    if isinstance(v, str) and v[:1].isdigit() and "." in v:
        return Decimal(v).normalize()
    if isinstance(v, str) and v.isdigit():
        return int(v)
    return v


with open(expected_csv) as f:
    want = [tuple(norm(r[c]) if c not in ("symbol", "source") else r[c] for c in COLS)
            for r in csv.DictReader(f)]

def decimals_exact(rows):
    return [tuple(norm(v) if i not in (1, 8) else v for i, v in enumerate(r)) for r in rows]


# Rows of two days are told apart by their event time (a day file holds its own day).
order = "ORDER BY ts_event_ns, seq"
engines = {}
con = duckdb.connect()
engines["duckdb"] = con.execute(
    f"SELECT {', '.join(COLS)}, epoch_us(ts_event) AS us FROM read_parquet('{files}', "
    f"hive_partitioning={'false' if archive else 'true'}, union_by_name=true) {order}").fetchall()
if archive:
    import glob
    table = ds.dataset(sorted(glob.glob(files)), format="parquet").to_table()
else:
    table = ds.dataset(tree, format="parquet", partitioning="hive").to_table()
engines["pyarrow"] = sorted(
    (tuple(r[c] for c in COLS) + (int(r["ts_event"].timestamp() * 1_000_000),)
     for r in table.to_pylist()),
    key=lambda r: (r[2], r[0]))
frame = pl.read_parquet(files, hive_partitioning=not archive).sort(["ts_event_ns", "seq"])
engines["polars"] = [tuple(r[c] for c in COLS) + (int(r["ts_event"].timestamp() * 1_000_000),)
                     for r in frame.iter_rows(named=True)]
# The expected rows in the same order (the store's order is (ts_event, seq) within a day).
want_sorted = sorted(want, key=lambda r: (r[2], r[0]))
for name, rows in engines.items():
    if len(rows) != len(want_sorted):
        print(f"{name}: {len(rows)} rows, expected {len(want_sorted)}")
        sys.exit(1)
    for got, exp in zip(rows, want_sorted):
        g = decimals_exact([got[:-1]])[0]
        if g != exp:
            print(f"{name}: {got} != {exp}")
            sys.exit(1)
        # ts_event as a timestamp: the microsecond floor of ts_event_ns.
        if got[-1] != got[2] // 1000:
            print(f"{name}: ts_event {got[-1]} is not ts_event_ns {got[2]} in microseconds")
            sys.exit(1)
print(f"OK {len(want_sorted)}")
