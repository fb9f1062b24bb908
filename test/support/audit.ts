import { sealNow, unsealedRows } from '../../src/core/audit-chain.ts';
import type { Database } from '../../src/db/database.ts';
import { waitFor } from './wait.ts';

/**
 * Seals every audit row committed so far, as the worker's sealer would. A row becomes sealable once every
 * transaction with a lower id that may write here has ended (other databases' do not count, prepared ones do), so
 * this waits for that condition rather than a fixed time.
 */
export async function sealAll(db: Database): Promise<void> {
  let unsealed: unknown;
  await waitFor(
    async () => {
      await sealNow(db);
      unsealed = await unsealedRows(db);
      return (unsealed as { count: number }).count === 0;
    },
    'every committed audit row to be sealed (an older transaction may hold them back)',
    { intervalMs: 20, state: () => unsealed },
  );
}
