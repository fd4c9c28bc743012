-- Version 10: a release of a held machine is ordered by crash id, not by the wall clock.
-- released_ms compared crash times with the time of the release: after a wall-clock step back
-- every later crash looked older than the release and no longer counted, so a machine crashing
-- again was never held again. Crash ids only grow (the newest row of a machine is never
-- trimmed), so "crashed after the release" is id > released_id whatever the clock does.
ALTER TABLE held_machines ADD COLUMN released_id INTEGER;   -- NULL while held; crashes with id <= it no longer count
UPDATE held_machines
   SET released_id = coalesce((SELECT max(c.id) FROM crash_history c
                               WHERE c.machine = held_machines.machine AND c.crashed_ms <= held_machines.released_ms), 0)
 WHERE released_ms IS NOT NULL;
