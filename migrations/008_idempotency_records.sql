-- Idempotency keys, one row per machine per batch (issue 16.1) instead of one per key: a row
-- per key put an index entry at a random place into every commit and a lookup before every step,
-- which made a keyed write cost three to five unkeyed ones. Lookups go through an index of
-- fingerprints in memory, built at start from `fingerprints`; a retry reads its row by id.
CREATE TABLE idempotency_records (
  id           INTEGER PRIMARY KEY,   -- in commit order: retention removes the lowest
  machine      TEXT NOT NULL,
  first_seq    INTEGER NOT NULL,      -- the lowest and highest seq of its requests
  last_seq     INTEGER NOT NULL,
  count        INTEGER NOT NULL,      -- entries
  created_at   TEXT NOT NULL,         -- ISO 8601 UTC, when the batch was committed
  entries      TEXT NOT NULL,         -- JSON array of [key, seq] per request ([key, seq, 0]: its output was not encodable, no reply kept)
  fingerprints BLOB,                  -- a 32-bit hash of machine and key per entry, little-endian; NULL: computed from entries
  hashes       BLOB,                  -- the first 16 bytes of sha256 of each logged input, in order
  replies      BLOB                   -- CBOR array of the replies, in order (null where none was kept)
);

-- Rows of version 7 keep their sha256 and reply in the entry: [key, seq, sha256 hex, reply hex or null].
INSERT INTO idempotency_records (machine, first_seq, last_seq, count, created_at, entries)
SELECT machine, seq, seq, 1, created_at, json_array(json_array(key, seq, input_sha256, CASE WHEN reply IS NULL THEN NULL ELSE lower(hex(reply)) END))
FROM idempotency_keys ORDER BY id;

DROP VIEW idempotency_key_list;
DROP TABLE idempotency_keys;

-- One row per key, as the table was: SELECT key, seq FROM idempotency_keys WHERE machine = 'kv1';
CREATE VIEW idempotency_keys AS
SELECT r.id AS record, r.machine, json_extract(e.value, '$[0]') AS key, json_extract(e.value, '$[1]') AS seq, r.created_at
FROM idempotency_records r, json_each(r.entries) e;

-- The keys, oldest first.
CREATE VIEW idempotency_key_list AS
SELECT r.machine, json_extract(e.value, '$[0]') AS key, json_extract(e.value, '$[1]') AS seq, r.created_at
FROM idempotency_records r, json_each(r.entries) e ORDER BY r.id, e.key;
