import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TestTls } from './test-tls.ts';

export interface GraphCall {
  method: string;
  /** path and query, decoded */
  path: string;
  body: any;
  authorization: string | undefined;
  consistencyLevel: string | undefined;
}

export interface FakeReply {
  status: number;
  headers?: Record<string, string>;
  body?: unknown;
}

export interface FakeGraph {
  /** https://127.0.0.1:<port>: both the authority host and the Graph base URL */
  url: string;
  tenantId: string;
  clientId: string;
  clientSecret: string;
  /** every Graph call (token requests are in tokenRequests) */
  calls: GraphCall[];
  tokenRequests: Record<string, string>[];
  groups: Map<string, { displayName: string; securityEnabled: boolean; groupTypes: string[]; members: Set<string> }>;
  devices: { id: string; displayName: string }[];
  users: { id: string; userPrincipalName: string; onPremisesSamAccountName: string | null }[];
  apps: Map<string, { displayName: string; assignments: { intent: string; target: { '@odata.type': string; groupId: string } }[] }>;
  /** answers the next calls matching `match` with `reply` instead of the normal answer, `times` times */
  inject(match: (c: GraphCall) => boolean, reply: FakeReply, times: number): void;
  /** forgets injected answers not used up (a failed test's leftovers) */
  clearInjections(): void;
  /** from now on the tokens issued so far are refused as expired (the service's view of time moved past them) */
  expireIssuedTokens(): void;
  /** the membership-changing calls */
  writes(): GraphCall[];
  close(): Promise<void>;
}

const graphError = (status: number, code: string, message: string): FakeReply => ({
  status,
  body: { error: { code, message, innerError: { 'request-id': 'fake' } } },
});

/**
 * A local fake of the few Entra ID and Microsoft Graph endpoints the Intune connector uses, served over TLS like the
 * real ones. It checks what the real services check: the client-credentials token request (tenant, client id, secret,
 * the Graph .default scope), a Bearer token it issued and has not expired on every Graph call, the documented paths,
 * the `{"@odata.id": ".../directoryObjects/{id}"}` body of add member, and ConsistencyLevel: eventual with $count on
 * advanced queries. It answers like Graph: 400 for an existing member, 404 for a missing one.
 */
export async function startFakeGraph(tls: TestTls): Promise<FakeGraph> {
  const tenantId = '11111111-2222-4333-8444-555555555555';
  const clientId = 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee';
  const clientSecret = 'fake-client-secret-for-tests';
  const calls: GraphCall[] = [];
  const tokenRequests: Record<string, string>[] = [];
  const live = new Set<string>();
  let tokenSeq = 0;
  const injections: { match: (c: GraphCall) => boolean; reply: FakeReply; left: number }[] = [];
  const fake = {
    tenantId,
    clientId,
    clientSecret,
    calls,
    tokenRequests,
    groups: new Map(),
    devices: [],
    users: [],
    apps: new Map(),
  } as unknown as FakeGraph;

  const server = https.createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const url = new URL(req.url ?? '/', 'https://127.0.0.1');
      const send = (r: FakeReply) => {
        res.writeHead(r.status, { ...(r.body !== undefined ? { 'content-type': 'application/json' } : {}), ...r.headers });
        res.end(r.body === undefined ? '' : JSON.stringify(r.body));
      };
      // Entra ID: OpenID metadata and the v2.0 token endpoint
      if (url.pathname === `/${tenantId}/v2.0/.well-known/openid-configuration`) {
        const base = `${fake.url}/${tenantId}`;
        return send({
          status: 200,
          body: {
            token_endpoint: `${base}/oauth2/v2.0/token`,
            issuer: `${base}/v2.0`,
            authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
            jwks_uri: `${base}/discovery/v2.0/keys`,
            response_types_supported: ['code'],
            subject_types_supported: ['pairwise'],
            id_token_signing_alg_values_supported: ['RS256'],
          },
        });
      }
      if (url.pathname === `/${tenantId}/oauth2/v2.0/token` && req.method === 'POST') {
        const form = Object.fromEntries(new URLSearchParams(raw));
        tokenRequests.push(form);
        if (form.grant_type !== 'client_credentials' || form.client_id !== clientId || form.client_secret !== clientSecret) {
          return send({
            status: 401,
            body: { error: 'invalid_client', error_description: 'AADSTS7000215: Invalid client secret provided.' },
          });
        }
        if (form.scope !== 'https://graph.microsoft.com/.default')
          return send({ status: 400, body: { error: 'invalid_scope', error_description: 'AADSTS70011: bad scope' } });
        const token = `fake-token-${++tokenSeq}`;
        live.add(token);
        return send({ status: 200, body: { token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599, access_token: token } });
      }
      const call: GraphCall = {
        method: req.method ?? 'GET',
        path: decodeURIComponent(url.pathname + url.search),
        body: raw ? JSON.parse(raw) : undefined,
        authorization: req.headers.authorization,
        consistencyLevel: req.headers.consistencylevel as string | undefined,
      };
      calls.push(call);
      const bearer = /^Bearer (.+)$/.exec(call.authorization ?? '')?.[1];
      if (!bearer || !live.has(bearer))
        return send(graphError(401, 'InvalidAuthenticationToken', 'Lifetime validation failed, the token is expired.'));
      const injected = injections.find((i) => i.left > 0 && i.match(call));
      if (injected) {
        injected.left--;
        return send(injected.reply);
      }
      send(answer(fake, call, url));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  fake.inject = (match, reply, times) => injections.push({ match, reply, left: times });
  fake.clearInjections = () => void injections.splice(0);
  fake.expireIssuedTokens = () => live.clear();
  fake.writes = () => calls.filter((c) => c.method === 'POST' || c.method === 'DELETE');
  fake.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return fake;
}

