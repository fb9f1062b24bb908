import { createHmac } from 'node:crypto';

/** `whsec_` secrets carry base64 key bytes; the prefix is only a label. */
export function secretBytes(secret: string): Buffer {
  return Buffer.from(secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : secret, 'base64');
}

export const messageIdOf = (deliveryId: string) => `msg_${deliveryId}`;

export function sign(secret: string, msgId: string, timestampSeconds: number, body: string): string {
  const mac = createHmac('sha256', secretBytes(secret)).update(`${msgId}.${timestampSeconds}.${body}`).digest('base64');
  return `v1,${mac}`;
}

/** Standard Webhooks headers; the timestamp is the send time of this attempt, the id is the same on every retry. */
export function signedHeaders(secret: string, msgId: string, body: string, now: number = Date.now()): Record<string, string> {
  const ts = Math.floor(now / 1000);
  return {
    'content-type': 'application/json',
    'user-agent': 'Signoff-Webhooks/1',
    'webhook-id': msgId,
    'webhook-timestamp': String(ts),
    'webhook-signature': sign(secret, msgId, ts, body),
  };
}

export function webhookBody(type: string, occurredAt: string, data: object): string {
  return JSON.stringify({ type, timestamp: occurredAt, data });
}
