import 'reflect-metadata';
import pg from 'pg';
import { DataSource } from 'typeorm';
import { migrations } from '../../migrations/index.ts';

export interface Queryable {
  /** Runs SQL and returns the rows (also for UPDATE/DELETE ... RETURNING). */
  query<T = Record<string, any>>(sql: string, params?: unknown[]): Promise<T[]>;
  one<T = Record<string, any>>(sql: string, params?: unknown[]): Promise<T>;
  maybeOne<T = Record<string, any>>(sql: string, params?: unknown[]): Promise<T | undefined>;
}

/**
 * Statements worth preparing: a text seen again is sent as a named statement, so Postgres parses and plans it once
 * per connection instead of on every call (planning was 40% of a decision's time in Postgres). Texts are bounded so
 * generated SQL of many shapes cannot fill every backend with plans.
 */
class StatementNames {
  private readonly seen = new Map<string, string | null>();
  private readonly never = new Set<string>();
  private named = 0;
  constructor(private readonly limit = 400) {}

  nameOf(text: string): string | undefined {
    const known = this.seen.get(text);
    if (known) return known;
    if (known === undefined) {
      // the first sighting only counts: a statement run once is not worth a plan held on every connection
      if (this.seen.size < this.limit * 4) this.seen.set(text, null);
      return undefined;
    }
    if (this.named >= this.limit || this.never.has(text)) return undefined;
    const name = `s${++this.named}`;
    this.seen.set(text, name);
    return name;
  }

  /** the schema changed under a prepared `SELECT *` (a migration while running): plan it afresh from now on */
  forget(text: string): void {
    this.never.add(text);
    this.seen.set(text, null);
  }
}

const staleCachedPlan = (e: unknown) =>
  (e as { code?: string }).code === '0A000' && /cached plan must not change result type/.test(String((e as Error).message));

type Client = pg.PoolClient;

/** The LISTEN channels committed writes are announced on. */
export const WAKE_CHANNELS = { outbox: 'signoff_outbox', audit: 'signoff_audit' } as const;
/** Marks the announcement, which belongs to no command (the statement counters of the tests leave it out). */
export const WAKE_TAG = '/* signoff wake */';

/** What a committed write should wake: the outbox relay (and live pages), the audit sealer. */
interface Wakes {
  outbox: boolean;
  audit: boolean;
}
const writesOutbox = /\bINSERT INTO outbox\b/;
const writesAudit = /\bINSERT INTO audit_events\b/;

async function run<T>(client: Client, names: StatementNames, text: string, params: unknown[], wakes: Wakes): Promise<T[]> {
  if (!wakes.outbox && writesOutbox.test(text)) wakes.outbox = true;
  if (!wakes.audit && writesAudit.test(text)) wakes.audit = true;
  // a text without parameters goes by the simple protocol, which also runs several statements in one text
  const name = params.length ? names.nameOf(text) : undefined;
  let result: pg.QueryResult | pg.QueryResult[];
  try {
    result = (await client.query(name ? { name, text, values: params } : { text, values: params })) as pg.QueryResult | pg.QueryResult[];
  } catch (e) {
    if (!name || !staleCachedPlan(e)) throw e;
    names.forget(text);
    throw e;
  }
  // several statements in one text (no parameters) answer with one result each: the last one's rows
  return ((Array.isArray(result) ? result.at(-1)?.rows : result.rows) ?? []) as T[];
}

class ClientQueryable implements Queryable {
  readonly wakes: Wakes = { outbox: false, audit: false };
  constructor(
    private readonly client: Client,
    private readonly names: StatementNames,
  ) {}
  query<T>(sql: string, params: unknown[] = []): Promise<T[]> {
    return run<T>(this.client, this.names, sql, params, this.wakes);
  }
  async one<T>(sql: string, params: unknown[] = []): Promise<T> {
    const rows = await this.query<T>(sql, params);
    if (rows.length !== 1) throw new Error(`expected one row, got ${rows.length}: ${sql.slice(0, 80)}`);
    return rows[0]!;
  }
  async maybeOne<T>(sql: string, params: unknown[] = []): Promise<T | undefined> {
    return (await this.query<T>(sql, params))[0];
  }
}