function answer(fake: FakeGraph, call: GraphCall, url: URL): FakeReply {
  const p = url.pathname;
  const filter = url.searchParams.get('$filter') ?? '';
  const literal = (field: string) => new RegExp(`${field} eq '((?:[^']|'')*)'`).exec(filter)?.[1]?.replace(/''/g, "'");
  let m: RegExpExecArray | null;
  if ((m = /^\/v1\.0\/groups\/([^/]+)$/.exec(p)) && call.method === 'GET') {
    const g = fake.groups.get(m[1]!);
    return g
      ? { status: 200, body: { id: m[1], displayName: g.displayName, securityEnabled: g.securityEnabled, groupTypes: g.groupTypes } }
      : graphError(
          404,
          'Request_ResourceNotFound',
          `Resource '${m[1]}' does not exist or one of its queried reference-property objects are not present.`,
        );
  }
  if ((m = /^\/v1\.0\/groups\/([^/]+)\/members\/\$ref$/.exec(p)) && call.method === 'POST') {
    const g = fake.groups.get(m[1]!);
    if (!g) return graphError(404, 'Request_ResourceNotFound', `Resource '${m[1]}' does not exist.`);
    const ref = /\/v1\.0\/directoryObjects\/([^/]+)$/.exec(String(call.body?.['@odata.id'] ?? ''))?.[1];
    if (!ref) return graphError(400, 'Request_BadRequest', 'Invalid URL format specified in @odata.id.');
    if (!fake.devices.some((d) => d.id === ref) && !fake.users.some((u) => u.id === ref))
      return graphError(404, 'Request_ResourceNotFound', `Resource '${ref}' does not exist.`);
    if (g.members.has(ref))
      return graphError(
        400,
        'Request_BadRequest',
        "One or more added object references already exist for the following modified properties: 'members'.",
      );
    g.members.add(ref);
    return { status: 204 };
  }
  if ((m = /^\/v1\.0\/groups\/([^/]+)\/members\/([^/]+)\/\$ref$/.exec(p)) && call.method === 'DELETE') {
    const g = fake.groups.get(m[1]!);
    if (!g?.members.delete(m[2]!))
      return graphError(
        404,
        'Request_ResourceNotFound',
        `Resource '${m[2]}' does not exist or one of its queried reference-property objects are not present.`,
      );
    return { status: 204 };
  }
  if (p === '/v1.0/devices' && call.method === 'GET') {
    const name = literal('displayName');
    return {
      status: 200,
      body: {
        value: fake.devices.filter((d) => d.displayName === name).map((d) => ({ id: d.id, deviceId: d.id, displayName: d.displayName })),
      },
    };
  }
  if ((m = /^\/v1\.0\/users\/([^/]+)$/.exec(p)) && call.method === 'GET') {
    const upn = decodeURIComponent(m[1]!).toLowerCase();
    const u = fake.users.find((x) => x.userPrincipalName.toLowerCase() === upn || x.id === upn);
    return u
      ? { status: 200, body: { id: u.id, userPrincipalName: u.userPrincipalName } }
      : graphError(404, 'Request_ResourceNotFound', `Resource '${upn}' does not exist.`);
  }
  if (p === '/v1.0/users' && call.method === 'GET') {
    const sam = literal('onPremisesSamAccountName');
    // filtering on onPremisesSamAccountName is an advanced query: ConsistencyLevel eventual and $count are required
    if (sam !== undefined && (call.consistencyLevel !== 'eventual' || url.searchParams.get('$count') !== 'true')) {
      return graphError(
        400,
        'Request_UnsupportedQuery',
        "Unsupported or invalid query filter clause specified for property 'onPremisesSamAccountName' of resource 'User'.",
      );
    }
    const found = fake.users.filter((u) => u.onPremisesSamAccountName?.toLowerCase() === sam?.toLowerCase());
    return {
      status: 200,
      body: { '@odata.count': found.length, value: found.map((u) => ({ id: u.id, userPrincipalName: u.userPrincipalName })) },
    };
  }
  if ((m = /^\/v1\.0\/deviceAppManagement\/mobileApps\/([^/]+)(\/assignments)?$/.exec(p)) && call.method === 'GET') {
    const a = fake.apps.get(m[1]!);
    if (!a) return graphError(404, 'ResourceNotFound', `Resource not found for the segment 'mobileApps'.`);
    return m[2]
      ? { status: 200, body: { value: a.assignments.map((x, i) => ({ id: `${m![1]}_${i}`, ...x })) } }
      : { status: 200, body: { id: m[1], displayName: a.displayName } };
  }
  return graphError(400, 'BadRequest', `Resource not found for the segment '${p}'.`);
}
