-- Version 5: durable timers.
-- A step schedules an input to its own machine (setTimer in the library); the timer is written in
-- the commit of the request that set it, and removed in the commit of the request that delivered
-- it (a logged request like any other), so it fires once: late after a crash, never lost, never twice.
CREATE TABLE timers (
  id       INTEGER PRIMARY KEY,                 -- a new id each time a timer is set (again)
  machine  TEXT NOT NULL,
  timer    TEXT NOT NULL,                       -- the id the step gave it, unique per machine
  due_ms   INTEGER NOT NULL,                    -- when it is due, ms since the Unix epoch
  due_at   TEXT NOT NULL,                       -- the same, ISO 8601 UTC, for people
  input    BLOB NOT NULL,                       -- CBOR of the input it delivers
  set_seq  INTEGER NOT NULL,                    -- seq of the request that set it
  set_at   TEXT NOT NULL
);
CREATE UNIQUE INDEX timers_by_machine_timer ON timers(machine, timer);
CREATE INDEX timers_by_due ON timers(due_ms, id);

-- Pending timers, soonest first, without their inputs.
CREATE VIEW timer_list AS
SELECT machine, timer, due_at, set_seq, set_at, length(input) AS input_size
FROM timers ORDER BY due_ms, id;
