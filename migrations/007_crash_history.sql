-- Version 7: crash loops across process starts.
-- Restart intensity lives in memory, so a machine that crashes on every start would make a process
-- manager restart the whole process forever. Every crash (a step that threw, a start that failed)
-- is recorded here with the application run it happened in; a machine that crashed in too many
-- runs within a window is held back (a row in held_machines) while the rest of the tree serves,
-- until `ssm release NAME` (or app.release) lets it run again.
CREATE TABLE crash_history (
  id          INTEGER PRIMARY KEY,
  machine     TEXT NOT NULL,
  run_id      TEXT NOT NULL,                    -- one per startApplication: crashes of one run count once
  kind        TEXT NOT NULL,                    -- 'crash' (a step threw) or 'start' (its start failed)
  error       TEXT NOT NULL,
  crashed_at  TEXT NOT NULL,                    -- ISO 8601 UTC
  crashed_ms  INTEGER NOT NULL                  -- the same instant, ms since the epoch, for windows
);
CREATE INDEX crash_history_by_machine ON crash_history(machine, crashed_ms);

CREATE TABLE held_machines (
  machine     TEXT PRIMARY KEY,
  held_at     TEXT NOT NULL,
  runs        INTEGER NOT NULL,                 -- runs with a crash within the window when it was held
  window_ms   INTEGER NOT NULL,
  last_error  TEXT,
  released_at TEXT,                             -- NULL while held
  released_ms INTEGER                           -- crashes before it no longer count
);
