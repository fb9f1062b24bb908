import { createPublicKey } from 'node:crypto';
import { existsSync } from 'node:fs';
import { isIP } from 'node:net';
import { z } from 'zod';
import { parsePrivateKey, parsePublicKey } from './core/audit-checkpoint.ts';
import { parseDuration } from './core/durations.ts';

const bool = z.enum(['1', '0', 'true', 'false', 'yes', 'no', '']).transform((v) => v === '1' || v === 'true' || v === 'yes');

const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

const parsedUrl = (v: string) => {
  try {
    return new URL(v);
  } catch {
    return undefined;
  }
};

/** A URL of the schemes `what` names ('redis://' also takes rediss://, 'http(s)://' either), with a host. */
const url = (what: 'redis://' | 'http(s)://' | 'https://') => {
  const schemes = { 'redis://': ['redis:', 'rediss:'], 'http(s)://': ['http:', 'https:'], 'https://': ['https:'] }[what];
  return z.string().refine((v) => {
    const u = parsedUrl(v);
    return u !== undefined && schemes.includes(u.protocol) && u.hostname !== '';
  }, `must be a ${what} URL`);
};

/** A Postgres URL that names its database: without one, pg connects to the user's own (`postgres`, shared). */
const postgresUrl = z.string().superRefine((v, c) => {
  const u = parsedUrl(v);
  if (!u || !/^postgres(?:ql)?:$/.test(u.protocol)) c.addIssue({ code: 'custom', message: 'must be a postgres:// URL' });
  else if (!decodeURIComponent(u.pathname.replace(/^\//, '')).trim()) {
    c.addIssue({ code: 'custom', message: 'must name a database, e.g. postgres://postgres@127.0.0.1:5432/signoff' });
  }
});

const smtpUrl = optionalString.superRefine((v, c) => {
  if (v === undefined) return;
  const u = parsedUrl(v);
  if (!u || !/^smtps?:$/.test(u.protocol) || !u.hostname) {
    c.addIssue({ code: 'custom', message: 'must be an smtp:// or smtps:// URL with a host, e.g. smtp://user:pass@mail.example.com:587' });
  }
});

const HOSTNAME = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$/i;

/** Why one WEBHOOK_ALLOW_HOSTS entry is no host name, address or network, or undefined when it is one. */
function allowEntryProblem(raw: string): string | undefined {
  const entry = raw.toLowerCase().replace(/^\[|\]$/g, '');
  const cidr = /^(.+)\/(\d{1,3})$/.exec(entry);
  if (cidr) {
    const family = isIP(cidr[1]!);
    if (!family) return `"${raw}": ${cidr[1]} is not an IP address`;
    const max = family === 4 ? 32 : 128;
    return Number(cidr[2]) <= max ? undefined : `"${raw}": an IPv${family} prefix is at most /${max}`;
  }
  if (isIP(entry)) return undefined;
  // all digits and dots but no address (999.1.1.1) is a mistyped address, not a name
  if (/^[\d.]+$/.test(entry) || !HOSTNAME.test(entry)) return `"${raw}" is not a host name, IP address or CIDR network`;
  return undefined;
}

const ed25519Key = (parse: (text: string) => unknown, what: string) =>
  optionalString.superRefine((v, c) => {
    if (v === undefined) return;
    try {
      parse(v);
    } catch (e) {
      c.addIssue({
        code: 'custom',
        message: `must be an Ed25519 ${what} key, PEM or base64 DER (${(e as Error).message}); \`signoff audit keygen\` makes a pair`,
      });
    }
  });

const readableFile = optionalString.refine((v) => v === undefined || existsSync(v), 'must name a file that exists');

// setTimeout and setInterval take at most this many milliseconds; a larger value would fire at once
const MAX_TIMER_MS = 2_147_483_647;

/**
 * A whole number from the environment, within bounds, with a message that says what it counts: `1e3`, `10.5`,
 * `5s` and `-1` are refused rather than coerced; unset or blank takes the default.
 */
function wholeNumber(unit: string, def: number, min: number, max: number) {
  const message = `must be a whole number of ${unit} from ${min} to ${max}`;
  return z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v.trim() === '') return def;
      const n = /^\d{1,16}$/.test(v.trim()) ? Number(v.trim()) : NaN;
      if (!Number.isSafeInteger(n) || n < min || n > max) {
        ctx.addIssue({ code: 'custom', message });
        return z.NEVER;
      }
      return n;
    });
}

