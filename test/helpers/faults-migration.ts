import { latestSchemaVersion, type Migration } from '../../src/storage/migrations.js';

/**
 * A schema migration one past the shipped ones, used only by the mid-migration crash test: it
 * rewrites existing data (so a half-applied migration would be visible) and adds a column and
 * a table.
 */
export function faultsTestMigration(): Migration {
  const version = latestSchemaVersion() + 1;
  return {
    version,
    name: `${String(version).padStart(3, '0')}_faults_test`,
    sql: `
      ALTER TABLE machines ADD COLUMN note TEXT;
      UPDATE machines SET note = 'migrated', status = 'migrated';
      CREATE TABLE faults_test_extra (id INTEGER PRIMARY KEY, payload BLOB);
      INSERT INTO faults_test_extra (payload) SELECT requests FROM request_log;
    `,
  };
}