export type Tx = Queryable;

/**
 * The product's handle on Postgres: plain SQL where races are settled, on the pg pool TypeORM opened (TypeORM runs
 * the migrations; its query runner cost about 85 µs a statement, so commands go to the pool directly).
 */
export class Database implements Queryable {
  private readonly names = new StatementNames();
  private readonly pendingWakes: Wakes = { outbox: false, audit: false };
  private waking: Promise<void> | null = null;
  constructor(readonly dataSource: DataSource) {}

  /**
   * Announces committed outbox and audit rows to the relay, live pages and the sealer (LISTEN), instead of the
   * triggers doing it inside each transaction (`signoff.wake = deferred`, migration 1763970000000). One
   * notification at a time per process: commits that land while one is on its way share the next.
   */
  private wake(w: Wakes): void {
    this.pendingWakes.outbox ||= w.outbox;
    this.pendingWakes.audit ||= w.audit;
    if (this.waking || (!this.pendingWakes.outbox && !this.pendingWakes.audit)) return;
    this.waking = this.sendWakes().finally(() => {
      this.waking = null;
      this.wake({ outbox: false, audit: false });
    });
  }

  private async sendWakes(): Promise<void> {
    // let the commits finishing in this turn of the event loop join
    await new Promise((r) => setImmediate(r));
    const channels: string[] = [];
    if (this.pendingWakes.outbox) channels.push(WAKE_CHANNELS.outbox);
    if (this.pendingWakes.audit) channels.push(WAKE_CHANNELS.audit);
    this.pendingWakes.outbox = this.pendingWakes.audit = false;
    if (!this.dataSource.isInitialized) return;
    // a lost notification is covered by the relay's reconciler and the sealer's poll
    await this.pool.query(`${WAKE_TAG} SELECT pg_notify(c, '*') FROM unnest($1::text[]) c`, [channels]).catch(() => undefined);
  }

  private get pool(): pg.Pool {
    return (this.dataSource.driver as unknown as { master: pg.Pool }).master;
  }

  /** The most connections the pool opens (DATABASE_POOL_SIZE in a running product). */
  get maxConnections(): number {
    return this.pool.options.max;
  }

  /**
   * A connection from the pool, listened to while it is out: when its socket dies under a statement (a failover, a
   * network reset), pg fails the statement and also emits 'error' on the connection, which with no listener ended
   * the process. The statement's failure is what the caller sees; the pool drops the dead connection on release.
   */
  private async checkout(): Promise<{ client: Client; release: (broken?: Error) => void }> {
    const client = await this.pool.connect();
    const lost = () => undefined;
    client.on('error', lost);
    return {
      client,
      release: (broken) => {
        client.removeListener('error', lost);
        client.release(broken);
      },
    };
  }

  // pg's pool drops a client whose connection broke when it is released; a statement Postgres refused leaves it usable
  async query<T = Record<string, any>>(sql: string, params: unknown[] = []): Promise<T[]> {
    const { client, release } = await this.checkout();
    const wakes: Wakes = { outbox: false, audit: false };
    try {
      const rows = await run<T>(client, this.names, sql, params, wakes).catch((e) => {
        if (staleCachedPlan(e)) return run<T>(client, this.names, sql, params, wakes);
        throw e;
      });
      this.wake(wakes);
      return rows;
    } finally {
      release();
    }
  }
  async one<T = Record<string, any>>(sql: string, params: unknown[] = []): Promise<T> {
    const rows = await this.query<T>(sql, params);
    if (rows.length !== 1) throw new Error(`expected one row, got ${rows.length}`);
    return rows[0]!;
  }
  async maybeOne<T = Record<string, any>>(sql: string, params: unknown[] = []): Promise<T | undefined> {
    return (await this.query<T>(sql, params))[0];
  }

  /** One command, one transaction (READ COMMITTED; row locks settle races). */
  async tx<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    const { client, release } = await this.checkout();
    let broken: Error | undefined;
    try {
      await client.query('START TRANSACTION');
      const q = new ClientQueryable(client, this.names);
      const result = await fn(q);
      await client.query('COMMIT');
      this.wake(q.wakes);
      return result;
    } catch (e) {
      // a connection that cannot even roll back is closed rather than handed out again mid-transaction
      await client.query('ROLLBACK').catch((r) => {
        broken = r as Error;
      });
      throw e;
    } finally {
      release(broken);
    }
  }

  async close(): Promise<void> {
    await this.waking;
    if (this.dataSource.isInitialized) await this.dataSource.destroy();
  }
}

