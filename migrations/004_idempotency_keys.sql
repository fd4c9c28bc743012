-- Version 4: idempotency keys (exactly-once retries).
-- A state-changing request sent with an idempotency key is recorded here in the same commit as its
-- log row, with its reply: a retry with the same key (after a lost connection, a timeout, or a
-- SIGKILL and restart) gets this reply and is never applied twice. Keys are scoped to a machine.
-- Rows older than the application's retention are removed, oldest first, a few at a time.
CREATE TABLE idempotency_keys (
  id           INTEGER PRIMARY KEY,             -- increasing with time: retention removes the lowest
  machine      TEXT NOT NULL,
  key          TEXT NOT NULL,
  seq          INTEGER NOT NULL,                -- the request's seq in the machine's log
  input_sha256 TEXT NOT NULL,                   -- sha256 (hex) of the logged input: the same key with another input is refused
  reply        BLOB,                            -- CBOR of the step's output; NULL if it was not encodable
  created_at   TEXT NOT NULL                    -- ISO 8601 UTC, when the request was committed
);
CREATE UNIQUE INDEX idempotency_keys_by_machine_key ON idempotency_keys(machine, key);

-- The keys without their replies, oldest first.
CREATE VIEW idempotency_key_list AS
SELECT machine, key, seq, created_at, length(reply) AS reply_size
FROM idempotency_keys ORDER BY id;
