import type { TokenCredential } from '@azure/identity';
import { GraphError, type Client } from '@microsoft/microsoft-graph-client';
import type { Config } from '../../config.ts';
import type { DeviceManagerApp, DeviceManagerCheckResult, DeviceManagerConfig } from '../../core/device-manager.ts';
import { CallTrace, ConnectorError, httpFailure, networkFailure } from './connector-outcome.ts';
import type { ConnectorOrder, DeviceManagerConnector } from './connector-order.ts';
import { createGraphClient, createGraphCredential } from './graph-client.ts';

type IntuneConfig = Extract<DeviceManagerConfig, { kind: 'intune' }>;

/** OData string literal: single quotes are doubled. */
const odataString = (s: string) => `'${s.replace(/'/g, "''")}'`;

interface DirectoryObject {
  id: string;
  displayName?: string;
  userPrincipalName?: string;
}

/**
 * Intune through Microsoft Graph, the entitlement-management pattern: the Intune app is assigned (required or
 * available) to an Entra ID group, and approval makes the user (or, for per-device applications, the device) a
 * member; revocation and access expiry take the membership away again, so Intune uninstalls a required app or
 * withdraws an available one. "Already a member" and "not a member" are success, so repeating an order is harmless.
 *
 * Graph routes used (v1.0):
 * - add member:    POST   /groups/{id}/members/$ref {"@odata.id": ".../directoryObjects/{id}"}
 *                  https://learn.microsoft.com/en-us/graph/api/group-post-members?view=graph-rest-1.0
 *                  (a member that already exists answers 400 "One or more added object references already exist")
 * - remove member: DELETE /groups/{id}/members/{directoryObject-id}/$ref (404 when not a member)
 *                  https://learn.microsoft.com/en-us/graph/api/group-delete-members?view=graph-rest-1.0
 * - get group:     GET /groups/{id}  https://learn.microsoft.com/en-us/graph/api/group-get?view=graph-rest-1.0
 * - find device:   GET /devices?$filter=displayName eq '…'  https://learn.microsoft.com/en-us/graph/api/device-list?view=graph-rest-1.0
 * - find user:     GET /users/{upn}, or GET /users?$filter=onPremisesSamAccountName eq '…' as an advanced query
 *                  (ConsistencyLevel: eventual, $count=true)  https://learn.microsoft.com/en-us/graph/aad-advanced-queries
 * - app and its assignments: GET /deviceAppManagement/mobileApps/{id} and …/{id}/assignments
 *                  https://learn.microsoft.com/en-us/graph/api/intune-apps-mobileapp-get?view=graph-rest-1.0
 *                  https://learn.microsoft.com/en-us/graph/api/intune-apps-mobileappassignment-list?view=graph-rest-1.0
 * Throttling answers 429 with Retry-After (https://learn.microsoft.com/en-us/graph/throttling); the delivery is
 * retried no sooner than that.
 */
export class IntuneConnector implements DeviceManagerConnector {
  readonly kind = 'intune' as const;
  private credential: TokenCredential | null = null;
  private client: Client | null = null;

  constructor(private readonly config: Config) {}

  private graph(): Client {
    if (!this.client) {
      this.credential = createGraphCredential(this.config);
      this.client = createGraphClient(this.config, this.credential);
    }
    return this.client;
  }

  /**
   * One Graph call. A token the service no longer accepts (it expired or was revoked while MSAL still had it cached)
   * gets one fresh credential, and so a fresh token, and one more try.
   */
  private async call<T>(trace: CallTrace, what: string, method: string, path: string, fn: (c: Client) => Promise<T>): Promise<T> {
    for (let round = 0; ; round++) {
      try {
        const result = await fn(this.graph());
        trace.add(method, path, method === 'POST' || method === 'DELETE' ? 204 : 200);
        return result;
      } catch (e) {
        if (e instanceof GraphError && e.statusCode > 0) {
          trace.add(method, path, e.statusCode);
          if (e.statusCode === 401 && round === 0) {
            trace.note('the access token was refused; getting a new one');
            this.client = null;
            continue;
          }
          throw Object.assign(
            httpFailure(what, e.statusCode, `${e.code ?? ''}${e.message ? `: ${e.message}` : ''}`, e.headers?.get('retry-after')),
            { graphCode: e.code },
          );
        }
        trace.add(method, path, 'no answer');
        throw this.transportFailure(what, e);
      }
    }
  }

