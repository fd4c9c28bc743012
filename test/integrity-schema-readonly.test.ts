/**
 * Databases a writer must not or cannot use (issues 18.9, 11.10): a schema_migrations row newer
 * than the library, a user_version reset to 0 on a real database, and a read-only file or folder.
 * Each is a typed error that says what is wrong and what to do; the read-only one leaves no
 * -wal/-shm behind.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, chmodSync, constants, readdirSync } from 'node:fs';
import { dirname } from 'node:path';
import test from 'ava';
import { startApplication } from '../src/engine/application.js';
import { ReadOnlyDatabaseError, SchemaVersionError } from '../src/errors.js';
import { latestSchemaVersion } from '../src/storage/migrations.js';
import { ROOT } from './helpers/faults-spawn.js';
import { kvTree, rawDb, tempDb } from './helpers/persistence-kv.js';

async function realDb(db: string): Promise<void> {
  const app = await startApplication(kvTree(), { db, logger: false });
  await app.call('kv1', { op: 'store', key: 'a', value: 1 });
  await app.stop();
}

test('a schema_migrations row newer than the library is refused with SchemaVersionError', async (t) => {
  const db = tempDb(t);
  await realDb(db);
  const raw = rawDb(db, false);
  raw.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(latestSchemaVersion() + 1, 'from_the_future', new Date().toISOString());
  raw.close();
  const err = await t.throwsAsync(startApplication(kvTree(), { db, logger: false }), { instanceOf: SchemaVersionError });
  t.regex(err?.message ?? '', /schema_migrations records version \d+, newer than this library/);
});

test('user_version 0 on a database with this library\'s tables says what is wrong and how to fix it', async (t) => {
  const db = tempDb(t);
  await realDb(db);
  const raw = rawDb(db, false);
  raw.pragma('user_version = 0');
  raw.close();
  const err = await t.throwsAsync(startApplication(kvTree(), { db, logger: false }), { instanceOf: SchemaVersionError });
  t.regex(err?.message ?? '', new RegExp(`user_version is 0.*PRAGMA user_version = ${latestSchemaVersion()};`));
  t.notRegex(err?.message ?? '', /already exists/);
  // Following the advice works, and nothing was lost.
  const fix = rawDb(db, false);
  fix.pragma(`user_version = ${latestSchemaVersion()}`);
  fix.close();
  const app = await startApplication(kvTree(), { db, logger: false });
  t.is(await app.call('kv1', { op: 'lookup', key: 'a' }), 1);
  await app.stop();
});

/** Starts an application on `db` as the `nobody` user (root ignores file modes); prints {code, message}. */
function startAsNobody(db: string): { code?: string; message?: string } | null {
  const script = `import('./src/engine/application.ts').then(async ({ startApplication }) => { const { kvTree } = await import('./test/helpers/persistence-kv.ts');
    try { const a = await startApplication(kvTree(), { db: ${JSON.stringify(db)}, logger: false }); await a.stop(); console.log(JSON.stringify({ code: 'OPENED' })); }
    catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); } });`;
  const r = spawnSync('runuser', ['-u', 'nobody', '--', process.execPath, '--import', 'tsx', '-e', script], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0 || !r.stdout.trim()) return null;
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as { code?: string; message?: string };
}

function writableAnyway(path: string): boolean {
  try {
    accessSync(path, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

for (const kind of ['file (chmod 444)', 'folder (chmod 555)'] as const) {
  test(`a read-only ${kind}: ReadOnlyDatabaseError with the path and what to do, and no -wal/-shm left behind`, async (t) => {
    const db = tempDb(t);
    await realDb(db);
    const dir = dirname(db);
    chmodSync(db, 0o444);
    chmodSync(dir, kind.startsWith('file') ? 0o777 : 0o555);
    t.teardown(() => chmodSync(dir, 0o755));
    const before = readdirSync(dir).sort();
    let result: { code?: string; message?: string } | null;
    if (!writableAnyway(kind.startsWith('file') ? db : dir)) {
      const err = await t.throwsAsync(startApplication(kvTree(), { db, logger: false }), { instanceOf: ReadOnlyDatabaseError });
      result = { code: err?.code, message: err?.message };
    } else {
      // Root writes whatever the mode says: run the opener as an unprivileged user instead.
      result = startAsNobody(db);
      if (result === null) {
        t.log('running as root and runuser -u nobody is unavailable: only the mapping is checked');
        t.pass();
        return;
      }
    }
    t.is(result.code, 'DATABASE_READ_ONLY', result.message);
    t.true(result.message?.includes(db), 'names the path');
    t.regex(result.message ?? '', /writable/, 'says what to do');
    t.deepEqual(readdirSync(dir).sort(), before, 'no -wal/-shm (or anything) left behind');
  });
}
