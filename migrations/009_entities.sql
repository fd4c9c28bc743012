-- Version 9: entities, a machine per key (`entities(name, machine)` in the library).
-- An entity is a machine named '<family>/<key>': its log, snapshots, failed requests, idempotency
-- keys and timers are rows of the usual tables under that name (so every query of one entity uses
-- the indexes by machine). Its row in `machines` is its registry entry, written in the commit of
-- its first state-changing request (a key never written has none), with its family and key here,
-- indexed, so a family's keys are listed and counted in order without reading the other tables.
ALTER TABLE machines ADD COLUMN family TEXT;       -- NULL for a machine of the tree
ALTER TABLE machines ADD COLUMN entity_key TEXT;   -- the entity's key within its family
CREATE INDEX machines_by_family_key ON machines(family, entity_key);

-- Every registered entity: SELECT family, count(*) FROM entity_list GROUP BY family;
CREATE VIEW entity_list AS
SELECT family, entity_key AS key, name AS machine, restarts, last_error, created_at
FROM machines WHERE family IS NOT NULL;
