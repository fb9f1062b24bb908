import pg from 'pg';
import type { KeyObject } from 'node:crypto';
import type { AppContext } from '../app-context.ts';
import { chainHead, SEAL_LOCK, sealHorizon, sealPending, unsealedRows } from '../core/audit-chain.ts';
import { parsePrivateKey, signCheckpoint, type Checkpoint } from '../core/audit-checkpoint.ts';
import { systemActor } from '../core/audit-log.ts';
import { emit } from '../core/outbox.ts';
import { type Queryable, WAKE_CHANNELS } from '../db/database.ts';

export const AUDIT_CHANNEL = WAKE_CHANNELS.audit;
const BATCH = 2000;
const NUDGE_COALESCE_MS = 20;
const HELD_BACK_CHECK_MS = 5_000;
const HELD_BACK_REPEAT_MS = 60_000;

export interface AuditSealer {
  /** whether this process holds the sealer lock now */
  isLeader(): boolean;
  /** one pass now (or the one under way): try to lead, seal what is sealable, emit a checkpoint when due */
  runOnce(): Promise<void>;
  /** the last (up to 100) checkpoints this process emitted, newest last (tests, diagnostics) */
  readonly emitted: Checkpoint[];
  /** releases the lock and closes the connection; waits for the pass under way */
  stop(): Promise<void>;
}

export interface SealerOptions {
  /** how often the leader looks for sealable rows; a commit that wrote audit rows also wakes it (default AUDIT_SEAL_INTERVAL_MS) */
  intervalMs?: number;
  /** how often a process that is not the leader tries to become it (default 1 s) */
  electionIntervalMs?: number;
  /** default AUDIT_CHECKPOINT_INTERVAL_MS; 0 turns periodic checkpoints off */
  checkpointIntervalMs?: number;
}

function queryable(c: pg.Client): Queryable {
  const query = async <T>(sql: string, params: unknown[] = []) => (await c.query(sql, params)).rows as T[];
  return {
    query,
    async one<T>(sql: string, params?: unknown[]) {
      const rows = await query<T>(sql, params);
      if (rows.length !== 1) throw new Error(`expected one row, got ${rows.length}`);
      return rows[0]!;
    },
    async maybeOne<T>(sql: string, params?: unknown[]) {
      return (await query<T>(sql, params))[0];
    },
  };
}

async function inTx<T>(c: pg.Client, fn: (q: Queryable) => Promise<T>): Promise<T> {
  await c.query('BEGIN');
  try {
    const r = await fn(queryable(c));
    await c.query('COMMIT');
    return r;
  } catch (e) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw e;
  }
}

/**
 * The one audit sealer: every worker process runs this, and the one holding the SEAL_LOCK session lock (on a
 * connection of its own, which also runs the sealing transactions, so losing the connection loses both) chains
 * committed audit rows shortly after commit, and emits signed checkpoints every AUDIT_CHECKPOINT_INTERVAL_MS (a
 * log line and an `audit.checkpoint` webhook). The others try to take over every second.
 */