const milliseconds = (def: number, min = 10) => wholeNumber('milliseconds', def, min, MAX_TIMER_MS);

/** An ISO 8601 duration (P14D, PT12H), positive and at most `maxDays`, so a typo cannot start a process that fails later. */
const isoDuration = (def: string, maxDays: number) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      const value = v === undefined || v.trim() === '' ? def : v.trim();
      let ms: number;
      try {
        ms = parseDuration(value);
      } catch {
        ms = 0;
      }
      if (ms <= 0 || ms > maxDays * 86_400_000) {
        ctx.addIssue({
          code: 'custom',
          message: `must be an ISO 8601 duration such as P14D, P2W or PT12H, longer than zero and at most P${maxDays}D`,
        });
        return z.NEVER;
      }
      return value;
    });

/** The one schema over the environment. Every key the product reads is here. */
export const configSchema = z
  .object({
    NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
    PORT: wholeNumber('a port number', 3978, 0, 65535).describe('0 picks a free port'),
    DATABASE_URL: postgresUrl.default('postgres://postgres@127.0.0.1:5432/signoff'),
    REDIS_URL: url('redis://').default('redis://127.0.0.1:6379'),
    // unset: this machine on PORT (http://localhost:3978 with the default port), so links match where it listens
    PUBLIC_URL: url('http(s)://').optional(),
    QUEUE_PREFIX: z.string().min(1).default('signoff'),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    MAX_BODY_BYTES: wholeNumber('bytes', 256 * 1024, 1024, 64 * 1024 * 1024),
    // how long opening a Postgres connection may take before a call fails as unavailable (503)
    DATABASE_CONNECT_TIMEOUT_MS: milliseconds(5000),
    // connections this process keeps to Postgres; more than a few per core of the database only adds contention
    DATABASE_POOL_SIZE: wholeNumber('connections', 20, 1, 1000),

    SLACK_SIGNING_SECRET: optionalString,
    SLACK_BOT_TOKEN: optionalString,
    SLACK_API_URL: optionalString.pipe(url('http(s)://').optional()),

    MICROSOFT_APP_ID: optionalString,
    MICROSOFT_APP_PASSWORD: optionalString,
    MICROSOFT_APP_TENANT_ID: optionalString,
    MICROSOFT_APP_TYPE: z.enum(['MultiTenant', 'SingleTenant', 'UserAssignedMSI']).default('MultiTenant'),
    TEAMS_EMULATOR: bool.default(false),

    SMTP_URL: smtpUrl,
    SMTP_FROM: z.string().default('Signoff <signoff@localhost>'),

    WEBHOOK_ALLOW_HOSTS: z
      .string()
      .default('')
      .transform((v) =>
        v
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean),
      )
      .superRefine((entries, c) => {
        for (const problem of entries.map(allowEntryProblem)) if (problem) c.addIssue({ code: 'custom', message: problem });
      }),
    WEBHOOK_TIMEOUT_MS: milliseconds(10_000),
    WEBHOOK_MAX_ATTEMPTS: wholeNumber('attempts', 8, 1, 50),
    // fairness: attempts in flight per endpoint over all workers, and its circuit breaker
    WEBHOOK_ENDPOINT_CONCURRENCY: wholeNumber('attempts', 4, 1, 1000),
    WEBHOOK_BREAKER_FAILURES: wholeNumber('failures', 5, 1, 1000),
    WEBHOOK_BREAKER_COOLDOWN_MS: milliseconds(30_000),
    OUTBOX_RECONCILE_MS: milliseconds(30_000),
    SWEEP_INTERVAL_MS: milliseconds(5_000),
    LINK_TOKEN_TTL: isoDuration('P14D', 366),
    // device-management connectors: one Intune tenant and one Configuration Manager site, chosen per application
    INTUNE_TENANT_ID: optionalString,
    INTUNE_CLIENT_ID: optionalString,
    INTUNE_CLIENT_SECRET: optionalString,
    INTUNE_CLIENT_CERTIFICATE_PATH: readableFile,
    // sovereign clouds, or the local fakes the tests use
    INTUNE_AUTHORITY_HOST: url('https://').default('https://login.microsoftonline.com'),
    INTUNE_GRAPH_URL: url('http(s)://').default('https://graph.microsoft.com'),
    INTUNE_CA_FILE: readableFile,
    // https://<SMS Provider FQDN>/AdminService
    CONFIGMGR_ADMINSERVICE_URL: optionalString.pipe(
      url('https://')
        .refine((v) => v.startsWith('https://'), 'must be an https:// URL')
        .optional(),
    ),
    CONFIGMGR_AUTH: z.enum(['negotiate', 'ntlm', 'basic']).default('negotiate'),
    CONFIGMGR_USERNAME: optionalString,
    CONFIGMGR_PASSWORD: optionalString,
    CONFIGMGR_CA_FILE: readableFile,
    DEVICE_MANAGER_TIMEOUT_MS: milliseconds(30_000),
    DEVICE_MANAGER_MAX_ATTEMPTS: wholeNumber('attempts', 12, 1, 50),
    // web app sign-in (/app) with the company's OpenID Connect provider; unset: sign in with `signoff signin-link` only
    OIDC_ISSUER: optionalString.pipe(url('http(s)://').optional()),
    OIDC_CLIENT_ID: optionalString,
    // unset: a public client (PKCE alone)
    OIDC_CLIENT_SECRET: optionalString,
    // how long a `signoff signin-link` URL works, and how long a web session lasts
    SIGNIN_LINK_TTL: isoDuration('PT15M', 30),
    WEB_SESSION_TTL: isoDuration('PT12H', 366),
    // finished webhook deliveries and outbox events older than this are deleted; 0 keeps them forever
    RETENTION_DAYS: wholeNumber('days', 90, 0, 36_500),
    // audit chain: how often the sealer looks for new rows (a commit also wakes it), and signed checkpoints
    AUDIT_SEAL_INTERVAL_MS: wholeNumber('milliseconds', 150, 10, 60_000),
    AUDIT_CHECKPOINT_KEY: ed25519Key(parsePrivateKey, 'private (PKCS8)'),
    // for `audit verify --checkpoint` where the private key is not kept; derived from AUDIT_CHECKPOINT_KEY when unset
    AUDIT_CHECKPOINT_PUBLIC_KEY: ed25519Key(parsePublicKey, 'public (SPKI)'),
    // how often the sealer emits a checkpoint (log line + audit.checkpoint webhook) when AUDIT_CHECKPOINT_KEY is set; 0: never
    AUDIT_CHECKPOINT_INTERVAL_MS: wholeNumber('milliseconds', 3_600_000, 0, MAX_TIMER_MS).refine(
      (v) => v === 0 || v >= 1000,
      'must be 0 (off) or at least 1000',
    ),
  })
  .transform((c) => ({ ...c, PUBLIC_URL: c.PUBLIC_URL ?? `http://localhost:${c.PORT}` }));