export interface PoolOptions {
  poolSize?: number;
  /** how long a new connection may take before the call fails as unavailable (DATABASE_CONNECT_TIMEOUT_MS) */
  connectTimeoutMs?: number;
  /** how long an unused connection stays open (pg's default is 10 s) */
  idleTimeoutMs?: number;
}

export const DEFAULT_CONNECT_TIMEOUT_MS = 5000;

export function createDataSource(url: string, opts: PoolOptions = {}): DataSource {
  return new DataSource({
    type: 'postgres',
    url,
    entities: [],
    migrations,
    migrationsTableName: 'schema_migrations',
    synchronize: false,
    logging: false,
    extra: {
      max: opts.poolSize ?? 20,
      // the outbox and audit triggers leave announcing to Database.wake (migration 1763970000000)
      options: '-c signoff.wake=deferred',
      connectionTimeoutMillis: opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      ...(opts.idleTimeoutMs !== undefined ? { idleTimeoutMillis: opts.idleTimeoutMs } : {}),
    },
  });
}

export class DatabaseUnavailableError extends Error {
  constructor(url: string, cause: unknown) {
    const safe = redactUrl(url);
    const reason = (cause as Error)?.message ?? String(cause);
    super(
      `Cannot reach PostgreSQL at ${safe} (${reason}). Start PostgreSQL ` +
        `(pg_ctlcluster --skip-systemctl-redirect <version> main start) or set DATABASE_URL to a reachable server.`,
    );
    this.name = 'DatabaseUnavailableError';
  }
}

export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable DATABASE_URL)';
  }
}

/** Creates the database named in the URL when it does not exist yet; true when this call created it. */
export async function ensureDatabaseExists(url: string, connectTimeoutMs = DEFAULT_CONNECT_TIMEOUT_MS): Promise<boolean> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.replace(/^\//, '')) || 'postgres';
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString(), connectionTimeoutMillis: connectTimeoutMs });
  // a socket lost mid-statement fails the statement awaited below; unheard, pg's 'error' event would end the process
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (e) {
    throw new DatabaseUnavailableError(url, e);
  }
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (found.rowCount === 0) {
      try {
        await client.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
        return true;
      } catch (e) {
        if ((e as { code?: string }).code !== '42P04') throw e; // created concurrently by another process
      }
    }
    return false;
  } finally {
    await client.end();
  }
}

/** What opening a database with `migrate` did: created it, and which migrations it applied (none: up to date). */
export interface MigrationReport {
  created: boolean;
  applied: string[];
}

/** Connects, creating the database if needed, and optionally runs pending migrations. */
export async function openDatabase(
  url: string,
  opts: PoolOptions & { migrate?: boolean; report?: (r: MigrationReport) => void } = {},
): Promise<Database> {
  const created = await ensureDatabaseExists(url, opts.connectTimeoutMs);
  const ds = createDataSource(url, opts);
  try {
    await ds.initialize();
  } catch (e) {
    throw new DatabaseUnavailableError(url, e);
  }
  if (opts.migrate) {
    // an advisory lock keeps several processes starting at once from migrating twice
    const lock = ds.createQueryRunner();
    await lock.connect();
    await lock.query('SELECT pg_advisory_lock(7461626)');
    try {
      const applied = await ds.runMigrations({ transaction: 'each' });
      opts.report?.({ created, applied: applied.map((m) => m.name) });
    } finally {
      await lock.query('SELECT pg_advisory_unlock(7461626)').catch(() => undefined);
      await lock.release();
    }
  }
  return new Database(ds);
}

/** The migrations applied so far, in the order they ran. */
export const appliedMigrations = (q: Queryable) => q.query<{ name: string }>('SELECT name FROM schema_migrations ORDER BY id');

/** One trivial round trip: the readiness probe's "is PostgreSQL answering". */
export const pingDatabase = (q: Queryable) => q.query('SELECT 1');
