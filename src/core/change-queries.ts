import type { Queryable } from '../db/database.ts';

/** Every resource type some change policy protects, sorted: what a change form offers. */
export async function protectedResourceTypes(db: Queryable): Promise<string[]> {
  const rows = await db.query<{ t: string }>('SELECT DISTINCT unnest(resource_types) AS t FROM change_policies ORDER BY 1');
  return rows.map((r) => r.t);
}
