import { ClientCertificateCredential, ClientSecretCredential, type TokenCredential } from '@azure/identity';
import { createDefaultHttpClient, type HttpClient } from '@azure/core-rest-pipeline';
import { AuthenticationHandler, Client, type Context, type Middleware } from '@microsoft/microsoft-graph-client';
import { TokenCredentialAuthenticationProvider } from '@microsoft/microsoft-graph-client/authProviders/azureTokenCredentials/index.js';
import type { Config } from '../../config.ts';
import { httpRequest, trustedCas } from './https-request.ts';

const DEFAULT_AUTHORITY = 'https://login.microsoftonline.com';
export const GRAPH_SCOPE = 'https://graph.microsoft.com/.default';

/**
 * Microsoft's own clients, not hand-written token code: @azure/identity (client secret or certificate; MSAL caches
 * the token and renews it before it expires) and @microsoft/microsoft-graph-client. Both are pointed at
 * INTUNE_AUTHORITY_HOST / INTUNE_GRAPH_URL, which only sovereign clouds and the tests change, and trust INTUNE_CA_FILE
 * besides the system roots (TLS-inspecting proxies).
 */
export function createGraphCredential(config: Config): TokenCredential {
  const ca = trustedCas(config.INTUNE_CA_FILE);
  let httpClient: HttpClient | undefined;
  if (ca) {
    const base = createDefaultHttpClient();
    httpClient = { sendRequest: (request) => base.sendRequest(Object.assign(request, { tlsSettings: { ...request.tlsSettings, ca } })) };
  }
  const authorityHost = config.INTUNE_AUTHORITY_HOST;
  const options = {
    authorityHost,
    // instance discovery asks login.microsoftonline.com about the authority, which a custom host is not known to
    disableInstanceDiscovery: new URL(authorityHost).origin !== new URL(DEFAULT_AUTHORITY).origin,
    ...(httpClient ? { httpClient } : {}),
  };
  return config.INTUNE_CLIENT_CERTIFICATE_PATH
    ? new ClientCertificateCredential(
        config.INTUNE_TENANT_ID!,
        config.INTUNE_CLIENT_ID!,
        { certificatePath: config.INTUNE_CLIENT_CERTIFICATE_PATH },
        options,
      )
    : new ClientSecretCredential(config.INTUNE_TENANT_ID!, config.INTUNE_CLIENT_ID!, config.INTUNE_CLIENT_SECRET!, options);
}

/**
 * The last link of the Graph middleware chain: sends over node:https with the configured CAs and a timeout. The SDK's
 * RetryHandler is left out on purpose: a throttled or failing call ends the attempt, which is recorded, and the
 * delivery is retried durably no sooner than Retry-After, instead of sleeping inside a worker for minutes.
 */
class NodeHttpHandler implements Middleware {
  constructor(
    private readonly timeoutMs: number,
    private readonly ca: string[] | undefined,
  ) {}
  async execute(context: Context): Promise<void> {
    const url = new URL(typeof context.request === 'string' ? context.request : context.request.url);
    const options = context.options ?? {};
    const headers: Record<string, string> = {};
    new Headers(options.headers as ConstructorParameters<typeof Headers>[0]).forEach((v, k) => (headers[k] = v));
    const body =
      typeof options.body === 'string' || Buffer.isBuffer(options.body) ? options.body : options.body ? String(options.body) : undefined;
    const r = await httpRequest(url, { method: options.method ?? 'GET', headers, body, timeoutMs: this.timeoutMs, ca: this.ca });
    const responseHeaders = new Headers();
    for (const [k, v] of Object.entries(r.headers)) if (v !== undefined) responseHeaders.set(k, Array.isArray(v) ? v.join(', ') : v);
    // a 204 must not carry a body, and Response refuses one
    context.response = new Response(r.status === 204 || r.status === 304 ? null : r.body, { status: r.status, headers: responseHeaders });
  }
}

export function createGraphClient(config: Config, credential: TokenCredential): Client {
  const base = new URL(config.INTUNE_GRAPH_URL);
  const auth = new AuthenticationHandler(new TokenCredentialAuthenticationProvider(credential, { scopes: [GRAPH_SCOPE] }));
  auth.setNext(new NodeHttpHandler(config.DEVICE_MANAGER_TIMEOUT_MS, trustedCas(config.INTUNE_CA_FILE)));
  return Client.initWithMiddleware({
    middleware: auth,
    baseUrl: base.toString().replace(/\/$/, ''),
    defaultVersion: 'v1.0',
    // the SDK adds the bearer token only for Graph's own hosts unless told about another
    customHosts: new Set([base.hostname]),
  });
}