  /** Token errors come from @azure/identity (possibly wrapped by the Graph SDK): a refused client is a configuration problem. */
  private transportFailure(what: string, e: unknown): ConnectorError {
    const message = (e as Error)?.message ?? String(e);
    if (/AADSTS(7000215|700016|90002|700027|7000222)|invalid_client|unauthorized_client/.test(message)) {
      return new ConnectorError(
        `${what}: Entra ID refused the connection's credentials (INTUNE_TENANT_ID, INTUNE_CLIENT_ID, secret or certificate): ${message.split('\n')[0]}`,
        { retryable: false, misconfigured: true },
      );
    }
    return networkFailure(what, e);
  }

  async perform(order: ConnectorOrder, config: DeviceManagerConfig, app: DeviceManagerApp, trace: CallTrace): Promise<string> {
    const c = config as IntuneConfig;
    const member = await this.member(order, app, trace, order.operation === 'revoke');
    if (!member) return `${order.deviceName ?? order.username} is not in Entra ID, so it is in no group: nothing to remove`;
    const groupPath = `/groups/${c.groupId}/members`;
    if (order.operation === 'revoke') {
      try {
        await this.call(trace, `removing ${member.label} from group ${c.groupId}`, 'DELETE', `${groupPath}/${member.id}/$ref`, (g) =>
          g.api(`${groupPath}/${member.id}/$ref`).delete(),
        );
        return `removed ${member.label} from group ${c.groupId}`;
      } catch (e) {
        if (e instanceof ConnectorError && e.statusCode === 404) return `${member.label} was not a member of group ${c.groupId}`;
        throw e;
      }
    }
    const base = new URL(this.config.INTUNE_GRAPH_URL).toString().replace(/\/$/, '');
    try {
      await this.call(trace, `adding ${member.label} to group ${c.groupId}`, 'POST', `${groupPath}/$ref`, (g) =>
        g.api(`${groupPath}/$ref`).post({ '@odata.id': `${base}/v1.0/directoryObjects/${member.id}` }),
      );
      return `added ${member.label} to group ${c.groupId}`;
    } catch (e) {
      if (e instanceof ConnectorError && e.statusCode === 400 && /already exist/i.test(e.message))
        return `${member.label} was already a member of group ${c.groupId}`;
      throw e;
    }
  }

  /** The directory object to put in the group: the device for per-device applications (and machine pre-approvals), else the user. */
  private async member(
    order: ConnectorOrder,
    app: DeviceManagerApp,
    trace: CallTrace,
    missingIsFine: boolean,
  ): Promise<{ id: string; label: string } | null> {
    const notFound = (message: string) => {
      if (missingIsFine) return null;
      throw new ConnectorError(message, { retryable: false, misconfigured: false });
    };
    if (app.perDevice || !order.username) {
      if (!order.deviceName) return notFound(`the request names no device, and ${app.name} is assigned per device`);
      const path = `/devices?$filter=displayName eq ${odataString(order.deviceName)}`;
      const found = (await this.call(trace, `finding device ${order.deviceName}`, 'GET', path, (g) =>
        g
          .api('/devices')
          .filter(`displayName eq ${odataString(order.deviceName!)}`)
          .select('id,deviceId,displayName')
          .get(),
      )) as { value: DirectoryObject[] };
      if (found.value.length === 0)
        return notFound(`no Entra ID device is named ${order.deviceName}; join or register it (Intune enrolment does) before approving`);
      if (found.value.length > 1)
        throw new ConnectorError(
          `${found.value.length} Entra ID devices are named ${order.deviceName}; remove the stale ones so the device is unambiguous`,
          { retryable: false },
        );
      return { id: found.value[0]!.id, label: `device ${order.deviceName}` };
    }
    const username = order.username;
    if (order.userObjectId) return { id: order.userObjectId, label: `user ${username}` };
    if (username.includes('@')) {
      try {
        const user = (await this.call(trace, `finding user ${username}`, 'GET', `/users/${username}`, (g) =>
          g
            .api(`/users/${encodeURIComponent(username)}`)
            .select('id,userPrincipalName')
            .get(),
        )) as DirectoryObject;
        return { id: user.id, label: `user ${username}` };
      } catch (e) {
        if (e instanceof ConnectorError && e.statusCode === 404) return notFound(`no Entra ID user ${username} exists`);
        throw e;
      }
    }
    const sam = username.split('\\')[1]!;
    const found = (await this.call(
      trace,
      `finding user ${username}`,
      'GET',
      `/users?$filter=onPremisesSamAccountName eq ${odataString(sam)}`,
      (g) =>
        g
          .api('/users')
          .header('ConsistencyLevel', 'eventual')
          .filter(`onPremisesSamAccountName eq ${odataString(sam)}`)
          .count(true)
          .select('id,userPrincipalName')
          .get(),
    )) as { value: DirectoryObject[] };
    if (found.value.length === 0)
      return notFound(`no Entra ID user has onPremisesSamAccountName ${sam} (${username}); sync it with Entra Connect, or use UPNs`);
    if (found.value.length > 1)
      throw new ConnectorError(`${found.value.length} Entra ID users have onPremisesSamAccountName ${sam}; use UPNs as usernames`, {
        retryable: false,
      });
    return { id: found.value[0]!.id, label: `user ${username}` };
  }

