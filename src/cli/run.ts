import { InvalidArgumentError } from 'commander';
import type { AppContext } from '../app-context.ts';
import { buildContext } from '../build-context.ts';
import { ConfigError, loadConfig } from '../config.ts';
import { isAppError, toAppError } from '../core/errors.ts';
import { DatabaseUnavailableError, openDatabase, type Database } from '../db/database.ts';
import { createLogger } from '../logger.ts';

/** Where the CLI writes; tests and the commands share it so the last stdout line stays meaningful. */
export const out = {
  line: (text = '') => process.stdout.write(`${text}\n`),
  error: (text: string) => process.stderr.write(`${text}\n`),
};

/** Exit codes: 0 done, 1 the command failed (bad input, broken audit chain), 2 the environment is unusable. */
export const EXIT_FAILED = 1;
export const EXIT_ENVIRONMENT = 2;

/**
 * Runs a command body and turns whatever it throws into one line on stderr and an exit code: an admin at a
 * terminal needs the reason, not a stack trace (set SIGNOFF_DEBUG=1 to see one for unexpected errors).
 */
// biome-ignore lint/suspicious/noConfusingVoidType: a command body that returns nothing exits 0
export async function runCommand(body: () => Promise<number | void>): Promise<void> {
  let code: number;
  try {
    code = (await body()) ?? 0;
  } catch (e) {
    code = reportError(e);
  }
  process.exitCode = code;
}

export function reportError(e: unknown): number {
  if (e instanceof ConfigError) {
    out.error(`error: invalid configuration: ${e.problems.join('; ')}`);
    return EXIT_ENVIRONMENT;
  }
  if (e instanceof DatabaseUnavailableError) {
    out.error(`error: ${e.message}`);
    return EXIT_ENVIRONMENT;
  }
  if (isAppError(e)) {
    out.error(`error: ${e.message}`);
    return e.code === 'dependency_unavailable' ? EXIT_ENVIRONMENT : EXIT_FAILED;
  }
  const app = toAppError(e);
  if (app.code === 'dependency_unavailable') {
    out.error(`error: ${app.message}`);
    return EXIT_ENVIRONMENT;
  }
  out.error(`error: ${(e as Error)?.message ?? String(e)}`);
  if (process.env.SIGNOFF_DEBUG) out.error(String((e as Error)?.stack ?? ''));
  return EXIT_FAILED;
}

/** Configuration once, a migrated database, a context without chat adapters; closed when the body ends. */
export async function withDatabase<T>(body: (db: Database) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const db = await openDatabase(config.DATABASE_URL, { migrate: true, poolSize: 2, connectTimeoutMs: config.DATABASE_CONNECT_TIMEOUT_MS });
  try {
    return await body(db);
  } finally {
    await db.close();
  }
}

export async function withContext<T>(body: (ctx: AppContext) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const db = await openDatabase(config.DATABASE_URL, { migrate: true, poolSize: 2, connectTimeoutMs: config.DATABASE_CONNECT_TIMEOUT_MS });
  try {
    // logs would interleave with the command's own output, which scripts parse
    return await body(buildContext({ config, db, logger: createLogger('silent') }));
  } finally {
    await db.close();
  }
}

/** A plain text table; columns are as wide as their widest cell. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (c ?? '').padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** An option's parser for a whole number from 1 to `max`. */
export const positiveInt = (max: number) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new InvalidArgumentError(`must be a whole number from 1 to ${max}`);
  return n;
};