export function startAuditSealer(ctx: AppContext, opts: SealerOptions = {}): AuditSealer {
  const log = ctx.logger.child({ component: 'audit-sealer' });
  const intervalMs = opts.intervalMs ?? ctx.config.AUDIT_SEAL_INTERVAL_MS;
  const electionMs = opts.electionIntervalMs ?? 1000;
  const checkpointMs = opts.checkpointIntervalMs ?? ctx.config.AUDIT_CHECKPOINT_INTERVAL_MS;
  const key: KeyObject | null = ctx.config.AUDIT_CHECKPOINT_KEY ? parsePrivateKey(ctx.config.AUDIT_CHECKPOINT_KEY) : null;
  const emitted: Checkpoint[] = [];

  let client: pg.Client | null = null;
  let leader = false;
  let stopped = false;
  let nudged = false;
  let wake: (() => void) | null = null;
  let current: Promise<void> | null = null;
  let nextCheckpointAt = Infinity;
  let failures = 0;

  const nudge = () => {
    nudged = true;
    wake?.();
  };

  const drop = () => {
    const c = client;
    client = null;
    if (leader) log.warn('lost the sealer connection; another worker (or this one, on reconnect) takes over');
    leader = false;
    c?.end().catch(() => undefined);
  };

  const connect = async (): Promise<pg.Client> => {
    const c = new pg.Client({ connectionString: ctx.config.DATABASE_URL, application_name: 'signoff-audit-sealer' });
    c.on('error', (e) => {
      log.warn({ err: e }, 'audit sealer connection error');
      if (client === c) drop();
    });
    c.on('end', () => {
      if (client === c) drop();
    });
    c.on('notification', (m) => {
      if (m.channel === AUDIT_CHANNEL) nudge();
    });
    await c.connect();
    return c;
  };

  const emitCheckpoint = async (c: pg.Client) => {
    const at = ctx.clock.now();
    const cp = await inTx(c, async (q) => {
      const signed = signCheckpoint(await chainHead(q), at, key!);
      await q.query(`INSERT INTO audit_checkpoints (sequence, head_hash, signed_at, key_id, signature) VALUES ($1,$2,$3,$4,$5)`, [
        signed.sequence,
        signed.headHash,
        signed.timestamp,
        signed.keyId,
        signed.signature,
      ]);
      await emit(q, {
        type: 'audit.checkpoint',
        subjectId: String(signed.sequence),
        actor: systemActor,
        at,
        data: { ...signed },
      });
      return signed;
    });
    emitted.push(cp);
    if (emitted.length > 100) emitted.shift();
    nextCheckpointAt = Date.now() + checkpointMs;
    log.info({ checkpoint: cp }, `audit checkpoint: sequence ${cp.sequence}, head ${cp.headHash}`);
  };

  const pass = async () => {
    if (stopped) return;
    client ??= await connect();
    const c = client;
    if (!leader) {
      const got = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [SEAL_LOCK]);
      if (!got.rows[0]?.ok) return;
      leader = true;
      await c.query(`LISTEN ${AUDIT_CHANNEL}`);
      const last = await c.query<{ at: Date | null }>('SELECT max(signed_at) AS at FROM audit_checkpoints');
      // one interval after the last one emitted (by whichever process), or after taking over a log that has none yet
      nextCheckpointAt =
        key && checkpointMs > 0 ? (last.rows[0]?.at ? new Date(last.rows[0].at).getTime() : Date.now()) + checkpointMs : Infinity;
      log.info(
        key && checkpointMs > 0 ? { checkpointIntervalMs: checkpointMs } : {},
        `this process is the audit sealer${key ? '' : ' (AUDIT_CHECKPOINT_KEY is not set here: no periodic checkpoints)'}`,
      );
    }
    nudged = false;
    for (;;) {
      const r = await inTx(c, (q) => sealPending(q, BATCH));
      if (r.sealed < BATCH || stopped) break;
    }
    if (Date.now() >= nextCheckpointAt) await emitCheckpoint(c);
    if (Date.now() >= nextHeldBackCheck) await reportHeldBack(c);
  };

  // rows wait for every transaction with a lower id not proven to be another database's: name the one holding them back
  let nextHeldBackCheck = 0;
  const reportHeldBack = async (c: pg.Client) => {
    nextHeldBackCheck = Date.now() + HELD_BACK_CHECK_MS;
    const q = queryable(c);
    const waiting = await unsealedRows(q);
    if (waiting.oldestAgeSeconds * 1000 < HELD_BACK_CHECK_MS) return;
    const horizon = await sealHorizon(q);
    const holder = await c.query<{
      pid: number;
      datname: string | null;
      application_name: string;
      state: string;
      xact_age: number;
      query: string;
    }>(
      `SELECT pid, datname, application_name, state, EXTRACT(EPOCH FROM clock_timestamp() - xact_start)::float8 AS xact_age, left(query, 120) AS query
         FROM pg_stat_activity WHERE backend_xid::text::bigint = $1::numeric % 4294967296 LIMIT 1`,
      [horizon],
    );
    log.warn(
      { unsealed: waiting.count, oldestAgeSeconds: waiting.oldestAgeSeconds, heldBy: holder.rows[0] ?? null },
      'audit sealing is held back by a long transaction (rows are kept and sealed once it ends)',
    );
    nextHeldBackCheck = Date.now() + HELD_BACK_REPEAT_MS;
  };

  const runOnce = (): Promise<void> => {
    current ??= pass()
      .then(() => {
        failures = 0;
      })
      .catch((e: unknown) => {
        failures++;
        // a failed pass seals nothing it could not finish; reconnect and try again (quietly after the first few)
        if (failures <= 3 || failures % 100 === 0) log.warn({ err: e, failures }, 'audit sealing pass failed; retrying');
        drop();
      })
      .finally(() => {
        current = null;
      });
    return current;
  };

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        wake = null;
        resolve();
      }
      wake = done;
    });

  const loop = async () => {
    while (!stopped) {
      await runOnce();
      if (stopped) break;
      if (!nudged) await sleep(leader ? intervalMs : electionMs * Math.min(Math.max(failures, 1), 10));
      // a burst of commits becomes one pass, not one each
      if (nudged && !stopped) await new Promise((r) => setTimeout(r, NUDGE_COALESCE_MS));
    }
  };
  void loop();

  return {
    isLeader: () => leader,
    runOnce,
    emitted,
    async stop() {
      stopped = true;
      wake?.();
      await current;
      const c = client;
      client = null;
      leader = false;
      // ending the session releases the lock at once, so another worker takes over within its election interval
      await c?.end().catch(() => undefined);
    },
  };
}