  async check(config: DeviceManagerConfig, app: DeviceManagerApp): Promise<DeviceManagerCheckResult> {
    const c = config as IntuneConfig;
    const trace = new CallTrace();
    try {
      let group: { id: string; displayName?: string; securityEnabled?: boolean; groupTypes?: string[] };
      try {
        group = await this.call(trace, `reading group ${c.groupId}`, 'GET', `/groups/${c.groupId}`, (g) =>
          g.api(`/groups/${c.groupId}`).select('id,displayName,securityEnabled,groupTypes').get(),
        );
      } catch (e) {
        if (e instanceof ConnectorError && (e.statusCode === 404 || e.statusCode === 400)) {
          return { outcome: 'rejected', field: 'groupId', message: `no Entra ID group with id ${c.groupId} exists in the tenant` };
        }
        throw e;
      }
      const name = group.displayName ? `"${group.displayName}"` : c.groupId;
      if (group.groupTypes?.includes('DynamicMembership')) {
        return {
          outcome: 'rejected',
          field: 'groupId',
          message: `group ${name} has dynamic membership, so members cannot be added to it; assign the app to a group with assigned membership`,
        };
      }
      if (app.perDevice && group.securityEnabled === false) {
        return {
          outcome: 'rejected',
          field: 'groupId',
          message: `group ${name} is not a security group, so devices cannot be members; ${app.name} is per device`,
        };
      }
      let detail = `group ${name} found`;
      if (c.appId) {
        let mobileApp: { displayName?: string };
        try {
          mobileApp = await this.call(trace, `reading Intune app ${c.appId}`, 'GET', `/deviceAppManagement/mobileApps/${c.appId}`, (g) =>
            g.api(`/deviceAppManagement/mobileApps/${c.appId}`).select('id,displayName').get(),
          );
        } catch (e) {
          if (e instanceof ConnectorError && (e.statusCode === 404 || e.statusCode === 400)) {
            return { outcome: 'rejected', field: 'appId', message: `no Intune app with id ${c.appId} exists` };
          }
          throw e;
        }
        const assignments = (await this.call(
          trace,
          `reading the assignments of Intune app ${c.appId}`,
          'GET',
          `/deviceAppManagement/mobileApps/${c.appId}/assignments`,
          (g) => g.api(`/deviceAppManagement/mobileApps/${c.appId}/assignments`).get(),
        )) as { value: { intent?: string; target?: { '@odata.type'?: string; groupId?: string } }[] };
        const toGroup = assignments.value.filter((a) => a.target?.groupId?.toLowerCase() === c.groupId.toLowerCase());
        const included = toGroup.find((a) => !a.target?.['@odata.type']?.includes('exclusion'));
        const appName = mobileApp.displayName ? `"${mobileApp.displayName}"` : c.appId;
        if (!included) {
          return {
            outcome: 'rejected',
            field: 'appId',
            message: toGroup.length
              ? `Intune app ${appName} excludes group ${name}; members of it would never get the app`
              : `Intune app ${appName} is not assigned to group ${name}; assign it (required or available) in Intune first`,
          };
        }
        detail += `; Intune app ${appName} is assigned to it as ${included.intent ?? 'assigned'}`;
      }
      return { outcome: 'ok', detail };
    } catch (e) {
      return { outcome: 'unverified', message: `could not check with Microsoft Graph: ${(e as Error).message}` };
    }
  }
}
