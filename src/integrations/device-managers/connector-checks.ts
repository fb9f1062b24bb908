import type { AppContext } from '../../app-context.ts';
import type { DeviceManagerConfig } from '../../core/device-manager.ts';
import type { Queryable } from '../../db/database.ts';
import { recordDeviceManagerCheck } from '../../db/device-manager-status.ts';
import type { DeviceManagers } from './connector-registry.ts';
import { deviceManagersFor } from './connector-registry.ts';

interface AppWithConnector {
  id: string;
  name: string;
  per_device: boolean;
  device_manager: DeviceManagerConfig;
}

/** Checks one application's connector settings now and records the result as its connector status. */
export async function checkNow(db: Queryable, managers: DeviceManagers, app: AppWithConnector): Promise<void> {
  const result = await managers.check(app.device_manager, { id: app.id, name: app.name, perDevice: app.per_device });
  const state = result.outcome === 'ok' ? 'ok' : result.outcome === 'rejected' ? 'error' : 'unchecked';
  const message =
    result.outcome === 'ok'
      ? (result.detail ?? null)
      : result.outcome === 'rejected'
        ? `deviceManager.${result.field}: ${result.message}`
        : result.message;
  await recordDeviceManagerCheck(db, app.id, app.device_manager.kind, state, message);
}

/**
 * Checks connector settings nobody could check when they were saved (the CLI that applied the catalog had no
 * credentials, the service was unreachable), so a wrong group or model name shows on the application before the first
 * approval runs into it.
 */
export async function checkUncheckedDeviceManagers(ctx: AppContext): Promise<number> {
  const managers = deviceManagersFor(ctx.config);
  const rows = await ctx.db.query<AppWithConnector>(
    `SELECT a.id, a.name, a.per_device, a.device_manager FROM applications a LEFT JOIN device_manager_status s ON s.application_id = a.id
      WHERE a.device_manager IS NOT NULL AND (s.application_id IS NULL OR (s.state = 'unchecked' AND s.last_success_at IS NULL))`,
  );
  let checked = 0;
  for (const r of rows) {
    if (!managers.configured(r.device_manager.kind)) continue;
    await checkNow(ctx.db, managers, r);
    checked++;
  }
  return checked;
}
