import type { Config } from '../../config.ts';
import {
  configMgrModelName,
  type DeviceManagerApp,
  type DeviceManagerCheckResult,
  type DeviceManagerConfig,
} from '../../core/device-manager.ts';
import { AdminServiceClient } from './adminservice-client.ts';
import { CallTrace, ConnectorError } from './connector-outcome.ts';
import type { ConnectorOrder, DeviceManagerConnector } from './connector-order.ts';

type ConfigMgrConfig = Extract<DeviceManagerConfig, { kind: 'configmgr' }>;

/** SMS_UserApplicationRequest.CurrentState */
const STATE = { requested: 1, canceled: 2, denied: 3, approved: 4 } as const;

interface SiteRequest {
  RequestGuid: string;
  CurrentState: number;
  User?: string | null;
  RequestedMachine?: string | null;
  ModelName?: string;
}

const odataString = (s: string) => `'${s.replace(/'/g, "''")}'`;
/** Comments are limited to 2000 characters (SizeLimit on Approve, Deny and CreateApprovedRequest). */
const clip = (s: string) => (s.length > 2000 ? `${s.slice(0, 1999)}…` : s);

/**
 * Configuration Manager through its administration service, the way the product documents automating approvals
 * (https://learn.microsoft.com/en-us/mem/configmgr/develop/apps/application-approval-process):
 *
 * - approval: `CreateApprovedRequest` with ApplicationID (the application's model name), AutoInstall, ClientGUID,
 *   Comments and Username, static on SMS_UserApplicationRequest for a user, on SMS_ApplicationRequest (no Username)
 *   for a machine-only pre-approval. It "uses the existing deployment mechanism": the app must be deployed, as
 *   available and requiring approval, to a collection the user (or device) is in.
 *   POST wmi/SMS_UserApplicationRequest.CreateApprovedRequest, POST wmi/SMS_ApplicationRequest.CreateApprovedRequest
 * - revocation (revoke, access expiry, review removal): `Deny` on the request, which makes the client uninstall an
 *   installed app (https://learn.microsoft.com/en-us/mem/configmgr/apps/deploy-use/app-approval).
 *   POST wmi/SMS_UserApplicationRequest('<RequestGuid>')/AdminService.Deny {"Comments"}
 *   https://learn.microsoft.com/en-us/mem/configmgr/develop/reference/apps/deny-method-in-class-sms_userapplicationrequest
 * - reapproval: `Approve` on the existing (denied) request, which installs again ("Scenario 5: Reapprove a previously
 *   denied application request").
 *   POST wmi/SMS_UserApplicationRequest('<RequestGuid>')/AdminService.Approve {"Comments"}
 *   https://learn.microsoft.com/en-us/mem/configmgr/develop/reference/apps/approve-method-in-class-sms_userapplicationrequest
 *
 * The existing request is found by model name and requesting machine (RequestedMachine, as the documented
 * reapproval script does) and, for a user, by User. Version 2006 and earlier accept CreateApprovedRequest only once
 * per machine, application and user, and answer an error on a repeat (details in SMSProv.log); from 2010 a repeat
 * with AutoInstall installs again. So a repeat that fails while the approved request is there is taken as that
 * documented limitation: the approval stands, and the attempt log says the site could not be asked to reinstall.
 */
export class ConfigMgrConnector implements DeviceManagerConnector {
  readonly kind = 'configmgr' as const;
  private readonly client: AdminServiceClient;

  constructor(config: Config) {
    this.client = new AdminServiceClient(config);
  }

  private modelName(config: DeviceManagerConfig, app: DeviceManagerApp): string {
    const model = configMgrModelName(config as ConfigMgrConfig, app.id);
    if (!model)
      throw new ConnectorError(`${app.name} has no Configuration Manager model name (deviceManager.modelName)`, {
        retryable: false,
        misconfigured: true,
      });
    return model;
  }

  /** The site's request for this machine, application and user (machine-only: the one without a user). */
  private async existing(trace: CallTrace, model: string, order: ConnectorOrder): Promise<SiteRequest | null> {
    const filter = `ModelName eq ${odataString(model)} and RequestedMachine eq ${odataString(order.deviceName!)}`;
    const found = await this.client.call<{ value?: SiteRequest[] }>(
      trace,
      `looking up the site's request for ${order.deviceName}`,
      'GET',
      `wmi/SMS_UserApplicationRequest?$filter=${encodeURIComponent(filter)}`,
    );
    const mine = (found.value ?? []).filter((r) => (order.username ? r.User?.toLowerCase() === order.username.toLowerCase() : !r.User));
    // several (a user asked again after a cancel): the approved or denied one is the one that counts
    return mine.find((r) => r.CurrentState === STATE.approved) ?? mine.find((r) => r.CurrentState === STATE.denied) ?? mine[0] ?? null;
  }

