import type { Migration } from '../../src/migrations.js';

/**
 * A schema migration 2 used only by the mid-migration crash test: it rewrites existing data
 * (so a half-applied migration would be visible) and adds a column and a table.
 */
export const FAULTS_TEST_MIGRATION: Migration = {
  version: 2,
  name: '002_faults_test',
  sql: `
    ALTER TABLE machines ADD COLUMN note TEXT;
    UPDATE machines SET note = 'migrated', status = 'migrated';
    CREATE TABLE faults_test_extra (id INTEGER PRIMARY KEY, payload BLOB);
    INSERT INTO faults_test_extra (payload) SELECT requests FROM request_log;
  `,
};
