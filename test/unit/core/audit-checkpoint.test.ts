import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../src/config.ts';
import { generateCheckpointKeys, keyIdOf, parsePrivateKey, parsePublicKey, signCheckpoint } from '../../../src/core/audit-checkpoint.ts';
import { GENESIS } from '../../../src/core/audit-log.ts';
import { createPublicKey, verify } from 'node:crypto';

describe('audit checkpoint keys', () => {
  it('reads keys as single-line base64 DER or as PEM, also with literal \\n as env files write them', () => {
    const k = generateCheckpointKeys();
    const priv = parsePrivateKey(k.privateKey);
    const pub = parsePublicKey(k.publicKey);
    expect(keyIdOf(pub)).toBe(k.keyId);
    expect(keyIdOf(createPublicKey(priv))).toBe(k.keyId);
    const pem = priv.export({ format: 'pem', type: 'pkcs8' }).toString();
    expect(keyIdOf(createPublicKey(parsePrivateKey(pem)))).toBe(k.keyId);
    expect(keyIdOf(createPublicKey(parsePrivateKey(pem.replace(/\n/g, '\\n'))))).toBe(k.keyId);
    expect(keyIdOf(parsePublicKey(pub.export({ format: 'pem', type: 'spki' }).toString()))).toBe(k.keyId);
  });

  it('refuses keys that are not Ed25519, and the configuration says which variable and how to make one', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    expect(() => parsePrivateKey(rsa)).toThrow(/rsa key, not Ed25519/);
    try {
      loadConfig({ AUDIT_CHECKPOINT_KEY: rsa });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      expect((e as Error).message).toMatch(/AUDIT_CHECKPOINT_KEY: must be an Ed25519 private \(PKCS8\) key.*signoff audit keygen/);
      expect((e as Error).message).not.toContain('BEGIN PRIVATE KEY');
    }
    expect(() => loadConfig({ AUDIT_CHECKPOINT_INTERVAL_MS: 'hourly' })).toThrow(
      /AUDIT_CHECKPOINT_INTERVAL_MS: must be a whole number of milliseconds/,
    );
    expect(loadConfig({}).AUDIT_CHECKPOINT_KEY).toBeUndefined();
  });

  it('signs sequence, head, time and key id with a domain-separated message', () => {
    const k = generateCheckpointKeys();
    const cp = signCheckpoint({ sequence: 0, hash: GENESIS }, new Date('2026-12-01T10:00:00Z'), parsePrivateKey(k.privateKey));
    expect(cp).toMatchObject({ sequence: 0, headHash: GENESIS, timestamp: '2026-12-01T10:00:00.000Z', keyId: k.keyId });
    const message = Buffer.from(
      `signoff audit checkpoint v1\n{"headHash":"${GENESIS}","keyId":"${k.keyId}","sequence":0,"timestamp":"2026-12-01T10:00:00.000Z"}`,
    );
    expect(verify(null, message, parsePublicKey(k.publicKey), Buffer.from(cp.signature, 'base64'))).toBe(true);
  });
});
