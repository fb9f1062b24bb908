import { sealNow, unsealedRows } from '../../src/core/audit-chain.ts';
import type { Database } from '../../src/db/database.ts';

/**
 * Seals every audit row committed so far, as the worker's sealer would. A row becomes sealable once every
 * transaction with a lower id has ended, anywhere on the server (other test files included), so this waits for
 * that condition rather than a fixed time.
 */
export async function sealAll(db: Database): Promise<void> {
  for (;;) {
    await sealNow(db);
    if ((await unsealedRows(db)).count === 0) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}
