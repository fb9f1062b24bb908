import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { z } from 'zod';
import type { Queryable } from '../db/database.ts';
import { chainHead, verifyAudit, type ChainHead } from './audit-chain.ts';
import { canonicalJson } from './canonical-json.ts';

/**
 * Signed checkpoints of the sealed audit chain, in the manner of Certificate Transparency's signed tree heads:
 * (sequence, head hash, time, key id) signed with Ed25519. Kept somewhere the database's owner cannot rewrite,
 * a checkpoint proves later that the log still contains that head: rows removed from the end, or rows edited or
 * reordered at or before it (even with every later hash recomputed), no longer match it.
 */
export interface Checkpoint {
  /** number of sealed rows the checkpoint covers; the row at this sequence has `headHash` */
  sequence: number;
  headHash: string;
  /** when it was signed (ISO 8601) */
  timestamp: string;
  /** hex SHA-256 prefix of the signing key's public key (SPKI DER) */
  keyId: string;
  /** base64 Ed25519 signature over signedBytes(...) */
  signature: string;
}

export const checkpointSchema = z.strictObject({
  sequence: z.number().int().min(0),
  headHash: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 hex characters'),
  timestamp: z.iso.datetime({ offset: true }),
  keyId: z.string().min(1),
  signature: z.string().min(1),
});

const DOMAIN = 'signoff audit checkpoint v1\n';

function signedBytes(c: Omit<Checkpoint, 'signature'>): Buffer {
  return Buffer.from(DOMAIN + canonicalJson({ sequence: c.sequence, headHash: c.headHash, timestamp: c.timestamp, keyId: c.keyId }));
}

/** PEM (literal `\n` escapes allowed, as env files often have them) or base64 of the DER. */
function keyMaterial(text: string): { key: string | Buffer; format: 'pem' | 'der' } {
  const t = text.trim().replace(/\\n/g, '\n');
  if (t.startsWith('-----BEGIN')) return { key: t, format: 'pem' };
  if (!/^[A-Za-z0-9+/=\s]+$/.test(t)) throw new Error('is neither PEM nor base64');
  return { key: Buffer.from(t.replace(/\s/g, ''), 'base64'), format: 'der' };
}

export function parsePrivateKey(text: string): KeyObject {
  const m = keyMaterial(text);
  const key = m.format === 'pem' ? createPrivateKey(m.key) : createPrivateKey({ key: m.key as Buffer, format: 'der', type: 'pkcs8' });
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`is a ${key.asymmetricKeyType} key, not Ed25519`);
  return key;
}

export function parsePublicKey(text: string): KeyObject {
  const m = keyMaterial(text);
  const key = m.format === 'pem' ? createPublicKey(m.key) : createPublicKey({ key: m.key as Buffer, format: 'der', type: 'spki' });
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`is a ${key.asymmetricKeyType} key, not Ed25519`);
  return key;
}

export function keyIdOf(publicKey: KeyObject): string {
  return createHash('sha256')
    .update(publicKey.export({ format: 'der', type: 'spki' }))
    .digest('hex')
    .slice(0, 16);
}

/** A fresh key pair as single-line base64 DER (PKCS8 private, SPKI public), ready for an env file. */
export function generateCheckpointKeys(): { privateKey: string; publicKey: string; keyId: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privateKey: privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64'),
    publicKey: publicKey.export({ format: 'der', type: 'spki' }).toString('base64'),
    keyId: keyIdOf(publicKey),
  };
}

export function signCheckpoint(head: ChainHead, at: Date, privateKey: KeyObject): Checkpoint {
  const body = { sequence: head.sequence, headHash: head.hash, timestamp: at.toISOString(), keyId: keyIdOf(createPublicKey(privateKey)) };
  return { ...body, signature: sign(null, signedBytes(body), privateKey).toString('base64') };
}

/** A checkpoint of the sealed head as it is now. */
export async function checkpointNow(db: Queryable, at: Date, privateKey: KeyObject): Promise<Checkpoint> {
  return signCheckpoint(await chainHead(db), at, privateKey);
}

export type CheckpointCheck = { ok: true; checked: number; unsealed: number; head: ChainHead } | { ok: false; reason: string };

/**
 * Whether the log still extends the checkpoint: the signature holds under `publicKey`, the sealed chain is
 * intact, it has at least `sequence` rows, and the row at `sequence` has the checkpoint's hash.
 */
export async function verifyAgainstCheckpoint(db: Queryable, checkpoint: Checkpoint, publicKey: KeyObject): Promise<CheckpointCheck> {
  const keyId = keyIdOf(publicKey);
  if (checkpoint.keyId !== keyId)
    return { ok: false, reason: `the checkpoint was signed by key ${checkpoint.keyId}, not by the configured key ${keyId}` };
  const { signature, ...body } = checkpoint;
  if (!verify(null, signedBytes(body), publicKey, Buffer.from(signature, 'base64'))) {
    return { ok: false, reason: `the checkpoint's signature does not verify with key ${keyId} (the file was altered after signing)` };
  }
  const chain = await verifyAudit(db);
  if (!chain.ok) {
    const b = chain.firstBroken!;
    return { ok: false, reason: `the audit log is broken at sequence ${b.sequence} (row ${b.id}): ${b.reason}` };
  }
  if (chain.head.sequence < checkpoint.sequence) {
    return {
      ok: false,
      reason: `the log has ${chain.head.sequence} sealed row${chain.head.sequence === 1 ? '' : 's'}, fewer than the checkpoint's ${checkpoint.sequence}: rows were removed after the checkpoint was signed`,
    };
  }
  const at =
    checkpoint.sequence === 0
      ? { hash: checkpoint.headHash }
      : await db.one<{ hash: string }>('SELECT hash FROM audit_chain WHERE seq = $1', [checkpoint.sequence]);
  if (at.hash !== checkpoint.headHash) {
    return {
      ok: false,
      reason: `the row at sequence ${checkpoint.sequence} has hash ${at.hash}, but the checkpoint says ${checkpoint.headHash}: the log was rewritten at or before that sequence`,
    };
  }
  return { ok: true, checked: chain.checked, unsealed: chain.unsealed, head: chain.head };
}
