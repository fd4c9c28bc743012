-- Version 3: corruption SQLite cannot see.
-- A log row's checksum is the sha256 (hex) of its requests blob, like a snapshot's; recovery and
-- `ssm verify` refuse a row whose blob no longer matches. Rows written before version 3 have NULL
-- (not checked).
ALTER TABLE request_log ADD COLUMN checksum TEXT;

-- The highest seq known durable for the machine, recorded at every snapshot and at a clean close.
-- A recovery that reaches less (the -wal of a stopped database deleted, say) is refused.
-- NULL: not recorded yet.
ALTER TABLE machines ADD COLUMN durable_seq INTEGER;
