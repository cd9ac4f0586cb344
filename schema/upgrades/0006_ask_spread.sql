-- Schema version 5 -> 6: the ask is stored as its distance from bid when both have the same
-- places (schema/ticks.sql). Rows written before keep their ask's own code, which the new view
-- reads as the old one did. No table changes: after every upgrade the view ticks_v is created
-- again from schema/ticks.sql (src/store/schema.rs, `ensure_schema`).
SELECT 1;
