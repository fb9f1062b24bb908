import 'reflect-metadata';
import pg from 'pg';
import { DataSource, type QueryRunner } from 'typeorm';
import { migrations } from '../../migrations/index.ts';

export interface Queryable {
  /** Runs SQL and returns the rows (also for UPDATE/DELETE ... RETURNING). */
  query<T = Record<string, any>>(sql: string, params?: unknown[]): Promise<T[]>;
  one<T = Record<string, any>>(sql: string, params?: unknown[]): Promise<T>;
  maybeOne<T = Record<string, any>>(sql: string, params?: unknown[]): Promise<T | undefined>;
}

class RunnerQueryable implements Queryable {
  constructor(private readonly runner: QueryRunner) {}
  async query<T>(sql: string, params: unknown[] = []): Promise<T[]> {
    const result = await this.runner.query(sql, params, true);
    return (result.records ?? []) as T[];
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

/** The product's handle on Postgres: plain SQL where races are settled, TypeORM for connections and migrations. */
export class Database implements Queryable {
  constructor(readonly dataSource: DataSource) {}

  async query<T = Record<string, any>>(sql: string, params: unknown[] = []): Promise<T[]> {
    const runner = this.dataSource.createQueryRunner();
    try {
      return await new RunnerQueryable(runner).query<T>(sql, params);
    } finally {
      await runner.release();
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
    const runner = this.dataSource.createQueryRunner();
    await runner.connect();
    await runner.startTransaction();
    try {
      const result = await fn(new RunnerQueryable(runner));
      await runner.commitTransaction();
      return result;
    } catch (e) {
      if (runner.isTransactionActive) await runner.rollbackTransaction().catch(() => undefined);
      throw e;
    } finally {
      await runner.release();
    }
  }

  async close(): Promise<void> {
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

/** Creates the database named in the URL when it does not exist yet. */
export async function ensureDatabaseExists(url: string, connectTimeoutMs = DEFAULT_CONNECT_TIMEOUT_MS): Promise<void> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.replace(/^\//, '')) || 'postgres';
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString(), connectionTimeoutMillis: connectTimeoutMs });
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
      } catch (e) {
        if ((e as { code?: string }).code !== '42P04') throw e; // created concurrently by another process
      }
    }
  } finally {
    await client.end();
  }
}

/** Connects, creating the database if needed, and optionally runs pending migrations. */
export async function openDatabase(url: string, opts: PoolOptions & { migrate?: boolean } = {}): Promise<Database> {
  await ensureDatabaseExists(url, opts.connectTimeoutMs);
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
      await ds.runMigrations({ transaction: 'each' });
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
