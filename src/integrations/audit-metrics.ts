import { Gauge, type Registry } from 'prom-client';
import { chainHead, unsealedRows } from '../core/audit-chain.ts';
import type { Database } from '../db/database.ts';

/**
 * The audit chain's health, read from Postgres at scrape time like the other metrics (so any web process reports
 * it, whichever worker seals): how far sealing lags behind the writes, and when the last checkpoint was signed.
 */
export function registerAuditMetrics(
  registry: Registry,
  db: Database,
  safe: (what: string, fn: () => Promise<void>) => Promise<void>,
): void {
  // one read per scrape for both unsealed figures
  let scrape: Promise<{ count: number; oldestAgeSeconds: number }> | null = null;
  const unsealed = () => {
    scrape ??= unsealedRows(db).finally(() => setImmediate(() => (scrape = null)));
    return scrape;
  };
  new Gauge({
    name: 'signoff_audit_seal_lag_seconds',
    help: 'Age of the oldest committed audit row not yet sealed into the hash chain (0 when none); the sealer runs in worker processes',
    registers: [registry],
    async collect() {
      await safe('audit seal lag', async () => this.set((await unsealed()).oldestAgeSeconds));
    },
  });
  new Gauge({
    name: 'signoff_audit_unsealed_rows',
    help: 'Committed audit rows not yet sealed into the hash chain',
    registers: [registry],
    async collect() {
      await safe('audit unsealed rows', async () => this.set((await unsealed()).count));
    },
  });
  new Gauge({
    name: 'signoff_audit_sealed_rows',
    help: 'Rows in the sealed audit chain (the head sequence)',
    registers: [registry],
    async collect() {
      await safe('audit chain head', async () => this.set((await chainHead(db)).sequence));
    },
  });
  new Gauge({
    name: 'signoff_audit_last_checkpoint_timestamp_seconds',
    help: 'When the sealer last emitted a signed checkpoint (unix time; 0 when never)',
    registers: [registry],
    async collect() {
      await safe('audit checkpoints', async () => {
        const r = await db.one<{ at: number | null }>('SELECT EXTRACT(EPOCH FROM max(signed_at))::float8 AS at FROM audit_checkpoints');
        this.set(r.at ?? 0);
      });
    },
  });
}
