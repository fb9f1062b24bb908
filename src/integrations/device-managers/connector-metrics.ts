import { Gauge, type Registry } from 'prom-client';
import type { Database } from '../../db/database.ts';
import { allDeviceManagerStatuses } from '../../db/device-manager-status.ts';

/**
 * Connector health for alerting, read from Postgres at scrape time like the other metrics: 1 per application whose
 * connector last worked, 0 for one that failed (its message is on the application), nothing while unchecked; and the
 * connector orders on record by kind and status.
 */
export function registerDeviceManagerMetrics(
  registry: Registry,
  db: Database,
  safe: (what: string, fn: () => Promise<void>) => Promise<void>,
): void {
  new Gauge({
    name: 'signoff_device_manager_up',
    help: "Whether the application's device-manager connector last worked (1) or failed (0); see deviceManagerStatus on the application",
    labelNames: ['application', 'kind'],
    registers: [registry],
    async collect() {
      await safe('device-manager status', async () => {
        this.reset();
        for (const s of await allDeviceManagerStatuses(db))
          if (s.state !== 'unchecked') this.set({ application: s.applicationId, kind: s.kind }, s.state === 'ok' ? 1 : 0);
      });
    },
  });
  new Gauge({
    name: 'signoff_device_manager_orders',
    help: 'Device-manager connector orders on record by kind and status (pending, succeeded, failed)',
    labelNames: ['kind', 'status'],
    registers: [registry],
    async collect() {
      await safe('device-manager orders', async () => {
        this.reset();
        const rows = await db.query<{ connector: string; status: string; n: string }>(
          `SELECT connector, status, count(*) AS n FROM webhook_deliveries WHERE connector IS NOT NULL GROUP BY connector, status`,
        );
        for (const r of rows) this.set({ kind: r.connector, status: r.status }, Number(r.n));
      });
    },
  });
}
