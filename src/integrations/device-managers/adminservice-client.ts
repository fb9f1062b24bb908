import https from 'node:https';
import { hostname } from 'node:os';
import { createType1Message, createType3Message, parseType2Message } from 'httpntlm/ntlm.js';
import type { Config } from '../../config.ts';
import { ConnectorError, httpFailure, networkFailure, type CallTrace } from './connector-outcome.ts';
import { httpRequest, trustedCas, type HttpResult } from './https-request.ts';

/**
 * The Configuration Manager administration service (https://<SMS Provider>/AdminService), its REST API over the
 * SMS Provider's WMI classes: `GET wmi/<Class>?$filter=…`, static methods as `POST wmi/<Class>.<Method>` with the
 * parameters as a JSON object, instance methods as `POST wmi/<Class>('<key>')/AdminService.<Method>`.
 * https://learn.microsoft.com/en-us/mem/configmgr/develop/adminservice/overview
 * https://learn.microsoft.com/en-us/mem/configmgr/develop/adminservice/usage
 *
 * Authentication is Windows-integrated (the administration service runs in IIS/HTTP.sys with Windows
 * authentication): NTLM, offered either as `NTLM` or inside `Negotiate` (Windows accepts a raw NTLM token there, so
 * no Kerberos ticket is needed), or Basic where the site allows it. NTLM authenticates a connection, so each call
 * runs its handshake on a keep-alive socket of its own. TLS trusts CONFIGMGR_CA_FILE besides the system roots: the
 * provider presents the site's self-signed certificate by default (version 2002 and later).
 * https://learn.microsoft.com/en-us/mem/configmgr/develop/adminservice/set-up
 */
export class AdminServiceClient {
  private readonly base: URL;
  private readonly ca: string[] | undefined;
  private readonly domain: string;
  private readonly user: string;

  constructor(private readonly config: Config) {
    this.base = new URL(config.CONFIGMGR_ADMINSERVICE_URL!.replace(/\/?$/, '/'));
    this.ca = trustedCas(config.CONFIGMGR_CA_FILE);
    const [domain, user] = config.CONFIGMGR_USERNAME!.includes('\\')
      ? config.CONFIGMGR_USERNAME!.split('\\')
      : ['', config.CONFIGMGR_USERNAME!];
    this.domain = domain!;
    this.user = user!;
  }

  /** JSON in, JSON out; any HTTP failure becomes a ConnectorError saying `what` failed. */
  async call<T = Record<string, unknown>>(
    trace: CallTrace,
    what: string,
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
  ): Promise<T> {
    const url = new URL(path, this.base);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string> = { accept: 'application/json', ...(payload ? { 'content-type': 'application/json' } : {}) };
    let result: HttpResult;
    try {
      result =
        this.config.CONFIGMGR_AUTH === 'basic'
          ? await httpRequest(url, {
              method,
              headers: {
                ...headers,
                authorization: `Basic ${Buffer.from(`${this.config.CONFIGMGR_USERNAME}:${this.config.CONFIGMGR_PASSWORD}`).toString('base64')}`,
              },
              body: payload,
              timeoutMs: this.config.DEVICE_MANAGER_TIMEOUT_MS,
              ca: this.ca,
            })
          : await this.withNtlm(url, method, headers, payload);
    } catch (e) {
      trace.add(method, url.pathname + url.search, 'no answer');
      throw e instanceof ConnectorError ? e : networkFailure(what, e);
    }
    trace.add(method, decodeURIComponent(url.pathname + url.search), result.status);
    if (result.status < 200 || result.status >= 300)
      throw httpFailure(what, result.status, errorText(result.body), result.headers['retry-after'] as string | undefined);
    if (!result.body.trim()) return {} as T;
    try {
      return JSON.parse(result.body) as T;
    } catch {
      throw new ConnectorError(`${what}: the administration service answered ${result.status} with something that is not JSON`, {
        retryable: true,
        statusCode: result.status,
      });
    }
  }

  /** Type 1 → 401 with the server's type 2 challenge → type 3 with the request, all on one socket. */
  private async withNtlm(url: URL, method: string, headers: Record<string, string>, payload: string | undefined): Promise<HttpResult> {
    const scheme = this.config.CONFIGMGR_AUTH === 'ntlm' ? 'NTLM' : 'Negotiate';
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ...(this.ca ? { ca: this.ca } : {}) });
    const timeoutMs = this.config.DEVICE_MANAGER_TIMEOUT_MS;
    const workstation = hostname().split('.')[0]!.slice(0, 15);
    try {
      const type1 = createType1Message({ domain: this.domain, workstation }).replace(/^NTLM /, '');
      const challenge = await httpRequest(url, {
        method,
        headers: { ...headers, authorization: `${scheme} ${type1}`, 'content-length': '0' },
        timeoutMs,
        agent,
      });
      if (challenge.status !== 401) return challenge;
      const offered = [challenge.headers['www-authenticate'] ?? []].flat().join(', ');
      const token = new RegExp(`(?:^|,\\s*)${scheme}\\s+([A-Za-z0-9+/=]+)`).exec(offered)?.[1];
      if (!token) {
        throw new ConnectorError(
          `the administration service refused ${scheme} authentication (it offered: ${offered || 'nothing'}); check CONFIGMGR_AUTH`,
          { retryable: false, statusCode: 401, misconfigured: true },
        );
      }
      const type2 = parseType2Message(`NTLM ${token}`, (e) => {
        throw new ConnectorError(`the administration service sent an unreadable NTLM challenge: ${e.message}`, {
          retryable: false,
          statusCode: 401,
        });
      });
      if (!type2)
        throw new ConnectorError('the administration service sent an unreadable NTLM challenge', { retryable: false, statusCode: 401 });
      const type3 = createType3Message(type2, {
        username: this.user,
        password: this.config.CONFIGMGR_PASSWORD!,
        domain: this.domain,
        workstation,
      }).replace(/^NTLM /, '');
      return await httpRequest(url, {
        method,
        headers: { ...headers, authorization: `${scheme} ${type3}` },
        body: payload,
        timeoutMs,
        agent,
      });
    } finally {
      agent.destroy();
    }
  }
}

/** The message of an OData error body ({"error":{"code","message"}}), or the start of whatever came. */
function errorText(body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: { code?: string; message?: string | { value?: string } } };
    const m = parsed.error?.message;
    const text = typeof m === 'string' ? m : m?.value;
    if (text) return `${parsed.error?.code ? `${parsed.error.code}: ` : ''}${text}`.slice(0, 500);
  } catch {
    // not JSON
  }
  return body.replace(/\s+/g, ' ').trim().slice(0, 300);
}