/** Rules across keys, checked on the raw environment so they are reported together with per-key problems. */
function crossKeyProblems(env: Record<string, string | undefined>): string[] {
  const set = (k: string) => Boolean(env[k]?.trim());
  const on = (k: string) => ['1', 'true', 'yes'].includes(env[k] ?? '');
  const problems: string[] = [];
  if (on('TEAMS_EMULATOR') && env.NODE_ENV === 'production') {
    problems.push('TEAMS_EMULATOR: must not be set when NODE_ENV=production (it accepts unauthenticated traffic)');
  }
  if (set('SLACK_SIGNING_SECRET') !== set('SLACK_BOT_TOKEN')) {
    problems.push(
      `${set('SLACK_SIGNING_SECRET') ? 'SLACK_BOT_TOKEN' : 'SLACK_SIGNING_SECRET'}: is required when the other Slack key is set`,
    );
  }
  if (set('MICROSOFT_APP_ID') !== set('MICROSOFT_APP_PASSWORD') && env.MICROSOFT_APP_TYPE !== 'UserAssignedMSI') {
    problems.push(
      `${set('MICROSOFT_APP_ID') ? 'MICROSOFT_APP_PASSWORD' : 'MICROSOFT_APP_ID'}: is required when the other Microsoft app key is set`,
    );
  }
  if (set('INTUNE_TENANT_ID') || set('INTUNE_CLIENT_ID') || set('INTUNE_CLIENT_SECRET') || set('INTUNE_CLIENT_CERTIFICATE_PATH')) {
    for (const k of ['INTUNE_TENANT_ID', 'INTUNE_CLIENT_ID'])
      if (!set(k)) problems.push(`${k}: is required when the Intune connection is configured`);
    if (set('INTUNE_CLIENT_SECRET') === set('INTUNE_CLIENT_CERTIFICATE_PATH')) {
      problems.push(
        'INTUNE_CLIENT_SECRET: give either it or INTUNE_CLIENT_CERTIFICATE_PATH (a PEM with the private key), not both or neither',
      );
    }
  }
  if (set('AUDIT_CHECKPOINT_KEY') && set('AUDIT_CHECKPOINT_PUBLIC_KEY')) {
    try {
      const derived = createPublicKey(parsePrivateKey(env.AUDIT_CHECKPOINT_KEY!)).export({ format: 'der', type: 'spki' });
      if (!derived.equals(parsePublicKey(env.AUDIT_CHECKPOINT_PUBLIC_KEY!).export({ format: 'der', type: 'spki' }))) {
        problems.push('AUDIT_CHECKPOINT_PUBLIC_KEY: is not the public half of AUDIT_CHECKPOINT_KEY');
      }
    } catch {
      // reported by the schema
    }
  }
  if (set('OIDC_ISSUER') !== set('OIDC_CLIENT_ID')) {
    problems.push(`${set('OIDC_ISSUER') ? 'OIDC_CLIENT_ID' : 'OIDC_ISSUER'}: is required when the other OpenID Connect key is set`);
  }
  if (set('OIDC_CLIENT_SECRET') && !set('OIDC_ISSUER')) problems.push('OIDC_ISSUER: is required when OIDC_CLIENT_SECRET is set');
  if (set('CONFIGMGR_ADMINSERVICE_URL')) {
    for (const k of ['CONFIGMGR_USERNAME', 'CONFIGMGR_PASSWORD'])
      if (!set(k)) problems.push(`${k}: is required when CONFIGMGR_ADMINSERVICE_URL is set`);
    if (set('CONFIGMGR_USERNAME') && env.CONFIGMGR_AUTH !== 'basic' && !/^[^\\\s]+\\[^\\\s]+$/.test(env.CONFIGMGR_USERNAME!.trim())) {
      problems.push('CONFIGMGR_USERNAME: must be DOMAIN\\user for Windows-integrated authentication');
    }
  }
  return problems;
}

