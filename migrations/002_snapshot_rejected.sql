-- Version 2: snapshots that recovery found corrupt are quarantined, not deleted.
-- A quarantined snapshot is never used again, does not count towards keepSnapshots, and does
-- not hold back the log truncation; it stays for inspection until `ssm compact` removes it.
ALTER TABLE snapshots ADD COLUMN rejected TEXT;  -- why recovery refused it (NULL: good)

DROP VIEW snapshot_list;
CREATE VIEW snapshot_list AS
SELECT machine, seq, state_version, taken_at, reason, size, checksum, rejected, id
FROM snapshots ORDER BY machine, seq;

DROP VIEW machine_overview;
CREATE VIEW machine_overview AS
SELECT
  m.name AS machine,
  m.status,
  m.state_version,
  max(coalesce((SELECT max(l.last_seq) FROM request_log l WHERE l.machine = m.name), 0),
      coalesce((SELECT max(s.seq) FROM snapshots s WHERE s.machine = m.name), 0)) AS last_seq,
  (SELECT s.seq FROM snapshots s WHERE s.machine = m.name AND s.rejected IS NULL ORDER BY s.seq DESC, s.id DESC LIMIT 1) AS snapshot_seq,
  (SELECT s.size FROM snapshots s WHERE s.machine = m.name AND s.rejected IS NULL ORDER BY s.seq DESC, s.id DESC LIMIT 1) AS snapshot_size,
  (SELECT s.taken_at FROM snapshots s WHERE s.machine = m.name AND s.rejected IS NULL ORDER BY s.seq DESC, s.id DESC LIMIT 1) AS snapshot_at,
  (SELECT coalesce(sum(l.count), 0) FROM request_log l WHERE l.machine = m.name
     AND l.last_seq > coalesce((SELECT max(s.seq) FROM snapshots s WHERE s.machine = m.name AND s.rejected IS NULL), 0)) AS requests_since_snapshot,
  m.restarts,
  m.last_error,
  m.updated_at,
  (SELECT count(*) FROM snapshots s WHERE s.machine = m.name AND s.rejected IS NOT NULL) AS rejected_snapshots
FROM machines m ORDER BY m.name;

DROP VIEW log_since_snapshot;
CREATE VIEW log_since_snapshot AS
SELECT l.machine, l.first_seq, l.last_seq, l.count, l.logged_at, l.size
FROM request_log l
WHERE l.last_seq > coalesce((SELECT max(s.seq) FROM snapshots s WHERE s.machine = l.machine AND s.rejected IS NULL), 0)
ORDER BY l.machine, l.first_seq;
