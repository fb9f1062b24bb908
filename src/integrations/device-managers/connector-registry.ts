import { configMgrConfigured, intuneConfigured, type Config } from '../../config.ts';
import type { DeviceManagerCheck, DeviceManagerKind } from '../../core/device-manager.ts';
import type { DeviceManagerConnector } from './connector-order.ts';

export interface DeviceManagers {
  /** whether this process has a connection for the kind */
  configured(kind: DeviceManagerKind): boolean;
  /** the kind's connector, or null when this process has no connection for it */
  connector(kind: DeviceManagerKind): Promise<DeviceManagerConnector | null>;
  /** what to tell an administrator when a kind has no connection here */
  missing(kind: DeviceManagerKind): string;
  check: DeviceManagerCheck;
}

const missingText: Record<DeviceManagerKind, string> = {
  intune:
    'the Intune connection is not configured in this process (INTUNE_TENANT_ID, INTUNE_CLIENT_ID and INTUNE_CLIENT_SECRET or INTUNE_CLIENT_CERTIFICATE_PATH)',
  configmgr:
    'the Configuration Manager connection is not configured in this process (CONFIGMGR_ADMINSERVICE_URL, CONFIGMGR_USERNAME, CONFIGMGR_PASSWORD)',
};

const perConfig = new WeakMap<Config, DeviceManagers>();

/**
 * One set of connectors per configuration (tests run several contexts in one process). A connector's module is loaded
 * only once its connection is configured and first used: the Azure and Graph SDKs would otherwise add seconds to
 * every CLI command and process start.
 */
export function deviceManagersFor(config: Config): DeviceManagers {
  let dm = perConfig.get(config);
  if (dm) return dm;
  const made = new Map<DeviceManagerKind, Promise<DeviceManagerConnector | null>>();
  const configured = (kind: DeviceManagerKind) => (kind === 'intune' ? intuneConfigured(config) : configMgrConfigured(config));
  const load = async (kind: DeviceManagerKind): Promise<DeviceManagerConnector | null> => {
    if (!configured(kind)) return null;
    if (kind === 'intune') return new (await import('./intune-connector.ts')).IntuneConnector(config);
    return new (await import('./configmgr-connector.ts')).ConfigMgrConnector(config);
  };
  const connector = (kind: DeviceManagerKind): Promise<DeviceManagerConnector | null> => {
    let c = made.get(kind);
    if (!c) {
      c = load(kind);
      made.set(kind, c);
    }
    return c;
  };
  dm = {
    configured,
    connector,
    missing: (kind) => missingText[kind],
    check: async (settings, app) => {
      const c = await connector(settings.kind);
      if (!c)
        return { outcome: 'unverified', message: `not checked: ${missingText[settings.kind]}; a worker with the connection checks it` };
      return c.check(settings, app);
    },
  };
  perConfig.set(config, dm);
  return dm;
}