export type Config = z.infer<typeof configSchema>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Parses the environment once; the message names every bad key and what is wrong with it. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const result = configSchema.safeParse(env);
  const cross = crossKeyProblems(env);
  if (!result.success || cross.length) {
    throw new ConfigError([
      ...(result.error?.issues ?? []).map((i) => {
        const key = i.path.join('.') || '(environment)';
        const value = typeof i.path[0] === 'string' ? env[i.path[0]] : undefined;
        // what was given, but never a secret, nor the password a URL carries
        const shown = value?.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/@:]*:)[^/@]*@/i, '$1***@');
        return `${key}: ${i.message}${shown !== undefined && !/SECRET|PASSWORD|TOKEN|_KEY$/.test(key) ? ` (got "${shown}")` : ''}`;
      }),
      ...cross,
    ]);
  }
  return result.data;
}

export const slackEnabled = (c: Config) => Boolean(c.SLACK_SIGNING_SECRET && c.SLACK_BOT_TOKEN);
export const teamsEnabled = (c: Config) => Boolean(c.MICROSOFT_APP_ID) || c.TEAMS_EMULATOR;
export const oidcEnabled = (c: Config) => Boolean(c.OIDC_ISSUER && c.OIDC_CLIENT_ID);
export const emailEnabled = (c: Config) => Boolean(c.SMTP_URL);
export const intuneConfigured = (c: Config) =>
  Boolean(c.INTUNE_TENANT_ID && c.INTUNE_CLIENT_ID && (c.INTUNE_CLIENT_SECRET || c.INTUNE_CLIENT_CERTIFICATE_PATH));
export const configMgrConfigured = (c: Config) => Boolean(c.CONFIGMGR_ADMINSERVICE_URL && c.CONFIGMGR_USERNAME && c.CONFIGMGR_PASSWORD);
