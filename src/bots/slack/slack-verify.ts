import { createHmac, timingSafeEqual } from 'node:crypto';

/** Slack's replay window; unlike Bolt's own check it applies to timestamps in the future too. */
export const MAX_SKEW_SECONDS = 5 * 60;

export type VerifyResult = { ok: true } | { ok: false; reason: string };

export interface SignedHeaders {
  timestamp: string | undefined;
  signature: string | undefined;
}

export function signSlackBody(secret: string, timestamp: number | string, body: string): string {
  return `v0=${createHmac('sha256', secret).update(`v0:${timestamp}:${body}`).digest('hex')}`;
}

/**
 * Checks the v0 HMAC over the exact raw bytes Slack sent, before anything parses them.
 * The body is taken as a Buffer so a re-encoding can never make a forged body verify.
 */
export function verifySlackSignature(secret: string, headers: SignedHeaders, rawBody: Buffer, nowMs: number): VerifyResult {
  const { timestamp, signature } = headers;
  if (!timestamp || !signature) return { ok: false, reason: 'missing X-Slack-Request-Timestamp or X-Slack-Signature' };
  if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: 'malformed timestamp' };
  const skew = Math.abs(Math.floor(nowMs / 1000) - Number(timestamp));
  if (skew > MAX_SKEW_SECONDS) return { ok: false, reason: `timestamp is ${skew}s away from now (more than ${MAX_SKEW_SECONDS}s)` };
  if (!/^v0=[0-9a-f]{64}$/.test(signature)) return { ok: false, reason: 'malformed signature' };
  const expected = createHmac('sha256', secret).update(`v0:${timestamp}:`).update(rawBody).digest();
  const given = Buffer.from(signature.slice(3), 'hex');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'signature mismatch' };
  return { ok: true };
}
