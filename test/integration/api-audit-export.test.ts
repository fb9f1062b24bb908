import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sealAll } from '../support/audit.ts';
import { BOB_LAPTOP, VISIO } from '../support/fixtures.ts';
import { createApiHarness, type ApiHarness } from './api-harness.ts';

let h: ApiHarness;

beforeAll(async () => {
  h = await createApiHarness();
});
afterAll(() => h.close());

type Item = { id: string; sealed: boolean; sequence: number | null; prevHash: string | null; hash: string | null; action: string };

async function exportAll(query: string, limit: number): Promise<Item[]> {
  const items: Item[] = [];
  let cursor: string | null = null;
  do {
    const res = await h.as(h.keys.admin).get(`/api/v1/audit?limit=${limit}${query}${cursor ? `&cursor=${cursor}` : ''}`);
    expect(res.status).toBe(200);
    items.push(...res.body.items);
    cursor = res.body.nextCursor;
  } while (cursor);
  return items;
}

describe('audit export with sealed and unsealed rows', () => {
  it('lists sealed rows in chain order with their hashes, then rows not sealed yet, marked and without hashes', async () => {
    await h.as(h.keys.write).post('/api/v1/approved-requests', { applicationId: VISIO, clientGuid: BOB_LAPTOP });
    await sealAll(h.t.tdb.db);
    const sealedBefore = (await exportAll('', 200)).length;
    // more history that no sealer has chained yet (no worker runs here)
    await h.as(h.keys.write).post('/api/v1/approved-requests', { applicationId: VISIO, clientGuid: BOB_LAPTOP, autoInstall: true });
    await h.as(h.keys.write).post('/api/v1/approved-requests', { applicationId: VISIO, clientGuid: BOB_LAPTOP, autoInstall: true });
    const total = Number((await h.t.tdb.db.one<{ n: string }>('SELECT count(*) AS n FROM audit_events')).n);
    expect(total).toBeGreaterThan(sealedBefore);

    // pages of 3 cross from the chain into the unsealed tail without losing or repeating a row
    const all = await exportAll('', 3);
    expect(all).toHaveLength(total);
    expect(new Set(all.map((i) => i.id)).size).toBe(total);
    const sealed = all.filter((i) => i.sealed);
    const unsealed = all.filter((i) => !i.sealed);
    expect(all.slice(0, sealed.length)).toEqual(sealed);
    expect(sealed.map((i) => i.sequence)).toEqual(sealed.map((_, n) => n + 1));
    for (let n = 1; n < sealed.length; n++) expect(sealed[n]!.prevHash).toBe(sealed[n - 1]!.hash);
    expect(unsealed.length).toBe(total - sealedBefore);
    expect(unsealed.every((i) => i.sequence === null && i.hash === null && i.prevHash === null)).toBe(true);

    // include=sealed: only the chain, and its last cursor is where an incremental export resumes
    expect(await exportAll('&include=sealed', 3)).toEqual(sealed);
    const verify = await h.as(h.keys.admin).get('/api/v1/audit/verify');
    expect(verify.body).toMatchObject({ ok: true, checked: sealed.length, unsealed: unsealed.length });

    await sealAll(h.t.tdb.db);
    const after = await exportAll('&include=sealed', 200);
    expect(after).toHaveLength(total);
    expect(after.slice(0, sealed.length)).toEqual(sealed);
  });
});
