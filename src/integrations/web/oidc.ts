import * as oidc from 'openid-client';
import type { AppContext } from '../../app-context.ts';
import { identityByOidcClaims, type IdentityRow } from '../../core/directory.ts';
import { AppError } from '../../core/errors.ts';
import type { PendingSignin } from './sessions.ts';

/**
 * OpenID Connect sign-in (authorization code with PKCE, state and nonce) through `openid-client`. The provider's
 * metadata is discovered once, on the first sign-in, so a provider that is down does not stop the process.
 */

export const redirectUri = (ctx: AppContext) => `${ctx.config.PUBLIC_URL.replace(/\/$/, '')}/app/auth/callback`;

const loopback = (u: URL) => ['localhost', '127.0.0.1', '[::1]'].includes(u.hostname);

export function createOidc(ctx: AppContext) {
  let config: Promise<oidc.Configuration> | undefined;
  const configuration = () => {
    const issuer = new URL(ctx.config.OIDC_ISSUER!);
    config ??= oidc
      .discovery(
        issuer,
        ctx.config.OIDC_CLIENT_ID!,
        ctx.config.OIDC_CLIENT_SECRET ? { client_secret: ctx.config.OIDC_CLIENT_SECRET } : undefined,
        ctx.config.OIDC_CLIENT_SECRET ? undefined : oidc.None(),
        // plain http only for a provider on this machine (a local test provider); anything else must be https
        issuer.protocol === 'http:' && loopback(issuer) ? { execute: [oidc.allowInsecureRequests] } : undefined,
      )
      .catch((e) => {
        config = undefined;
        ctx.logger.warn({ err: e }, 'OpenID Connect discovery failed');
        throw new AppError('dependency_unavailable', 'The identity provider cannot be reached right now; try again shortly.');
      });
    return config;
  };

  return {
    /** Where to send the browser, and the secrets the callback checks. */
    async start(returnTo: string): Promise<{ url: string; pending: PendingSignin }> {
      const c = await configuration();
      const codeVerifier = oidc.randomPKCECodeVerifier();
      const pending: PendingSignin = { state: oidc.randomState(), nonce: oidc.randomNonce(), codeVerifier, returnTo };
      const url = oidc.buildAuthorizationUrl(c, {
        redirect_uri: redirectUri(ctx),
        scope: 'openid profile email',
        response_type: 'code',
        code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
        code_challenge_method: 'S256',
        state: pending.state,
        nonce: pending.nonce,
      });
      return { url: url.href, pending };
    },

    /** Redeems the code and maps the ID token to a directory identity through its explicit links. */
    async finish(callbackUrl: URL, pending: PendingSignin): Promise<IdentityRow> {
      const c = await configuration();
      let claims: Record<string, unknown> | undefined;
      try {
        const tokens = await oidc.authorizationCodeGrant(c, callbackUrl, {
          pkceCodeVerifier: pending.codeVerifier,
          expectedState: pending.state,
          expectedNonce: pending.nonce,
          idTokenExpected: true,
        });
        claims = tokens.claims() as Record<string, unknown> | undefined;
      } catch (e) {
        ctx.logger.warn({ err: e }, 'OpenID Connect sign-in refused');
        throw new AppError(
          'unauthenticated',
          "The sign-in could not be completed (the identity provider's answer did not check out). Start again.",
        );
      }
      if (!claims) throw new AppError('unauthenticated', 'The identity provider returned no ID token.');
      const str = (k: string) => (typeof claims![k] === 'string' ? (claims![k] as string) : undefined);
      const oid = str('oid');
      const upn = str('upn') ?? str('preferred_username');
      const who = await identityByOidcClaims(ctx.db, { oid, upn });
      if (!who) {
        throw new AppError(
          'identity_not_linked',
          `You signed in as ${upn ?? oid ?? 'an unknown account'}, but no directory identity is linked to that account. An admin links it with "oid" or "upn" on the identity in the catalog.`,
        );
      }
      return who;
    },
  };
}

export type Oidc = ReturnType<typeof createOidc>;
