import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { policyDefinitionSchema } from '../src/core/policy-schema.ts';
import { openDatabase, type Database } from '../src/db/database.ts';

const run = promisify(execFile);
export const ADMIN_URL = process.env.BENCH_PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** A scratch database for one scenario, migrated, dropped by `drop()`. */
export async function scratchDatabase(tag: string, poolSize = 20): Promise<{ url: string; db: Database; drop(): Promise<void> }> {
  const name = `signoff_bench_${tag.replace(/-/g, '_')}_${randomBytes(3).toString('hex')}`;
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  const db = await openDatabase(url.toString(), { migrate: true, poolSize });
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

export interface PgbenchReference {
  tps: number;
  /** each transaction's latency as pgbench's clients saw it (`--log`): the reference for an ack's at the same concurrency */
  latencyP50Ms: number;
  latencyP99Ms: number;
}

/**
 * pgbench's TPC-B-like transaction rate on the same server, as the in-run reference for database-bound work, with
 * its transactions' latency percentiles: at 32 closed-loop clients a latency is mostly the wait for the others
 * (clients / rate), which the machine sets for pgbench as it does for us.
 */
export async function pgbenchReference(clients: number, seconds: number): Promise<PgbenchReference> {
  const name = `signoff_bench_pgbench_${randomBytes(3).toString('hex')}`;
  const logs = await mkdtemp(join(tmpdir(), 'signoff-pgbench-'));
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
  try {
    const u = new URL(ADMIN_URL);
    const args = ['-h', u.hostname, '-p', u.port || '5432', '-U', u.username || 'postgres'];
    await run('pgbench', [...args, '-i', '-s', '1', '-q', name]);
    const { stdout } = await run('pgbench', [
      ...args,
      ...['-c', String(clients), '-j', '2', '-T', String(seconds), '-n'],
      ...['--log', `--log-prefix=${join(logs, 'tx')}`],
      name,
    ]);
    const m = /tps = ([\d.]+)/.exec(stdout);
    if (!m) throw new Error(`pgbench printed no tps: ${stdout}`);
    // one line per transaction, one file per thread: client, transaction, latency in µs, script, epoch s, µs
    const latencies: number[] = [];
    for (const file of await readdir(logs)) {
      for (const line of (await readFile(join(logs, file), 'utf8')).split('\n')) {
        const us = Number(line.split(' ')[2]);
        if (line && Number.isFinite(us)) latencies.push(us / 1000);
      }
    }
    if (latencies.length === 0) throw new Error('pgbench logged no transactions');
    latencies.sort((a, b) => a - b);
    return { tps: round(Number(m[1])), latencyP50Ms: round(percentile(latencies, 50)), latencyP99Ms: round(percentile(latencies, 99)) };
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
    await admin.end();
    await rm(logs, { recursive: true, force: true });
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

/** Polls until `done()` holds; the benchmark's own deadline is generous, it is not what is measured. */
export async function waitUntil(done: () => boolean | Promise<boolean>, what: string, timeoutMs: number, everyMs = 5): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * N users, each with a device and a pending request for one application whose policy one approver decides,
 * inserted set-based (what submit would have written, without its audit rows).
 */
export async function seedPending(db: Database, n: number, opts: { approverSlackId?: string; policy?: Record<string, unknown> } = {}) {
  const approver = await db.one<{ id: string }>(
    `INSERT INTO identities (username, display_name, slack_user_id) VALUES ('B\\approver', 'Approver', $1) RETURNING id`,
    [opts.approverSlackId ?? null],
  );
  const group = await db.one<{ id: string }>(`INSERT INTO approver_groups (name) VALUES ('approvers') RETURNING id`);
  await db.query('INSERT INTO approver_group_members VALUES ($1,$2)', [group.id, approver.id]);
  const policy = {
    justification: 'optional',
    stages: [{ approvers: ['approvers'], quorum: 'any', approverJustification: false }],
    decisionDeadline: 'P14D',
    reminderEvery: 'P1D',
    ...opts.policy,
  };
  const p = await db.one<{ id: string }>(`INSERT INTO policies (name, definition) VALUES ('p', $1) RETURNING id`, [
    JSON.stringify(policyDefinitionSchema.parse(policy)),
  ]);
  await db.query(`INSERT INTO applications (id, name, per_device, policy_id) VALUES ('App_bench', 'Bench', true, $1)`, [p.id]);
  const definition = (await db.one<{ definition: unknown }>('SELECT definition FROM policies WHERE id = $1', [p.id])).definition;
  const ids = await db.query<{ id: string }>(
    `WITH u AS (INSERT INTO identities (username, display_name) SELECT 'B\\u' || g, 'User ' || g FROM generate_series(1, $1) g RETURNING id, username),
          d AS (INSERT INTO devices (client_guid, name, primary_user_id) SELECT 'GUID:' || md5(u.username), 'PC-' || u.username, u.id FROM u RETURNING id, primary_user_id)
     INSERT INTO requests (application_id, requester_id, device_id, source, status, current_stage, justification, answers, policy,
                           deadline_at, stage_started_at, next_reminder_at, created_at, updated_at)
     SELECT 'App_bench', d.primary_user_id, d.id, 'api', 'pending', 0, 'bench', '{}', $2, now() + interval '14 days', now(), now() + interval '1 day', now(), now() FROM d
     RETURNING id`,
    [n, JSON.stringify(definition)],
  );
  return { approverId: approver.id, requestIds: ids.map((r) => r.id) };
}

export const peakRssMb = () => Math.round(process.resourceUsage().maxRSS / 1024);
