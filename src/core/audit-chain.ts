import type { Queryable, Tx } from '../db/database.ts';
import { auditEventColumns, chainHash, contentOf, GENESIS, type AuditEventRow } from './audit-log.ts';

/**
 * The sealed audit chain (audit_chain): sequence n links event row e with prev_hash = hash of n-1 and
 * hash = sha256(prev_hash, content of e). Rows are sealed in (xid, id) order, and only rows whose transaction id is
 * below the sealing horizon (sealHorizon: every transaction with a lower id that could write here has ended), so no
 * row can appear later behind the sealed head: the last sealed (xid, id) is a safe cursor, as in Postgres event stores.
 */

/** Session advisory lock held by the one sealer (any worker process may hold it). */
export const SEAL_LOCK = 7461628;

export interface ChainHead {
  /** the number of sealed rows, which is also the sequence of the last one (0: empty chain) */
  sequence: number;
  /** the hash of the row at `sequence` (GENESIS when empty) */
  hash: string;
}

interface HeadRow {
  seq: string;
  hash: string;
  event_id: string;
  event_xid: string | null;
}

async function headRow(db: Queryable): Promise<HeadRow | undefined> {
  return db.maybeOne<HeadRow>('SELECT seq, hash, event_id, event_xid::text AS event_xid FROM audit_chain ORDER BY seq DESC LIMIT 1');
}

export async function chainHead(db: Queryable): Promise<ChainHead> {
  const h = await headRow(db);
  return h ? { sequence: Number(h.seq), hash: h.hash } : { sequence: 0, hash: GENESIS };
}

/**
 * The least transaction id that may still write audit rows here: the least one in progress in this statement's
 * snapshot, leaving out those proven to belong to another database (a pg_stat_activity backend of another datid
 * holds it as backend_xid; a backend never changes database and an xid is never reused), else the snapshot's xmax.
 * What is not proven foreign stays in (prepared transactions, subtransaction ids, backends without a database).
 * Plain pg_snapshot_xmin would let a long transaction in any database of the server hold sealing back.
 *
 * Why it is safe to read rows below it in a later statement (READ COMMITTED takes a new snapshot per statement):
 * every id below the snapshot's xmax was assigned before the snapshot, so each of ours below the horizon had
 * ended then, and any later snapshot sees exactly the same committed rows below it.
 * pg_stat_activity is read once per transaction and pairs a backend's database with the xid in its process slot
 * at read time, not atomically (the slot may pass to a new backend in between). Clearing that cache first makes
 * the read come after the snapshot, so a mis-paired xid was assigned after the snapshot and is not among its
 * in-progress ids.
 */
export async function sealHorizon(db: Queryable): Promise<string> {
  await db.query('SELECT pg_stat_clear_snapshot()');
  const r = await db.one<{ horizon: string }>(
    `WITH s AS (SELECT pg_current_snapshot() AS snap),
          foreign_xid AS (
            SELECT backend_xid::text::bigint AS low FROM pg_stat_activity
             WHERE backend_xid IS NOT NULL AND datid <> (SELECT oid FROM pg_database WHERE datname = current_database()))
     SELECT coalesce(
              (SELECT min(x) FROM s, pg_snapshot_xip(s.snap) AS x
                WHERE (x::text::numeric % 4294967296)::bigint NOT IN (SELECT low FROM foreign_xid)),
              (SELECT pg_snapshot_xmax(snap) FROM s))::text AS horizon`,
  );
  return r.horizon;
}

/**
 * Chains up to `limit` rows past the head, inside the caller's transaction, which must hold SEAL_LOCK (a second
 * sealer would fail on the unique sequence anyway). Returns how many rows it sealed and the new head.
 */
export async function sealPending(tx: Tx, limit = 2000): Promise<{ sealed: number; head: ChainHead }> {
  const h = await headRow(tx);
  const horizon = await sealHorizon(tx);
  // rows chained before sealing existed have no xid; every newer row sorts after them
  const rows = await tx.query<AuditEventRow & { xid: string }>(
    `SELECT ${auditEventColumns}, e.xid::text AS xid FROM audit_events e
      WHERE e.xid < $4::xid8 AND (e.xid, e.id) > ($1::xid8, $2::bigint)
      ORDER BY e.xid, e.id LIMIT $3`,
    [h?.event_xid ?? '0', h?.event_xid ? h.event_id : '0', limit, horizon],
  );
  let seq = h ? Number(h.seq) : 0;
  let prev = h?.hash ?? GENESIS;
  if (rows.length === 0) return { sealed: 0, head: { sequence: seq, hash: prev } };
  const cols = { seq: [] as number[], id: [] as string[], xid: [] as string[], prev: [] as string[], hash: [] as string[] };
  for (const r of rows) {
    const hash = chainHash(prev, contentOf(r));
    seq += 1;
    cols.seq.push(seq);
    cols.id.push(r.id);
    cols.xid.push(r.xid);
    cols.prev.push(prev);
    cols.hash.push(hash);
    prev = hash;
  }
  await tx.query(
    `INSERT INTO audit_chain (seq, event_id, event_xid, prev_hash, hash)
     SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::xid8[], $4::text[], $5::text[])`,
    [cols.seq, cols.id, cols.xid, cols.prev, cols.hash],
  );
  return { sealed: rows.length, head: { sequence: seq, hash: prev } };
}

