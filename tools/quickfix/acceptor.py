#!/usr/bin/env python3
"""QuickFIX (C++ engine) market-data acceptor for tickrec's interoperability test.

Waits for an initiator to log on and send a MarketDataRequest, streams a 35=W snapshot per
requested symbol and 35=X incrementals (random walk, several entries sometimes, Deletes
sometimes), cuts the connection mid-stream and keeps sending while the initiator is away
(QuickFIX stores those messages and resends them when asked), then streams more after the
initiator is back. Every application message it sends first-hand is journaled as the ticks it
implies (tickrec's JSON Lines input format), so the test can compare the recorder's database
with what was sent, tick for tick.

Usage: acceptor.py --port P --journal FILE --workdir DIR [--before N] [--outage N] [--after N]
Exit code 0 after a complete run; 2 when the initiator did not show up in time.
"""
import argparse
import json
import os
import random
import sys
import threading
import time

import quickfix as fix
import quickfix44 as fix44


def fix_time_to_rfc3339(t):
    # 20261123-10:00:00.123456 -> 2026-11-23T10:00:00.123456Z
    return f"{t[0:4]}-{t[4:6]}-{t[6:8]}T{t[9:]}Z"


class App(fix.Application):
    def __init__(self, journal):
        super().__init__()
        self.journal = journal
        self.books = {}
        self.pending = []  # implied ticks of the message being sent, journaled in toApp
        self.logons = 0
        self.logged_on = threading.Event()
        self.requested = threading.Event()
        self.symbols = []
        self.session_id = None
        self.lock = threading.Lock()
        # While set, Logons are refused: the initiator stays away and can only get the
        # messages sent meanwhile by asking for a resend.
        self.refuse_logons = False

    def onCreate(self, session_id):
        self.session_id = session_id

    def onLogon(self, session_id):
        self.logons += 1
        self.logged_on.set()

    def onLogout(self, session_id):
        self.logged_on.clear()

    def toAdmin(self, message, session_id):
        pass

    def fromAdmin(self, message, session_id):
        if self.refuse_logons and message.getHeader().getField(35) == "A":
            raise fix.RejectLogon("simulated outage")

    def toApp(self, message, session_id):
        header = message.getHeader()
        if header.isSetField(43) and header.getField(43) == "Y":
            return  # a resend: journaled when first sent
        sent = fix_time_to_rfc3339(header.getField(52))
        for row in self.pending:
            row["ts_event"] = sent
            self.journal.write(json.dumps(row) + "\n")
        self.pending = []

    def fromApp(self, message, session_id):
        if message.getHeader().getField(35) == "V":
            group = fix44.MarketDataRequest.NoRelatedSym()
            symbols = []
            for i in range(1, int(message.getField(146)) + 1):
                message.getGroup(i, group)
                symbols.append(group.getField(55))
            self.symbols = symbols
            self.requested.set()


def price(v, decimals):
    return f"{v / 10 ** decimals:.{decimals}f}"


