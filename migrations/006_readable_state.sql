-- Version 6: state you can read with the plain sqlite3 CLI (JSON1), derived from the CBOR that
-- stays the source of truth. Written in the same transaction as the log rows (so consistent with
-- the log at every commit); recovery never reads any of it; `ssm views --rebuild` recomputes it.
-- JSON is the library's one rendering of CBOR values (README, "JSON rendering").

-- One row per key of every machine that declares a per-key projection (the KV store does), as of
-- its last commit: SELECT value FROM kv_entries WHERE machine = 'kv1' AND key = 'x';
CREATE TABLE kv_entries (
  machine TEXT NOT NULL,
  key     TEXT NOT NULL,
  value   TEXT NOT NULL,                        -- JSON
  seq     INTEGER NOT NULL,                     -- the machine's seq when this key last changed
  PRIMARY KEY (machine, key)
) WITHOUT ROWID;

-- Each machine's whole state as JSON, refreshed at every snapshot, with the seq it reflects.
-- NULL state, with a note, for a machine whose state is in kv_entries or too large to render.
CREATE TABLE machine_states (
  machine    TEXT PRIMARY KEY,
  seq        INTEGER NOT NULL,
  state      TEXT,                              -- JSON
  note       TEXT,
  updated_at TEXT NOT NULL
);

-- The seq kv_entries reflects for a machine (NULL: never written; rebuilt at start when behind).
ALTER TABLE machines ADD COLUMN entries_seq INTEGER;

-- The inputs of a log row as a JSON array (NULL where readable tables are off for the machine).
ALTER TABLE request_log ADD COLUMN requests_json TEXT;

-- A failed request's input as JSON (NULL if it was not recorded or not encodable).
ALTER TABLE failed_requests ADD COLUMN input_json TEXT;

-- Every logged request, one row each: SELECT seq, request FROM requests WHERE machine = 'kv2' ORDER BY seq DESC LIMIT 10;
CREATE VIEW requests AS
SELECT l.machine, l.first_seq + CAST(j.key AS INTEGER) AS seq, l.logged_at, j.value AS request
FROM request_log l, json_each(l.requests_json) j
WHERE l.requests_json IS NOT NULL;

-- Every failed request, with its input as JSON.
CREATE VIEW failed_inputs AS
SELECT machine, after_seq, failed_at, error_name, error_message, input_json AS input
FROM failed_requests;