  async perform(order: ConnectorOrder, config: DeviceManagerConfig, app: DeviceManagerApp, trace: CallTrace): Promise<string> {
    const model = this.modelName(config, app);
    if (!order.clientGuid || !order.deviceName) {
      throw new ConnectorError(`the request names no device; Configuration Manager approves an application for a device (ClientGUID)`, {
        retryable: false,
      });
    }
    const who = order.username ? `${order.username} on ${order.deviceName}` : order.deviceName;
    const found = await this.existing(trace, model, order);
    const instance = (r: SiteRequest, method: string) =>
      `wmi/SMS_UserApplicationRequest(${encodeURIComponent(odataString(r.RequestGuid))})/AdminService.${method}`;

    if (order.operation === 'revoke') {
      if (!found) return `no request for ${who} on the site: nothing to deny`;
      if (found.CurrentState === STATE.denied) return `request ${found.RequestGuid} for ${who} was already denied`;
      await this.expectSuccess(trace, `denying request ${found.RequestGuid} for ${who}`, instance(found, 'Deny'), {
        Comments: clip(order.comments),
      });
      return `denied request ${found.RequestGuid} for ${who}; the client uninstalls ${app.name}`;
    }
    if (found && (found.CurrentState === STATE.denied || found.CurrentState === STATE.requested)) {
      await this.expectSuccess(trace, `approving request ${found.RequestGuid} for ${who}`, instance(found, 'Approve'), {
        Comments: clip(order.comments),
      });
      return `approved the existing request ${found.RequestGuid} for ${who}`;
    }
    if (found?.CurrentState === STATE.approved && order.operation === 'grant' && !order.autoInstall) {
      return `request ${found.RequestGuid} for ${who} is already approved`;
    }
    const create = order.username
      ? {
          path: 'wmi/SMS_UserApplicationRequest.CreateApprovedRequest',
          args: {
            ApplicationID: model,
            AutoInstall: order.autoInstall,
            ClientGUID: order.clientGuid,
            Comments: clip(order.comments),
            Username: order.username,
          },
        }
      : // SMS_ApplicationRequest's variant has no Username: a pre-approval for every user of the device, which always installs
        {
          path: 'wmi/SMS_ApplicationRequest.CreateApprovedRequest',
          args: { ApplicationID: model, AutoInstall: order.autoInstall, ClientGUID: order.clientGuid, Comments: clip(order.comments) },
        };
    try {
      await this.expectSuccess(trace, `creating the approved request for ${who}`, create.path, create.args);
    } catch (e) {
      if (found?.CurrentState === STATE.approved && e instanceof ConnectorError && e.statusCode !== null && e.statusCode >= 400) {
        trace.note('the site refused a repeated CreateApprovedRequest, as version 2006 and earlier do; the approval stands');
        return `request ${found.RequestGuid} for ${who} is approved; this site version accepts CreateApprovedRequest once, so it was not asked to install again (use Retry install in the console)`;
      }
      throw e;
    }
    return `created an approved request for ${who}${order.autoInstall ? ', installing now' : ''}`;
  }

  /** WMI methods answer ReturnValue 0 for success (https://learn.microsoft.com/en-us/mem/configmgr/develop/core/understand/about-configuration-manager-errors). */
  private async expectSuccess(trace: CallTrace, what: string, path: string, args: Record<string, unknown>): Promise<void> {
    const result = await this.client.call<{ ReturnValue?: number }>(trace, what, 'POST', path, args);
    if (typeof result.ReturnValue === 'number' && result.ReturnValue !== 0) {
      throw new ConnectorError(`${what}: the method returned ${result.ReturnValue} (see SMSProv.log on the SMS Provider)`, {
        retryable: false,
        statusCode: 200,
      });
    }
  }

  async check(config: DeviceManagerConfig, app: DeviceManagerApp): Promise<DeviceManagerCheckResult> {
    const model = configMgrModelName(config as ConfigMgrConfig, app.id);
    if (!model) return { outcome: 'rejected', field: 'modelName', message: 'give the Configuration Manager model name' };
    const trace = new CallTrace();
    try {
      const filter = `ModelName eq ${odataString(model)} and IsLatest eq true`;
      const found = await this.client.call<{ value?: { LocalizedDisplayName?: string; IsExpired?: boolean }[] }>(
        trace,
        `looking up application ${model}`,
        'GET',
        `wmi/SMS_Application?$filter=${encodeURIComponent(filter)}&$select=LocalizedDisplayName,ModelName,IsExpired`,
      );
      const site = found.value?.[0];
      if (!site) return { outcome: 'rejected', field: 'modelName', message: `the site has no application with model name ${model}` };
      if (site.IsExpired)
        return {
          outcome: 'rejected',
          field: 'modelName',
          message: `application "${site.LocalizedDisplayName ?? model}" is retired on the site`,
        };
      return { outcome: 'ok', detail: `site application "${site.LocalizedDisplayName ?? model}" found` };
    } catch (e) {
      return { outcome: 'unverified', message: `could not check with the administration service: ${(e as Error).message}` };
    }
  }
}