class Streamer:
    def __init__(self, app, seed):
        self.app = app
        self.rng = random.Random(seed)
        self.mids = {}

    def quote(self, sym):
        decimals = 3 if sym.endswith("JPY") else 5
        mid = self.mids.get(sym, 150_000 if decimals == 3 else 108_500)
        mid += self.rng.randint(-3, 3)
        self.mids[sym] = mid
        half = self.rng.randint(1, 4)
        return (price(mid - half, decimals), price(mid + half, decimals),
                str(self.rng.randint(1, 10) * 1_000_000), str(self.rng.randint(1, 10) * 1_000_000))

    def implied(self, sym):
        b = self.app.books[sym]
        return {"symbol": sym, "bid": b.get("bid"), "ask": b.get("ask"),
                "bid_size": b.get("bid_size"), "ask_size": b.get("ask_size"), "source": "QF"}

    def send(self, message, touched):
        with self.app.lock:
            self.app.pending = [self.implied(s) for s in touched]
            fix.Session.sendToTarget(message, self.app.session_id)

    def snapshot(self, sym):
        bid, ask, bsz, asz = self.quote(sym)
        self.app.books[sym] = {"bid": bid, "ask": ask, "bid_size": bsz, "ask_size": asz}
        m = fix44.MarketDataSnapshotFullRefresh()
        m.setField(fix.StringField(55, sym))
        for kind, px, sz in (("0", bid, bsz), ("1", ask, asz)):
            g = fix44.MarketDataSnapshotFullRefresh.NoMDEntries()
            g.setField(fix.StringField(269, kind))
            g.setField(fix.StringField(270, px))
            g.setField(fix.StringField(271, sz))
            m.addGroup(g)
        self.send(m, [sym])

    def incremental(self, symbols):
        touched = self.rng.sample(symbols, min(len(symbols), 1 if self.rng.random() < 0.8 else 2))
        m = fix44.MarketDataIncrementalRefresh()
        for sym in touched:
            bid, ask, bsz, asz = self.quote(sym)
            book = self.app.books[sym]
            for kind, side, px, sz in (("0", "bid", bid, bsz), ("1", "ask", ask, asz)):
                g = fix44.MarketDataIncrementalRefresh.NoMDEntries()
                had = book.get(side) is not None
                if had and self.rng.random() < 0.02:
                    g.setField(fix.StringField(279, "2"))
                    g.setField(fix.StringField(269, kind))
                    g.setField(fix.StringField(55, sym))
                    book[side] = None
                    book[side + "_size"] = None
                else:
                    g.setField(fix.StringField(279, "1" if had else "0"))
                    g.setField(fix.StringField(269, kind))
                    g.setField(fix.StringField(55, sym))
                    g.setField(fix.StringField(270, px))
                    g.setField(fix.StringField(271, sz))
                    book[side] = px
                    book[side + "_size"] = sz
                m.addGroup(g)
        self.send(m, touched)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--journal", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--before", type=int, default=2000)
    ap.add_argument("--outage", type=int, default=500)
    ap.add_argument("--after", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    dictionary = os.path.join(sys.prefix, "share", "quickfix", "FIX44.xml")
    cfg = os.path.join(args.workdir, "acceptor.cfg")
    with open(cfg, "w") as f:
        f.write(f"""[DEFAULT]
ConnectionType=acceptor
FileStorePath={args.workdir}/store
FileLogPath={args.workdir}/log
StartTime=00:00:00
EndTime=00:00:00
UseDataDictionary=Y
DataDictionary={dictionary}
CheckLatency=N
TimestampPrecision=6
[SESSION]
BeginString=FIX.4.4
SenderCompID=QF
TargetCompID=REC
SocketAcceptPort={args.port}
SocketReuseAddress=Y
HeartBtInt=30
""")
    journal = open(args.journal, "w")
    app = App(journal)
    settings = fix.SessionSettings(cfg)
    acceptor = fix.SocketAcceptor(app, fix.FileStoreFactory(settings), settings, fix.FileLogFactory(settings))
    acceptor.start()
    streamer = Streamer(app, args.seed)
    try:
        if not app.requested.wait(30):
            print("no MarketDataRequest within 30 s", file=sys.stderr)
            return 2
        symbols = list(app.symbols)
        for s in symbols:
            streamer.snapshot(s)
        for i in range(args.before):
            streamer.incremental(symbols)
            if i % 50 == 0:
                time.sleep(0.005)
        # Cut the connection; keep sending: QuickFIX stores these for the resend.
        app.requested.clear()
        app.refuse_logons = True
        fix.Session.lookupSession(app.session_id).disconnect()
        for _ in range(args.outage):
            streamer.incremental(symbols)
        app.refuse_logons = False
        if not app.requested.wait(30):
            print("the initiator did not come back within 30 s", file=sys.stderr)
            return 2
        time.sleep(0.5)  # let the resend finish
        for i in range(args.after):
            streamer.incremental(symbols)
            if i % 50 == 0:
                time.sleep(0.005)
        time.sleep(1.0)
        journal.close()
        print(json.dumps({"logons": app.logons, "symbols": symbols}), flush=True)
        # The Python bindings can crash tearing down an acceptor while the initiator is
        # reconnecting; everything is written, so leave without the teardown.
        os._exit(0)
    finally:
        if not journal.closed:
            journal.close()
        acceptor.stop()


if __name__ == "__main__":
    sys.exit(main())
