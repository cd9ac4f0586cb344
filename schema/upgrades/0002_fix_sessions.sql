-- Schema version 1 -> 2: durable FIX inbound sequence numbers (see schema/ticks.sql).
CREATE TABLE fix_sessions (
    src              INTEGER PRIMARY KEY,   -- sources.id of the session
    next_inbound_seq INTEGER NOT NULL,      -- next MsgSeqNum expected after the committed ticks
    updated_recv_ns  INTEGER NOT NULL       -- ts_recv of the last tick that moved it
);
