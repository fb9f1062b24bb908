import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { createPublicKey, type KeyObject } from 'node:crypto';
import type { Command } from 'commander';
import { ConfigError, loadConfig } from '../config.ts';
import { sealNow, unsealedRows, verifyAudit } from '../core/audit-chain.ts';
import {
  checkpointNow,
  checkpointSchema,
  generateCheckpointKeys,
  parsePrivateKey,
  parsePublicKey,
  verifyAgainstCheckpoint,
  type Checkpoint,
} from '../core/audit-checkpoint.ts';
import { EXIT_FAILED, out, runCommand, withDatabase } from './run.ts';

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/**
 * Outside production, a machine without AUDIT_CHECKPOINT_KEY signs with a key of its own, kept in the user's home
 * (created on first use, readable by the user only), so `audit checkpoint` and `audit verify --checkpoint` work on
 * a development machine as they do in production. Production needs the variable: a key the database's owner can
 * read next to the database proves nothing.
 */
const localKeyFile = () => join(homedir(), '.signoff', 'audit-checkpoint.key');

function localKey(create: boolean): { key: KeyObject; created: boolean } | null {
  const file = localKeyFile();
  const read = () => ({ key: parsePrivateKey(readFileSync(file, 'utf8')), created: false });
  try {
    return read();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
      throw new Error(`cannot use the development checkpoint key ${file}: ${(e as Error).message}`);
  }
  if (!create) return null;
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  try {
    writeFileSync(file, `${generateCheckpointKeys().privateKey}\n`, { flag: 'wx', mode: 0o600 });
  } catch (e) {
    // another command created it meanwhile
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    return read();
  }
  return { ...read(), created: true };
}

function signingKey(): KeyObject {
  const config = loadConfig();
  if (config.AUDIT_CHECKPOINT_KEY) return parsePrivateKey(config.AUDIT_CHECKPOINT_KEY);
  if (config.NODE_ENV === 'production') {
    throw new ConfigError([
      'AUDIT_CHECKPOINT_KEY: is required to sign checkpoints in production (an Ed25519 private key, PEM or base64 PKCS8; `signoff audit keygen` makes a pair)',
    ]);
  }
  const local = localKey(true)!;
  out.error(
    `note: AUDIT_CHECKPOINT_KEY is not set: signed with the development key ${localKeyFile()}${local.created ? ' (created now)' : ''}; set AUDIT_CHECKPOINT_KEY in production`,
  );
  return local.key;
}

function verifyingKey(): KeyObject {
  const config = loadConfig();
  if (config.AUDIT_CHECKPOINT_PUBLIC_KEY) return parsePublicKey(config.AUDIT_CHECKPOINT_PUBLIC_KEY);
  if (config.AUDIT_CHECKPOINT_KEY) return createPublicKey(parsePrivateKey(config.AUDIT_CHECKPOINT_KEY));
  const local = config.NODE_ENV === 'production' ? null : localKey(false);
  if (!local) {
    throw new ConfigError([
      'AUDIT_CHECKPOINT_PUBLIC_KEY: is required to check a checkpoint (or AUDIT_CHECKPOINT_KEY, whose public half is used); ' +
        `give the public key of the key pair that signed it${config.NODE_ENV === 'production' ? '' : ` (no development key exists in ${localKeyFile()} either)`}`,
    ]);
  }
  out.error(`note: AUDIT_CHECKPOINT_PUBLIC_KEY is not set: checking with the development key ${localKeyFile()}`);
  return createPublicKey(local.key);
}

/** Reads and shape-checks a checkpoint file; a file that is not one is a failed check, not a crash. */
function readCheckpoint(file: string): Checkpoint | string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    return `cannot read checkpoint file ${file}: ${(e as Error).message}`;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return `${file} is not a checkpoint: not JSON`;
  }
  const parsed = checkpointSchema.safeParse(json);
  if (!parsed.success)
    return `${file} is not a checkpoint: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(file)'} ${i.message}`).join('; ')}`;
  return parsed.data;
}

export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description('the append-only, hash-chained audit log');
  audit
    .command('verify')
    .description(
      'check every sealed row of the audit chain (exits 1 naming the first broken row); with --checkpoint, also that the log still contains that signed head',
    )
    .option('--checkpoint <file>', 'a checkpoint printed by `signoff audit checkpoint` (or sent as an audit.checkpoint webhook)')
    .action((opts: { checkpoint?: string }) =>
      runCommand(async () => {
        const key = opts.checkpoint ? verifyingKey() : null;
        const checkpoint = opts.checkpoint ? readCheckpoint(opts.checkpoint) : null;
        if (typeof checkpoint === 'string') {
          out.error(`checkpoint check failed: ${checkpoint}`);
          return EXIT_FAILED;
        }
        return withDatabase(async (db) => {
          if (checkpoint && key) {
            const r = await verifyAgainstCheckpoint(db, checkpoint, key);
            if (!r.ok) {
              out.error(`checkpoint check failed: ${r.reason}`);
              return EXIT_FAILED;
            }
            out.line(`audit log intact: ${plural(r.checked, 'sealed row')} checked, ${plural(r.unsealed, 'row')} not sealed yet`);
            out.line(
              `checkpoint at sequence ${checkpoint.sequence} (signed ${checkpoint.timestamp} by key ${checkpoint.keyId}) is contained in the log, which now has ${plural(r.head.sequence, 'sealed row')}`,
            );
            return 0;
          }
          const result = await verifyAudit(db);
          if (result.ok) {
            out.line(`audit log intact: ${plural(result.checked, 'sealed row')} checked, ${plural(result.unsealed, 'row')} not sealed yet`);
            return 0;
          }
          const b = result.firstBroken!;
          out.error(
            `audit log broken at sequence ${b.sequence} (row ${b.id}): ${b.reason} (${plural(result.checked, 'row')} before it are intact)`,
          );
          return EXIT_FAILED;
        });
      }),
    );

  audit
    .command('checkpoint')
    .description(
      'print a signed checkpoint of the sealed head as one line of JSON (needs AUDIT_CHECKPOINT_KEY; seals waiting rows first when no worker is sealing); keep it where the database owner cannot rewrite it',
    )
    .action(() =>
      runCommand(async () => {
        const key = signingKey();
        await withDatabase(async (db) => {
          // when no worker is sealing (none running, or web processes only), chain what waits first
          await sealNow(db);
          out.line(JSON.stringify(await checkpointNow(db, new Date(), key)));
          const waiting = await unsealedRows(db);
          if (waiting.oldestAgeSeconds > 10) {
            out.error(
              `note: ${plural(waiting.count, 'audit row')} waited more than ${Math.floor(waiting.oldestAgeSeconds)} s to be sealed and ${waiting.count === 1 ? 'is' : 'are'} not covered; a long transaction holds the sealer back`,
            );
          }
        });
      }),
    );

  audit
    .command('keygen')
    .description('print a new Ed25519 key pair for checkpoints, as environment lines (keep the private key secret)')
    .action(() =>
      runCommand(async () => {
        const k = generateCheckpointKeys();
        out.line(`# key id ${k.keyId}: the private key signs checkpoints (workers and whoever runs \`audit checkpoint\`),`);
        out.line('# the public key checks them (`audit verify --checkpoint`); keep a copy of the public key with the checkpoints');
        out.line(`AUDIT_CHECKPOINT_KEY=${k.privateKey}`);
        out.line(`AUDIT_CHECKPOINT_PUBLIC_KEY=${k.publicKey}`);
      }),
    );
}
