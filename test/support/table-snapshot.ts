import type { Database } from '../../src/db/database.ts';

/**
 * Every table's rows, counted and hashed, so a test can show that something changed nothing at all.
 * `ignore` names columns per table that are bookkeeping rather than content (api_keys' last_used_at moves on
 * every authenticated call).
 */
export async function tableSnapshot(db: Database, ignore: Record<string, string[]> = {}): Promise<Record<string, string>> {
  const tables = await db.query<{ name: string }>(
    `SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1`,
  );
  const out: Record<string, string> = {};
  for (const { name } of tables) {
    const without = (ignore[name] ?? []).map((c) => ` - '${c}'`).join('');
    const row = await db.one<{ n: string; h: string }>(
      `SELECT count(*) AS n, md5(coalesce(string_agg(j::text, E'\\n' ORDER BY j::text), '')) AS h
         FROM (SELECT to_jsonb(x)${without} AS j FROM "${name}" x) s`,
    );
    out[name] = `${row.n} rows, ${row.h}`;
  }
  return out;
}
