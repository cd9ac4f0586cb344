"""Archive sizes on real quote ticks: each real-data file ingested into a day, then archived as
Parquet and as .db.zst, and the same rows written by DuckDB's Parquet writer.

    python tools/realdata_sizes.py TICKREC_BINARY REALDATA_DIR [CONFIG]

REALDATA_DIR holds tardis_quotes.csv (Tardis BTCUSDT), quote_tick_data.csv (HistData EURUSD)
and truefx/usdjpy-ticks.csv (TrueFX USDJPY). Needs duckdb (tools/install-research.sh). Prints
one line per file: rows, then bytes/tick of the live day file, the symbol block files beside
it, .db.zst, Parquet and DuckDB. CONFIG, when given, is the configuration the ticks are
ingested with (e.g. one with `[writer] symbol_blocks = false`, for a live day without blocks).
"""
import datetime
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

import duckdb

tickrec, realdata = sys.argv[1], sys.argv[2]
config = ["--config", sys.argv[3]] if len(sys.argv) > 3 else []


def tardis(path):
    with open(path) as f:
        next(f)
        for line in f:
            _ex, sym, ts, local, ask_amt, ask, bid, bid_amt = line.strip().split(",")
            yield {"symbol": sym, "bid": bid, "ask": ask, "bid_size": bid_amt, "ask_size": ask_amt,
                   "source": "binance-futures", "ts_event": int(ts) * 1000, "ts_recv": int(local) * 1000}


def histdata(path):
    with open(path) as f:
        for line in f:
            stamp, bid, ask, _vol = line.strip().split(",")
            t = datetime.datetime.strptime(stamp, "%Y%m%d %H%M%S%f").replace(tzinfo=datetime.timezone.utc)
            ns = int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1000
            yield {"symbol": "EURUSD", "bid": bid, "ask": ask, "source": "histdata", "ts_event": ns}


def truefx(path):
    with open(path) as f:
        next(f)
        for line in f:
            stamp, bid, ask = line.strip().split(",")
            t = datetime.datetime.fromisoformat(stamp)
            ns = int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1000
            yield {"symbol": "USDJPY", "bid": bid, "ask": ask, "source": "truefx", "ts_event": ns}


def run(*args, **kw):
    out = subprocess.run(args, capture_output=True, text=True, **kw)
    if out.returncode != 0:
        sys.exit(f"{' '.join(args)}: {out.stderr}")
    return out.stdout


print(f"{'file':28s} {'rows':>7s} {'live':>7s} {'blocks':>7s} {'db.zst':>7s} {'parquet':>8s} {'duckdb':>7s}  (bytes/tick)")
for name, rel, reader in [("Tardis BTCUSDT", "tardis_quotes.csv", tardis),
                          ("HistData EURUSD", "quote_tick_data.csv", histdata),
                          ("TrueFX USDJPY", "truefx/usdjpy-ticks.csv", truefx)]:
    with tempfile.TemporaryDirectory() as tmp:
        lines = "".join(json.dumps(r) + "\n" for r in reader(os.path.join(realdata, rel)))
        rows = lines.count("\n")
        base, zbase = os.path.join(tmp, "db"), os.path.join(tmp, "zst")
        run(tickrec, "--db", base, "ingest", *config, "-", input=lines)
        days = sorted(glob.glob(f"{base}/*/*/ticks_*.db"))
        live = sum(os.path.getsize(d) for d in days)
        blocks = sum(os.path.getsize(p) for ext in ("blocks", "blockidx", "blocktail")
                     for p in glob.glob(f"{base}/*/*/ticks_*.{ext}"))
        shutil.copytree(base, zbase)
        run(tickrec, "--db", zbase, "archive", "--older-than", "1d", "--format", "sqlite-zst")
        run(tickrec, "--db", base, "archive", "--older-than", "1d")
        zst = sum(os.path.getsize(p) for p in glob.glob(f"{zbase}/*/*/ticks_*.db.zst"))
        parquets = sorted(glob.glob(f"{base}/*/*/ticks_*.parquet"))
        pq = sum(os.path.getsize(p) for p in parquets)
        duck = 0
        for i, p in enumerate(parquets):
            dest = os.path.join(tmp, f"duck-{i}.parquet")
            duckdb.sql(f"COPY (SELECT seq, symbol, ts_event_ns, ts_event, ts_recv_ns, bid, ask, bid_size, "
                       f"ask_size, source FROM read_parquet('{p}') ORDER BY symbol, ts_event_ns, seq) TO '{dest}' "
                       f"(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 9, PARQUET_VERSION V2)")
            duck += os.path.getsize(dest)
        print(f"{name:28s} {rows:7d} {live / rows:7.1f} {blocks / rows:7.1f} {zst / rows:7.3f} {pq / rows:8.3f} {duck / rows:7.3f}"
              f"  ({len(parquets)} day(s))")
