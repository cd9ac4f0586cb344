#!/usr/bin/env python3
"""QuickFIX (C++ engine) initiator that logs on to `tickrec simulate` and validates every
message it receives against QuickFIX's FIX 4.4 data dictionary.

QuickFIX answers a message that breaks the dictionary with a session-level Reject (35=3) and
does not deliver it; this script counts what it delivered per MsgType and every Reject it sent.
Prints one JSON object and exits 0 when it logged on.

Usage: initiator.py --port P --workdir DIR [--seconds 3] [--symbols EURUSD,GBPUSD,XXXYYY]
"""
import argparse
import json
import os
import sys
import threading
import time

import quickfix as fix
import quickfix44 as fix44


class App(fix.Application):
    def __init__(self, symbols):
        super().__init__()
        self.symbols = symbols
        self.logged_on = threading.Event()
        self.received = {}
        self.rejects_sent = []
        self.session_id = None

    def onCreate(self, session_id):
        self.session_id = session_id

    def onLogon(self, session_id):
        self.logged_on.set()
        if self.symbols:
            m = fix44.MarketDataRequest()
            m.setField(fix.StringField(262, "qf-1"))
            m.setField(fix.StringField(263, "1"))
            m.setField(fix.StringField(264, "1"))
            m.setField(fix.StringField(265, "1"))
            for kind in ("0", "1"):
                g = fix44.MarketDataRequest.NoMDEntryTypes()
                g.setField(fix.StringField(269, kind))
                m.addGroup(g)
            for s in self.symbols:
                g = fix44.MarketDataRequest.NoRelatedSym()
                g.setField(fix.StringField(55, s))
                m.addGroup(g)
            fix.Session.sendToTarget(m, session_id)

    def onLogout(self, session_id):
        pass

    def toAdmin(self, message, session_id):
        if message.getHeader().getField(35) == "3":
            self.rejects_sent.append(message.toString().replace("\x01", "|"))

    def fromAdmin(self, message, session_id):
        pass

    def toApp(self, message, session_id):
        pass

    def fromApp(self, message, session_id):
        t = message.getHeader().getField(35)
        self.received[t] = self.received.get(t, 0) + 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--symbols", default="")
    args = ap.parse_args()
    dictionary = os.path.join(sys.prefix, "share", "quickfix", "FIX44.xml")
    cfg = os.path.join(args.workdir, "initiator.cfg")
    with open(cfg, "w") as f:
        f.write(f"""[DEFAULT]
ConnectionType=initiator
FileStorePath={args.workdir}/istore
FileLogPath={args.workdir}/ilog
StartTime=00:00:00
EndTime=00:00:00
UseDataDictionary=Y
DataDictionary={dictionary}
CheckLatency=N
ReconnectInterval=1
[SESSION]
BeginString=FIX.4.4
SenderCompID=QFI
TargetCompID=SIM
SocketConnectHost=127.0.0.1
SocketConnectPort={args.port}
HeartBtInt=30
ResetOnLogon=Y
""")
    app = App([s for s in args.symbols.split(",") if s])
    settings = fix.SessionSettings(cfg)
    initiator = fix.SocketInitiator(app, fix.FileStoreFactory(settings), settings, fix.FileLogFactory(settings))
    initiator.start()
    ok = app.logged_on.wait(20)
    time.sleep(args.seconds)
    initiator.stop()
    print(json.dumps({"logged_on": ok, "received": app.received, "rejects_sent": app.rejects_sent[:20],
                      "reject_count": len(app.rejects_sent)}), flush=True)
    # Skip the bindings' interpreter-exit teardown, which can crash; all output is written.
    os._exit(0 if ok else 2)


if __name__ == "__main__":
    sys.exit(main())
