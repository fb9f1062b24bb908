import { configMgrConfigured, intuneConfigured, type Config } from '../../config.ts';
import type { DeviceManagerCheck, DeviceManagerKind } from '../../core/device-manager.ts';
import type { DeviceManagerConnector } from './connector-order.ts';
import { ConfigMgrConnector } from './configmgr-connector.ts';
import { IntuneConnector } from './intune-connector.ts';

export interface DeviceManagers {
  /** the kind's connector, or null when this process has no connection for it */
  connector(kind: DeviceManagerKind): DeviceManagerConnector | null;
  /** what to tell an administrator when a kind has no connection here */
  missing(kind: DeviceManagerKind): string;
  check: DeviceManagerCheck;
}

const missingText: Record<DeviceManagerKind, string> = {
  intune: 'the Intune connection is not configured in this process (INTUNE_TENANT_ID, INTUNE_CLIENT_ID and INTUNE_CLIENT_SECRET or INTUNE_CLIENT_CERTIFICATE_PATH)',
  configmgr: 'the Configuration Manager connection is not configured in this process (CONFIGMGR_ADMINSERVICE_URL, CONFIGMGR_USERNAME, CONFIGMGR_PASSWORD)',
};

const perConfig = new WeakMap<Config, DeviceManagers>();

/** One set of connectors per configuration (tests run several contexts in one process); clients are made on first use. */
export function deviceManagersFor(config: Config): DeviceManagers {
  let dm = perConfig.get(config);
  if (dm) return dm;
  const made = new Map<DeviceManagerKind, DeviceManagerConnector | null>();
  const connector = (kind: DeviceManagerKind): DeviceManagerConnector | null => {
    if (!made.has(kind)) {
      made.set(kind, kind === 'intune' ? (intuneConfigured(config) ? new IntuneConnector(config) : null) : configMgrConfigured(config) ? new ConfigMgrConnector(config) : null);
    }
    return made.get(kind)!;
  };
  dm = {
    connector,
    missing: (kind) => missingText[kind],
    check: async (settings, app) => {
      const c = connector(settings.kind);
      if (!c) return { outcome: 'unverified', message: `not checked: ${missingText[settings.kind]}; a worker with the connection checks it` };
      return c.check(settings, app);
    },
  };
  perConfig.set(config, dm);
  return dm;
}
