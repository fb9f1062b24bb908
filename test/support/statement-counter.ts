import pg from 'pg';
import { WAKE_TAG } from '../../src/db/database.ts';

/**
 * Counts the SQL statements every pg client of this process sends (TypeORM's pool included: it uses the same
 * `pg` module), so a test can assert the round trips of one command and a regression shows.
 */
export function countStatements() {
  const proto = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
  const original = proto.query;
  let statements: string[] | null = null;
  proto.query = function (this: unknown, ...args: unknown[]) {
    const q = args[0];
    const text = typeof q === 'string' ? q : (q as { text?: string } | null)?.text;
    // the after-commit announcement is shared by every command committing at that moment, not one command's round trip
    if (statements && text && !text.startsWith(WAKE_TAG)) statements.push(text.replace(/\s+/g, ' ').trim().slice(0, 120));
    return original.apply(this, args);
  };
  return {
    /** runs fn and returns what it sent, in order */
    async during<T>(fn: () => Promise<T>): Promise<{ result: T; statements: string[] }> {
      statements = [];
      try {
        const result = await fn();
        return { result, statements };
      } finally {
        statements = null;
      }
    },
    restore() {
      proto.query = original;
    },
  };
}
