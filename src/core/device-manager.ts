import { z } from 'zod';

/**
 * Device-management connectors: an application may name one, and its approvals and revocations then reach
 * Intune (Entra ID group membership through Microsoft Graph) or Configuration Manager (approved requests through
 * the AdminService) by themselves, with the same durable deliveries as webhooks. This file is the core's side:
 * the catalog shape and the port the integrations implement. Secrets never appear here: each kind has one
 * connection whose credentials are environment variables (see README, "Device-management connectors").
 */

const guid = (what: string) => z.guid(`must be the ${what} (a GUID)`);

export const intuneDeviceManagerSchema = z.strictObject({
  kind: z.literal('intune'),
  /** the Entra ID security group the Intune app is assigned to (required or available) */
  groupId: guid('object id of the Entra ID group the app is assigned to'),
  /** optional Intune app (mobileApp) id: checked to be assigned to groupId when the application is configured */
  appId: guid('Intune app id (mobileApp id)').optional(),
});

/** `ScopeId_<scope>/Application_<guid>`: the ModelName of an SMS_Application, without the version. */
export const modelNamePattern = /^ScopeId_[0-9A-Fa-f-]{36}\/Application_[0-9A-Fa-f-]{36}$/;

export const configMgrDeviceManagerSchema = z.strictObject({
  kind: z.literal('configmgr'),
  /** defaults to the application's id, which the catalog already uses for ConfigMgr model names */
  modelName: z.string().trim().regex(modelNamePattern, 'must be a model name such as ScopeId_<GUID>/Application_<GUID>').optional(),
});

export const deviceManagerSchema = z.discriminatedUnion('kind', [intuneDeviceManagerSchema, configMgrDeviceManagerSchema], {
  error: 'must have kind intune or configmgr',
});
export type DeviceManagerConfig = z.infer<typeof deviceManagerSchema>;
export type DeviceManagerKind = DeviceManagerConfig['kind'];
export const deviceManagerKinds = ['intune', 'configmgr'] as const;

/** The model name a ConfigMgr connector uses for an application, or null when neither gives one. */
export function configMgrModelName(config: Extract<DeviceManagerConfig, { kind: 'configmgr' }>, applicationId: string): string | null {
  if (config.modelName) return config.modelName;
  return modelNamePattern.test(applicationId) ? applicationId : null;
}

export interface DeviceManagerApp {
  id: string;
  name: string;
  perDevice: boolean;
}

/**
 * What checking a connector's configuration found. `rejected` names a field of the application's own settings that is
 * wrong (a group or app that does not exist): configuring it is refused. `unverified` means the check could not run
 * or could not finish (no credentials in this process, the service unreachable): the application is saved, and its
 * connector status says why it is not known to work yet.
 */
export type DeviceManagerCheckResult =
  | { outcome: 'ok'; detail?: string }
  | { outcome: 'rejected'; field: string; message: string }
  | { outcome: 'unverified'; message: string };

/** The port the catalog calls before it stores a device-manager configuration. */
export type DeviceManagerCheck = (config: DeviceManagerConfig, app: DeviceManagerApp) => Promise<DeviceManagerCheckResult>;

/**
 * What a connector is asked to do for one request: `grant` when it is approved (or reapproved), `install` when the
 * install is ordered again (an install window opened, the user or an API asked), `revoke` when the access ends
 * (revoked, expired, removed by a review). Orders carry facts about the request as they were when it was decided;
 * the connector settings are read when the order runs, so fixing a misconfigured application and redelivering works.
 */
export type OrderOperation = 'grant' | 'install' | 'revoke';

export interface DeviceManagerOrder {
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

/** Where a connector notes each call it makes, so the attempt log shows what happened. */
export interface OrderTrace {
  add(method: string, path: string, status: number | string): void;
  note(text: string): void;
}

/**
 * The port the integrations implement once per kind (Intune through Graph, Configuration Manager through the
 * AdminService). The outbox fan-out turns decisions into orders; a worker hands each to the connector of its kind.
 */
export interface DeviceManager {
  readonly kind: DeviceManagerKind;
  /** Carries out one order; resolves with a one-line summary. Must be safe to repeat (retries, redelivery). */
  perform(order: DeviceManagerOrder, config: DeviceManagerConfig, app: DeviceManagerApp, trace: OrderTrace): Promise<string>;
  /** Checks the application's settings against the service (the group or model name exists, the app is assigned). */
  check(config: DeviceManagerConfig, app: DeviceManagerApp): Promise<DeviceManagerCheckResult>;
}
