import type { Database, Queryable } from '../db/database.ts';
import { forgetDeviceManagerStatus, recordDeviceManagerCheck } from '../db/device-manager-status.ts';
import { canonicalJson } from './canonical-json.ts';
import type { ApplicationInput } from './catalog-schemas.ts';
import { configMgrModelName, type DeviceManagerCheck, type DeviceManagerKind } from './device-manager.ts';
import { AppError } from './errors.ts';

export type CheckRecord =
  | { applicationId: string; forget: true }
  | { applicationId: string; forget?: false; kind: DeviceManagerKind; state: 'ok' | 'unchecked'; message: string | null };

/**
 * Checks the device-manager settings of applications about to be saved, before the catalog's write transaction
 * (the checks call Graph or the AdminService, which must not hold the catalog lock). Only settings that changed are
 * checked, so applying an unchanged file calls nobody. A group or app that does not exist refuses the save, naming
 * the field; a check that could not run saves it and leaves the reason on the application's connector status.
 */
export async function checkDeviceManagers(
  db: Database,
  check: DeviceManagerCheck | undefined,
  apps: ApplicationInput[],
  section?: string,
): Promise<CheckRecord[]> {
  const records: CheckRecord[] = [];
  for (const [index, app] of apps.entries()) {
    const stored = await db.maybeOne<{ device_manager: unknown; per_device: boolean }>(
      'SELECT device_manager, per_device FROM applications WHERE id = $1',
      [app.id],
    );
    const config = app.deviceManager;
    if (!config) {
      if (stored?.device_manager) records.push({ applicationId: app.id, forget: true });
      continue;
    }
    if (stored && canonicalJson(stored.device_manager) === canonicalJson(config) && stored.per_device === app.perDevice) continue;
    // a missing model name is refused inside the transaction with the other reference checks
    if (config.kind === 'configmgr' && !configMgrModelName(config, app.id)) continue;
    const result = check
      ? await check(config, { id: app.id, name: app.name, perDevice: app.perDevice })
      : { outcome: 'unverified' as const, message: 'not checked: this process has no connector check' };
    if (result.outcome === 'rejected') {
      const field = `deviceManager.${result.field}`;
      const where = section ? `${section}[${index}] "${app.id}": ` : '';
      throw new AppError('validation_failed', `${where}${field}: ${result.message}`, {
        errors: [{ field: section ? `${section}.${index}.${field}` : field, message: result.message }],
        ...(section ? { path: [section, index] } : {}),
      });
    }
    records.push(
      result.outcome === 'ok'
        ? { applicationId: app.id, kind: config.kind, state: 'ok', message: result.detail ?? null }
        : { applicationId: app.id, kind: config.kind, state: 'unchecked', message: result.message },
    );
  }
  return records;
}

export async function recordChecks(tx: Queryable, records: CheckRecord[]): Promise<void> {
  for (const r of records) {
    if (r.forget) await forgetDeviceManagerStatus(tx, r.applicationId);
    else await recordDeviceManagerCheck(tx, r.applicationId, r.kind, r.state, r.message);
  }
}
