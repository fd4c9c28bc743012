-- supervised-state-machines schema, version 1.
-- Written for people reading it with the sqlite3 CLI (3.40+): start with
--   SELECT * FROM machine_overview;
-- Blobs are CBOR (RFC 8949); times are ISO 8601 UTC text.

-- One row per machine (worker) of the supervision tree.
CREATE TABLE machines (
  name          TEXT PRIMARY KEY,
  status        TEXT NOT NULL DEFAULT 'new',   -- new | running | restarting | crashed | stopped | failed
  state_version INTEGER NOT NULL DEFAULT 1,    -- the machine's state version when it last ran
  restarts      INTEGER NOT NULL DEFAULT 0,    -- restarts after crashes, over the database's life
  last_error    TEXT,                          -- message of the last crash, if any
  created_at    TEXT NOT NULL,
  updated_at    TEXT NOT NULL
);

-- Checkpoints of a machine's state. The state includes every request up to and including seq.
CREATE TABLE snapshots (
  id            INTEGER PRIMARY KEY,
  machine       TEXT NOT NULL REFERENCES machines(name),
  seq           INTEGER NOT NULL,
  state_version INTEGER NOT NULL,
  taken_at      TEXT NOT NULL,
  reason        TEXT NOT NULL,                 -- policy | terminate | restart | checkpoint | recovery
  size          INTEGER NOT NULL,              -- bytes of state
  checksum      TEXT NOT NULL,                 -- sha256 of state, hex
  state         BLOB NOT NULL                  -- CBOR
);
CREATE INDEX snapshots_by_machine_seq ON snapshots(machine, seq);

-- The request log: every state-changing request that was acknowledged, per machine, in order.
-- Requests are group-committed: one row holds the requests of one machine from one batch
-- (first_seq..last_seq), as a CBOR sequence (RFC 8742) of the inputs. `ssm log` decodes them.
CREATE TABLE request_log (
  id         INTEGER PRIMARY KEY,
  machine    TEXT NOT NULL,
  first_seq  INTEGER NOT NULL,
  last_seq   INTEGER NOT NULL,
  count      INTEGER NOT NULL,
  logged_at  TEXT NOT NULL,
  size       INTEGER NOT NULL,                 -- bytes of requests
  requests   BLOB NOT NULL
);
CREATE UNIQUE INDEX request_log_by_machine_seq ON request_log(machine, last_seq);

-- Requests whose step threw. They are never in the request log, so replay never meets them.
CREATE TABLE failed_requests (
  id            INTEGER PRIMARY KEY,
  machine       TEXT NOT NULL,
  after_seq     INTEGER NOT NULL,              -- the machine's last applied seq when it failed
  failed_at     TEXT NOT NULL,
  error_name    TEXT NOT NULL,
  error_message TEXT NOT NULL,
  stack         TEXT,
  input         BLOB                           -- CBOR, NULL if the input could not be encoded
);
CREATE INDEX failed_requests_by_machine ON failed_requests(machine, id);

-- The single writer. A second application refuses to open while this process is alive.
CREATE TABLE app_lock (
  id          INTEGER PRIMARY KEY CHECK (id = 1),
  pid         INTEGER NOT NULL,
  host        TEXT NOT NULL,
  identity    TEXT NOT NULL,                   -- pid plus process start time, to survive pid reuse
  acquired_at TEXT NOT NULL
);

-- Snapshots without their blobs.
CREATE VIEW snapshot_list AS
SELECT machine, seq, state_version, taken_at, reason, size, checksum, id
FROM snapshots ORDER BY machine, seq;

-- Per machine: status, state version, last sequence number, latest snapshot, log since it.
CREATE VIEW machine_overview AS
SELECT
  m.name AS machine,
  m.status,
  m.state_version,
  max(coalesce((SELECT max(l.last_seq) FROM request_log l WHERE l.machine = m.name), 0),
      coalesce((SELECT max(s.seq) FROM snapshots s WHERE s.machine = m.name), 0)) AS last_seq,
  (SELECT s.seq FROM snapshots s WHERE s.machine = m.name ORDER BY s.seq DESC, s.id DESC LIMIT 1) AS snapshot_seq,
  (SELECT s.size FROM snapshots s WHERE s.machine = m.name ORDER BY s.seq DESC, s.id DESC LIMIT 1) AS snapshot_size,
  (SELECT s.taken_at FROM snapshots s WHERE s.machine = m.name ORDER BY s.seq DESC, s.id DESC LIMIT 1) AS snapshot_at,
  (SELECT coalesce(sum(l.count), 0) FROM request_log l WHERE l.machine = m.name
     AND l.last_seq > coalesce((SELECT max(s.seq) FROM snapshots s WHERE s.machine = m.name), 0)) AS requests_since_snapshot,
  m.restarts,
  m.last_error,
  m.updated_at
FROM machines m ORDER BY m.name;

-- The log rows a recovery would replay now (those after each machine's latest snapshot).
CREATE VIEW log_since_snapshot AS
SELECT l.machine, l.first_seq, l.last_seq, l.count, l.logged_at, l.size
FROM request_log l
WHERE l.last_seq > coalesce((SELECT max(s.seq) FROM snapshots s WHERE s.machine = l.machine), 0)
ORDER BY l.machine, l.first_seq;