/**
 * Seals what it can now when no sealer process holds the lock (the CLI, tests); null when another sealer does.
 * Loops until nothing below the horizon is left.
 */
export async function sealNow(db: { tx<T>(fn: (tx: Tx) => Promise<T>): Promise<T> }): Promise<{ sealed: number; head: ChainHead } | null> {
  let total = 0;
  for (;;) {
    const r = await db.tx(async (tx) => {
      const got = await tx.one<{ ok: boolean }>('SELECT pg_try_advisory_xact_lock($1) AS ok', [SEAL_LOCK]);
      return got.ok ? sealPending(tx) : null;
    });
    if (!r) return null;
    total += r.sealed;
    if (r.sealed === 0) return { sealed: total, head: r.head };
  }
}

export interface Unsealed {
  /** committed audit rows not in the chain yet */
  count: number;
  /** seconds since the oldest of them was written (0 when none) */
  oldestAgeSeconds: number;
}

/** What waits for the sealer: every row past the head's (xid, id) cursor. */
export async function unsealedRows(db: Queryable): Promise<Unsealed> {
  const r = await db.one<{ n: string; age: number | null }>(
    `WITH h AS (SELECT event_xid, event_id FROM audit_chain WHERE event_xid IS NOT NULL ORDER BY seq DESC LIMIT 1)
     SELECT count(*) AS n, EXTRACT(EPOCH FROM (clock_timestamp() - min(e.recorded_at)))::float8 AS age
       FROM audit_events e
      WHERE (e.xid, e.id) > (coalesce((SELECT event_xid FROM h), '0'::xid8), coalesce((SELECT event_id FROM h), 0))`,
  );
  return { count: Number(r.n), oldestAgeSeconds: Math.max(0, Number(r.age ?? 0)) };
}

export interface AuditVerification {
  ok: boolean;
  /** sealed rows checked (all of them when ok) */
  checked: number;
  /** rows written but not chained yet; they are checked once sealed */
  unsealed: number;
  /** the last sealed row, as far as the chain is intact */
  head: ChainHead;
  firstBroken?: { id: string; sequence: number; reason: string };
}

interface ChainWalkRow extends Omit<AuditEventRow, 'id'> {
  seq: string;
  event_id: string;
  prev_hash: string;
  hash: string;
  id: string | null;
}

/**
 * Walks the sealed chain in sequence order, in pages, and reports the first row whose position, link or content
 * does not match; then checks that no row was slipped in behind the head, and counts rows not sealed yet.
 */
export async function verifyAudit(db: Queryable, pageSize = 1000): Promise<AuditVerification> {
  let prev = GENESIS;
  let last = 0;
  const broken = (id: string, sequence: number, reason: string): AuditVerification => ({
    ok: false,
    checked: last,
    unsealed: 0,
    head: { sequence: last, hash: prev },
    firstBroken: { id, sequence, reason },
  });
  for (;;) {
    const rows = await db.query<ChainWalkRow>(
      `SELECT c.seq, c.event_id, c.prev_hash, c.hash, ${auditEventColumns}
         FROM audit_chain c LEFT JOIN audit_events e ON e.id = c.event_id
        WHERE c.seq > $1 ORDER BY c.seq LIMIT $2`,
      [last, pageSize],
    );
    for (const r of rows) {
      const seq = Number(r.seq);
      if (seq !== last + 1) return broken(r.event_id, last + 1, `sequence ${last + 1} is missing (a sealed row was removed)`);
      if (r.prev_hash !== prev)
        return broken(r.event_id, seq, 'prev_hash does not match the previous row (a row was removed or reordered)');
      if (r.id === null) return broken(r.event_id, seq, 'the audit event of this sequence is gone (a row was deleted)');
      const content = contentOf(r as AuditEventRow);
      if (chainHash(prev, content) !== r.hash) {
        // content sealed at another position (ids swapped between rows) is a reordering, not an edit
        const elsewhere = rows.find((o) => o !== r && o.id !== null && chainHash(o.prev_hash, content) === o.hash);
        return broken(
          r.event_id,
          seq,
          elsewhere
            ? `content does not match its hash: it is the content sealed at sequence ${elsewhere.seq} (rows were reordered)`
            : 'content does not match its hash (the row was edited)',
        );
      }
      prev = r.hash;
      last = seq;
    }
    if (rows.length < pageSize) break;
  }
  // a row below the sealer's cursor that is not in the chain was written behind its back (or the chain lost it)
  const stray = await db.maybeOne<{ id: string }>(
    `WITH h AS (SELECT event_xid, event_id FROM audit_chain WHERE event_xid IS NOT NULL ORDER BY seq DESC LIMIT 1)
     SELECT e.id FROM audit_events e
      WHERE (e.xid IS NULL OR (e.xid, e.id) <= ((SELECT event_xid FROM h), (SELECT event_id FROM h)))
        AND NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.event_id = e.id)
      ORDER BY e.id LIMIT 1`,
  );
  if (stray)
    return broken(
      stray.id,
      last,
      `row ${stray.id} is behind the sealed head but not in the chain (it was inserted there, or its chain entry was deleted)`,
    );
  const unsealed = await unsealedRows(db);
  return { ok: true, checked: last, unsealed: unsealed.count, head: { sequence: last, hash: prev } };
}
