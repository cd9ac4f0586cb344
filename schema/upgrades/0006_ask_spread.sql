-- Schema version 5 -> 6: ask stored as its distance from bid when both have the same places
-- (schema/ticks.sql). Rows written before keep their ask's own code, which the view reads as
-- before; the view learns the new form.
DROP VIEW ticks_v;
CREATE VIEW ticks_v AS
SELECT
    t.seq                                      AS seq,
    s.name                                     AS symbol,
    t.ts_event + f.day_start_ns                AS ts_event_ns,
    strftime('%Y-%m-%dT%H:%M:%S', (t.ts_event + f.day_start_ns) / 1000000000, 'unixepoch')
        || '.' || substr('00000000' || ((t.ts_event + f.day_start_ns) % 1000000000), -9)
        || 'Z'                                 AS ts_event,
    t.ts_event + f.day_start_ns + t.ts_recv    AS ts_recv_ns,
    CASE t.bid & 15 WHEN 1 THEN t.bid >> 4 WHEN 2 THEN (t.bid >> 4) / 1e1
        WHEN 3 THEN (t.bid >> 4) / 1e2 WHEN 4 THEN (t.bid >> 4) / 1e3 WHEN 5 THEN (t.bid >> 4) / 1e4
        WHEN 6 THEN (t.bid >> 4) / 1e5 WHEN 7 THEN (t.bid >> 4) / 1e6 WHEN 8 THEN (t.bid >> 4) / 1e7
        WHEN 9 THEN (t.bid >> 4) / 1e8 WHEN 10 THEN (t.bid >> 4) / 1e9
        ELSE (t.bid >> 4) * CASE t.bid & 15 WHEN 11 THEN 10 WHEN 12 THEN 100
            WHEN 13 THEN 1000 WHEN 14 THEN 10000 ELSE 100000 END END   AS bid,
    CASE t.ask_code & 15 WHEN 1 THEN t.ask_code >> 4 WHEN 2 THEN (t.ask_code >> 4) / 1e1
        WHEN 3 THEN (t.ask_code >> 4) / 1e2 WHEN 4 THEN (t.ask_code >> 4) / 1e3 WHEN 5 THEN (t.ask_code >> 4) / 1e4
        WHEN 6 THEN (t.ask_code >> 4) / 1e5 WHEN 7 THEN (t.ask_code >> 4) / 1e6 WHEN 8 THEN (t.ask_code >> 4) / 1e7
        WHEN 9 THEN (t.ask_code >> 4) / 1e8 WHEN 10 THEN (t.ask_code >> 4) / 1e9
        ELSE (t.ask_code >> 4) * CASE t.ask_code & 15 WHEN 11 THEN 10 WHEN 12 THEN 100
            WHEN 13 THEN 1000 WHEN 14 THEN 10000 ELSE 100000 END END   AS ask,
    CASE t.bid_size & 15 WHEN 1 THEN t.bid_size >> 4 WHEN 2 THEN (t.bid_size >> 4) / 1e1
        WHEN 3 THEN (t.bid_size >> 4) / 1e2 WHEN 4 THEN (t.bid_size >> 4) / 1e3
        WHEN 5 THEN (t.bid_size >> 4) / 1e4 WHEN 6 THEN (t.bid_size >> 4) / 1e5
        WHEN 7 THEN (t.bid_size >> 4) / 1e6 WHEN 8 THEN (t.bid_size >> 4) / 1e7
        WHEN 9 THEN (t.bid_size >> 4) / 1e8 WHEN 10 THEN (t.bid_size >> 4) / 1e9
        ELSE (t.bid_size >> 4) * CASE t.bid_size & 15 WHEN 11 THEN 10 WHEN 12 THEN 100
            WHEN 13 THEN 1000 WHEN 14 THEN 10000 ELSE 100000 END END   AS bid_size,
    CASE t.ask_size & 15 WHEN 1 THEN t.ask_size >> 4 WHEN 2 THEN (t.ask_size >> 4) / 1e1
        WHEN 3 THEN (t.ask_size >> 4) / 1e2 WHEN 4 THEN (t.ask_size >> 4) / 1e3
        WHEN 5 THEN (t.ask_size >> 4) / 1e4 WHEN 6 THEN (t.ask_size >> 4) / 1e5
        WHEN 7 THEN (t.ask_size >> 4) / 1e6 WHEN 8 THEN (t.ask_size >> 4) / 1e7
        WHEN 9 THEN (t.ask_size >> 4) / 1e8 WHEN 10 THEN (t.ask_size >> 4) / 1e9
        ELSE (t.ask_size >> 4) * CASE t.ask_size & 15 WHEN 11 THEN 10 WHEN 12 THEN 100
            WHEN 13 THEN 1000 WHEN 14 THEN 10000 ELSE 100000 END END   AS ask_size,
    r.name                                     AS source
FROM (SELECT *, CASE WHEN ask & 15 = 0 THEN (((bid >> 4) + (ask >> 4)) << 4) | (bid & 15)
             ELSE ask END AS ask_code FROM ticks) t
JOIN file_info f ON f.id = 1
JOIN symbols s ON s.id = t.sym
JOIN sources r ON r.id = t.src;
