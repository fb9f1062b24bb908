import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
// @ts-expect-error js-md4 ships no types; MD4 is what NTLM hashes passwords with, and OpenSSL 3 no longer offers it
import md4 from 'js-md4';
import type { TestTls } from './test-tls.ts';

export interface SiteRequest {
  RequestGuid: string;
  ModelName: string;
  User: string | null;
  RequestedMachine: string;
  CurrentState: number;
  Comments: string;
}

export interface AdminCall {
  method: string;
  path: string;
  body: any;
  /** who the call authenticated as (DOMAIN\user), after NTLM or Basic */
  user: string;
  scheme: string;
}

export interface FakeAdminService {
  /** https://127.0.0.1:<port>/AdminService */
  url: string;
  calls: AdminCall[];
  /** what the site asked clients to do, in order: the effect a user would notice */
  clientActions: { action: 'install' | 'uninstall'; machine: string; user: string | null; model: string }[];
  requests: SiteRequest[];
  /** client GUID → machine name */
  machines: Map<string, string>;
  /** model names of the site's applications */
  applications: Map<string, string>;
  /** version 2006 and earlier: CreateApprovedRequest fails when called again for the same machine, app and user */
  onceOnly: boolean;
  inject(match: (c: AdminCall) => boolean, status: number, times: number, headers?: Record<string, string>): void;
  /** forgets injected failures not used up (a failed test's leftovers) */
  clearInjections(): void;
  /** the state-changing calls */
  methodCalls(): AdminCall[];
  close(): Promise<void>;
}

const STATE = { requested: 1, denied: 3, approved: 4 };
const NTLMSSP = Buffer.from('NTLMSSP\0', 'ascii');

/** NTLMv2 per MS-NLMP 3.3.2: NTProofStr = HMAC-MD5(NTOWFv2, ServerChallenge || blob); NTOWFv2 = HMAC-MD5(MD4(UTF-16LE(password)), UTF-16LE(UPPER(user) || domain)). */
function verifyNtlmV2(type3: Buffer, challenge: Buffer, password: string): { user: string; domain: string; ok: boolean } {
  const field = (offset: number) => {
    const len = type3.readUInt16LE(offset);
    const at = type3.readUInt32LE(offset + 4);
    return type3.subarray(at, at + len);
  };
  const nt = field(20);
  const domain = field(28).toString('utf16le');
  const user = field(36).toString('utf16le');
  const ntHash = Buffer.from(md4.arrayBuffer(Buffer.from(password, 'utf16le')));
  const ntowf = createHmac('md5', ntHash)
    .update(Buffer.from(user.toUpperCase() + domain, 'utf16le'))
    .digest();
  const proof = createHmac('md5', ntowf)
    .update(Buffer.concat([challenge, nt.subarray(16)]))
    .digest();
  return { user, domain, ok: nt.length > 24 && proof.equals(nt.subarray(0, 16)) };
}

function type2(challenge: Buffer): string {
  const target = Buffer.from('CONTOSO', 'utf16le');
  const avPair = (id: number, v: Buffer) => Buffer.concat([Buffer.from([id, 0, v.length & 0xff, v.length >> 8]), v]);
  const info = Buffer.concat([avPair(2, target), avPair(1, Buffer.from('SMSPROV', 'utf16le')), Buffer.from([0, 0, 0, 0])]);
  const head = Buffer.alloc(48);
  NTLMSSP.copy(head, 0);
  head.writeUInt32LE(2, 8);
  head.writeUInt16LE(target.length, 12);
  head.writeUInt16LE(target.length, 14);
  head.writeUInt32LE(48, 16);
  // unicode, request target, NTLM, always sign, extended session security, target info, 128, 56
  head.writeUInt32LE((0x00000001 | 0x00000004 | 0x00000200 | 0x00008000 | 0x00080000 | 0x00800000 | 0x20000000 | 0x80000000) >>> 0, 20);
  challenge.copy(head, 24);
  head.writeUInt16LE(info.length, 40);
  head.writeUInt16LE(info.length, 42);
  head.writeUInt32LE(48 + target.length, 44);
  return Buffer.concat([head, target, info]).toString('base64');
}

