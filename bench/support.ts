import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import pg from 'pg';
import { openDatabase, type Database } from '../src/db/database.ts';

const run = promisify(execFile);
export const ADMIN_URL = process.env.BENCH_PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** A scratch database for one scenario, migrated, dropped by `drop()`. */
export async function scratchDatabase(tag: string): Promise<{ url: string; db: Database; drop(): Promise<void> }> {
  const name = `signoff_bench_${tag}_${randomBytes(3).toString('hex')}`;
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  const db = await openDatabase(url.toString(), { migrate: true, poolSize: 20 });
  return {
    url: url.toString(),
    db,
    async drop() {
      await db.close();
      const admin = new pg.Client({ connectionString: ADMIN_URL });
      await admin.connect();
      await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
      await admin.end();
    },
  };
}

/** pgbench's TPC-B-like transaction rate on the same server, as the in-run reference for database-bound work. */
export async function pgbenchTps(clients: number, seconds: number): Promise<number> {
  const name = `signoff_bench_pgbench_${randomBytes(3).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
  try {
    const u = new URL(ADMIN_URL);
    const args = ['-h', u.hostname, '-p', u.port || '5432', '-U', u.username || 'postgres'];
    await run('pgbench', [...args, '-i', '-s', '1', '-q', name]);
    const { stdout } = await run('pgbench', [...args, '-c', String(clients), '-j', '2', '-T', String(seconds), '-n', name]);
    const m = /tps = ([\d.]+)/.exec(stdout);
    if (!m) throw new Error(`pgbench printed no tps: ${stdout}`);
    return Number(m[1]);
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
    await admin.end();
  }
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export async function pool<T>(items: T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

export const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;
