import type { DeviceManagerApp, DeviceManagerCheckResult, DeviceManagerConfig, DeviceManagerKind } from '../../core/device-manager.ts';
import type { CallTrace } from './connector-outcome.ts';

/**
 * What a connector is asked to do for one request: `grant` when it is approved (or reapproved), `install` when the
 * install is ordered again (an install window opened, the user or an API asked), `revoke` when the access ends
 * (revoked, expired, removed by a review). Orders carry facts about the request as they were when it was decided;
 * the connector settings are read when the order runs, so fixing a misconfigured application and redelivering works.
 */
export type OrderOperation = 'grant' | 'install' | 'revoke';

export interface ConnectorOrder {
  operation: OrderOperation;
  requestId: string;
  applicationId: string;
  applicationName: string;
  /** DOMAIN\user or a UPN; null for a machine-only pre-approval */
  username: string | null;
  /** the person's Entra object id when the directory knows it (their Teams link) */
  userObjectId: string | null;
  clientGuid: string | null;
  deviceName: string | null;
  /** install now (ConfigMgr AutoInstall); false when the approval waits for an install window or asked for none */
  autoInstall: boolean;
  /** who decided and why, for the device manager's own records (ConfigMgr shows it in Software Center) */
  comments: string;
}

export interface DeviceManagerConnector {
  readonly kind: DeviceManagerKind;
  /** Carries out one order; resolves with a one-line summary, throws ConnectorError. Must be safe to repeat. */
  perform(order: ConnectorOrder, config: DeviceManagerConfig, app: DeviceManagerApp, trace: CallTrace): Promise<string>;
  /** Checks the application's settings against the service (the group or model name exists, the app is assigned). */
  check(config: DeviceManagerConfig, app: DeviceManagerApp): Promise<DeviceManagerCheckResult>;
}
