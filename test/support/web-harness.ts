import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync } from 'node:fs';
import type { Server } from 'node:http';
import Provider from 'oidc-provider';
import { chromium, type Browser } from 'playwright-core';
import { awaitStarted, markedEnv, spawnTracked } from './children.ts';
import { freePort } from './ports.ts';

/** What the browser tests need: Signoff started as `npm start` starts it, a local OpenID provider, Chromium. */

const ROOT = new URL('../..', import.meta.url).pathname;
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const chromiumAvailable = existsSync(CHROMIUM);
export const ARTIFACTS = `${ROOT}test-artifacts`;

export interface SignoffProcess {
  url: string;
  proc: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

/** `node bin/signoff.mjs start` (what `npm start` runs) on a port of its own, web and workers in one process. */
export async function startSignoff(env: Record<string, string>, port?: number): Promise<SignoffProcess> {
  port ??= await freePort();
  const url = `http://localhost:${port}`;
  const proc = spawnTracked(process.execPath, ['bin/signoff.mjs', 'start'], {
    cwd: ROOT,
    // info: the start-up line is how we know it listens
    env: { ...process.env, NODE_ENV: 'test', PORT: String(port), PUBLIC_URL: url, ...env, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = await awaitStarted(proc, 'Signoff started', 'signoff start to listen');
  return {
    url,
    proc,
    output,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = once(proc, 'exit');
      proc.kill('SIGTERM');
      // a graceful stop that hangs is not what this helper checks: give up on it well inside the hook timeout
      const timer = setTimeout(() => proc.kill('SIGKILL'), 60_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

export interface LocalOidc {
  issuer: string;
  clientId: string;
  clientSecret: string;
  stop(): Promise<void>;
}

/**
 * A local OpenID provider (`oidc-provider`, a certified implementation) with its development login form: any
 * login name signs in as the account of that name. Accounts carry the claims Entra ID sends (oid, preferred_username).
 */
export async function startOidcProvider(
  redirectUri: string,
  accounts: Record<string, { oid?: string; preferred_username?: string; name?: string }>,
): Promise<LocalOidc> {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const clientId = 'signoff-web';
  const clientSecret = 'local-test-secret-0123456789';
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: [redirectUri],
        response_types: ['code'],
        grant_types: ['authorization_code'],
      },
    ],
    claims: { openid: ['sub'], profile: ['name', 'preferred_username', 'oid'] },
    // Entra puts oid and preferred_username in the ID token; so does this provider
    conformIdTokenClaims: false,
    cookies: { keys: ['local-test-cookie-key'] },
    findAccount: (_ctx, id) => ({ accountId: id, claims: () => ({ sub: id, ...(accounts[id] ?? {}) }) }),
  });
  // the provider logs a warning about development interactions; that is what this is
  const server: Server = provider.listen(port) as unknown as Server;
  await once(server, 'listening').catch(() => undefined);
  return {
    issuer,
    clientId,
    clientSecret,
    stop: () =>
      new Promise<void>((r) => {
        server.closeAllConnections?.();
        server.close(() => r());
      }),
  };
}

export async function launchChromium(): Promise<Browser> {
  mkdirSync(ARTIFACTS, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    env: markedEnv(),
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}
