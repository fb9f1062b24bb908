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
