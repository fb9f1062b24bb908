import type { DeviceManagerKind } from '../core/device-manager.ts';
import type { Queryable } from './database.ts';

/**
 * What each application's connector last found: its configuration check and its deliveries write here, the
 * application view, the connector API and the metrics read it. One row per application with a connector.
 */
export type DeviceManagerState = 'ok' | 'error' | 'unchecked';

export interface DeviceManagerStatusView {
  kind: DeviceManagerKind;
  state: DeviceManagerState;
  /** why it is not ok (or what the last check found), in words an administrator can act on */
  message: string | null;
  checkedAt: string | null;
  lastSuccessAt: string | null;
  lastFailureAt: string | null;
}

interface Row {
  application_id: string;
  kind: DeviceManagerKind;
  state: DeviceManagerState;
  message: string | null;
  checked_at: Date | null;
  last_success_at: Date | null;
  last_failure_at: Date | null;
}

const iso = (d: Date | null) => (d ? new Date(d).toISOString() : null);
const toView = (r: Row): DeviceManagerStatusView => ({
  kind: r.kind,
  state: r.state,
  message: r.message,
  checkedAt: iso(r.checked_at),
  lastSuccessAt: iso(r.last_success_at),
  lastFailureAt: iso(r.last_failure_at),
});

export async function deviceManagerStatusOf(q: Queryable, applicationId: string): Promise<DeviceManagerStatusView | null> {
  const row = await q.maybeOne<Row>('SELECT * FROM device_manager_status WHERE application_id = $1', [applicationId]);
  return row ? toView(row) : null;
}

export async function allDeviceManagerStatuses(q: Queryable): Promise<(DeviceManagerStatusView & { applicationId: string })[]> {
  const rows = await q.query<Row>(
    `SELECT s.* FROM device_manager_status s JOIN applications a ON a.id = s.application_id AND a.device_manager IS NOT NULL ORDER BY s.application_id`,
  );
  return rows.map((r) => ({ applicationId: r.application_id, ...toView(r) }));
}

/** The result of checking the configuration (when it was saved, or later by a worker). */
export async function recordDeviceManagerCheck(
  q: Queryable,
  applicationId: string,
  kind: DeviceManagerKind,
  state: DeviceManagerState,
  message: string | null,
): Promise<void> {
  await q.query(
    `INSERT INTO device_manager_status (application_id, kind, state, message, checked_at, updated_at) VALUES ($1, $2, $3, $4, now(), now())
     ON CONFLICT (application_id) DO UPDATE SET kind = EXCLUDED.kind, state = EXCLUDED.state, message = EXCLUDED.message,
       checked_at = now(), updated_at = now()`,
    [applicationId, kind, state, message],
  );
}

/** The outcome of a delivery: a success clears the error, a failure names it. */
export async function recordDeviceManagerOutcome(
  q: Queryable,
  applicationId: string,
  kind: DeviceManagerKind,
  ok: boolean,
  message: string | null,
): Promise<void> {
  await q.query(
    `INSERT INTO device_manager_status (application_id, kind, state, message, last_success_at, last_failure_at, updated_at)
     VALUES ($1, $2, CASE WHEN $3 THEN 'ok' ELSE 'error' END, $4, CASE WHEN $3 THEN now() END, CASE WHEN $3 THEN NULL ELSE now() END, now())
     ON CONFLICT (application_id) DO UPDATE SET kind = EXCLUDED.kind, state = EXCLUDED.state, message = EXCLUDED.message,
       last_success_at = coalesce(EXCLUDED.last_success_at, device_manager_status.last_success_at),
       last_failure_at = coalesce(EXCLUDED.last_failure_at, device_manager_status.last_failure_at), updated_at = now()`,
    [applicationId, kind, ok, message],
  );
}

export async function forgetDeviceManagerStatus(q: Queryable, applicationId: string): Promise<void> {
  await q.query('DELETE FROM device_manager_status WHERE application_id = $1', [applicationId]);
}