/**
 * A local fake of the Configuration Manager administration service: TLS with the test CA, Windows authentication
 * (a real NTLM handshake on one connection, offered as Negotiate and NTLM, with the NTLMv2 response checked against
 * the password) or Basic, and the WMI routes the connector uses, with CreateApprovedRequest, Approve and Deny
 * behaving as documented: Deny of an approved request uninstalls, Approve of a denied one installs again.
 */
export async function startFakeAdminService(
  tls: TestTls,
  account: { username: string; password: string; auth: 'ntlm' | 'basic' },
): Promise<FakeAdminService> {
  const calls: AdminCall[] = [];
  const injections: { match: (c: AdminCall) => boolean; status: number; left: number; headers?: Record<string, string> }[] = [];
  const challenges = new WeakMap<Socket, Buffer>();
  const fake = {
    calls,
    clientActions: [],
    requests: [],
    machines: new Map(),
    applications: new Map(),
    onceOnly: false,
  } as unknown as FakeAdminService;
  const [wantDomain, wantUser] = account.username.split('\\');

  const server = https.createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const send = (status: number, body?: unknown, headers: Record<string, string | string[]> = {}) => {
        res.writeHead(status, {
          ...(body !== undefined ? { 'content-type': 'application/json; odata.metadata=minimal' } : {}),
          ...headers,
        });
        res.end(body === undefined ? '' : JSON.stringify(body));
      };
      const challengeAll = () =>
        send(401, undefined, { 'www-authenticate': account.auth === 'basic' ? ['Basic realm="SMSPROV"'] : ['Negotiate', 'NTLM'] });
      const header = req.headers.authorization ?? '';
      const [scheme, token] = header.split(' ');
      let user: string | null = null;
      if (account.auth === 'basic') {
        if (scheme !== 'Basic') return challengeAll();
        const [u, ...pw] = Buffer.from(token ?? '', 'base64')
          .toString('utf8')
          .split(':');
        if (u?.toLowerCase() !== account.username.toLowerCase() || pw.join(':') !== account.password) return challengeAll();
        user = u!;
      } else {
        if (scheme !== 'Negotiate' && scheme !== 'NTLM') return challengeAll();
        const msg = Buffer.from(token ?? '', 'base64');
        if (!msg.subarray(0, 8).equals(NTLMSSP)) return challengeAll();
        const type = msg.readUInt32LE(8);
        if (type === 1) {
          const challenge = randomBytes(8);
          challenges.set(req.socket, challenge);
          return send(401, undefined, { 'www-authenticate': `${scheme} ${type2(challenge)}` });
        }
        const challenge = challenges.get(req.socket);
        // a type 3 on another connection than its challenge fails, as with IIS
        if (type !== 3 || !challenge) return challengeAll();
        challenges.delete(req.socket);
        const v = verifyNtlmV2(msg, challenge, account.password);
        if (!v.ok || v.user.toLowerCase() !== wantUser!.toLowerCase() || v.domain.toLowerCase() !== wantDomain!.toLowerCase())
          return challengeAll();
        user = `${v.domain}\\${v.user}`;
      }
      const raw = Buffer.concat(chunks).toString('utf8');
      const url = new URL(req.url ?? '/', 'https://127.0.0.1');
      const call: AdminCall = {
        method: req.method ?? 'GET',
        path: decodeURIComponent(url.pathname + url.search),
        body: raw ? JSON.parse(raw) : undefined,
        user,
        scheme: scheme!,
      };
      calls.push(call);
      const injected = injections.find((i) => i.left > 0 && i.match(call));
      if (injected) {
        injected.left--;
        return send(injected.status, { error: { code: String(injected.status), message: 'injected failure' } }, injected.headers);
      }
      const r = route(fake, call, url);
      send(r.status, r.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/AdminService`;
  fake.inject = (match, status, times, headers) => injections.push({ match, status, left: times, headers });
  fake.clearInjections = () => void injections.splice(0);
  fake.methodCalls = () => calls.filter((c) => c.method === 'POST');
  fake.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return fake;
}

const odataError = (status: number, message: string) => ({ status, body: { error: { code: String(status), message } } });

function route(fake: FakeAdminService, call: AdminCall, url: URL): { status: number; body?: unknown } {
  const p = url.pathname;
  const filter = url.searchParams.get('$filter') ?? '';
  const literal = (field: string) => new RegExp(`${field} eq '((?:[^']|'')*)'`).exec(filter)?.[1]?.replace(/''/g, "'");
  const ok = { status: 200, body: { '@odata.context': `${fake.url}/wmi/$metadata#Edm.Int32`, ReturnValue: 0 } };
  if (p === '/AdminService/wmi/SMS_Application' && call.method === 'GET') {
    const model = literal('ModelName');
    const name = model ? fake.applications.get(model) : undefined;
    return {
      status: 200,
      body: { value: name ? [{ ModelName: model, LocalizedDisplayName: name, IsExpired: false, IsLatest: true }] : [] },
    };
  }
  if (p === '/AdminService/wmi/SMS_UserApplicationRequest' && call.method === 'GET') {
    const model = literal('ModelName');
    const machine = literal('RequestedMachine');
    return { status: 200, body: { value: fake.requests.filter((r) => r.ModelName === model && r.RequestedMachine === machine) } };
  }
  const create = /^\/AdminService\/wmi\/(SMS_UserApplicationRequest|SMS_ApplicationRequest)\.CreateApprovedRequest$/.exec(p);
  if (create && call.method === 'POST') {
    const userVariant = create[1] === 'SMS_UserApplicationRequest';
    const { ApplicationID, AutoInstall, ClientGUID, Comments, Username } = call.body ?? {};
    const machine = fake.machines.get(String(ClientGUID).toUpperCase());
    if (
      !machine ||
      !fake.applications.has(ApplicationID) ||
      typeof AutoInstall !== 'boolean' ||
      (userVariant ? !Username : Username !== undefined)
    ) {
      return odataError(400, 'Invalid parameters for CreateApprovedRequest');
    }
    const user = userVariant ? String(Username) : null;
    const existing = fake.requests.find((r) => r.ModelName === ApplicationID && r.RequestedMachine === machine && r.User === user);
    if (existing && fake.onceOnly) return odataError(500, 'Generic failure (see SMSProv.log)');
    const request = existing ?? {
      RequestGuid: randomUUID().toUpperCase(),
      ModelName: ApplicationID,
      User: user,
      RequestedMachine: machine,
      CurrentState: STATE.approved,
      Comments: '',
    };
    request.CurrentState = STATE.approved;
    request.Comments = String(Comments ?? '');
    if (!existing) fake.requests.push(request);
    // a machine pre-approval always installs (AutoInstall false has no effect there)
    if (AutoInstall || !userVariant) fake.clientActions.push({ action: 'install', machine, user, model: ApplicationID });
    return ok;
  }
  const instance = /^\/AdminService\/wmi\/SMS_UserApplicationRequest\('([^']+)'\)\/AdminService\.(Approve|Deny)$/.exec(p);
  if (instance && call.method === 'POST') {
    const r = fake.requests.find((x) => x.RequestGuid === instance[1]);
    if (!r) return odataError(404, 'Not found');
    if (typeof call.body?.Comments !== 'string') return odataError(400, 'Comments is required');
    const before = r.CurrentState;
    r.CurrentState = instance[2] === 'Approve' ? STATE.approved : STATE.denied;
    r.Comments = call.body.Comments;
    if (instance[2] === 'Deny' && before === STATE.approved)
      fake.clientActions.push({ action: 'uninstall', machine: r.RequestedMachine, user: r.User, model: r.ModelName });
    if (instance[2] === 'Approve' && before !== STATE.approved)
      fake.clientActions.push({ action: 'install', machine: r.RequestedMachine, user: r.User, model: r.ModelName });
    return ok;
  }
  return odataError(404, `No route for ${call.method} ${p}`);
}
