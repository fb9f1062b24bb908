import { apiKeyDigest, stampApiKeyUse, verifyApiKeyDigest, type ApiKeyPrincipal, type ApiKeyVerifier } from '../../core/api-keys.ts';
import type { Queryable } from '../../db/database.ts';
import { listenForNotifications } from '../../db/pg-listener.ts';
import type { Logger } from '../../logger.ts';

/** Announced at commit when a key is revoked or changed, or a person a key is bound to is renamed (migration 1764000000000). */
export const API_KEYS_CHANNEL = 'signoff_api_keys';

const STAMP_EVERY_MS = 60_000;

interface Entry {
  principal: ApiKeyPrincipal;
  readAt: number;
  stampedAt: number;
}

export interface ApiKeyCacheOptions {
  now?: () => number;
  /** an entry is read again after this long even if no change was heard */
  maxAgeMs?: number;
  maxEntries?: number;
}

/**
 * Keeps the keys this process resolved, so a REST call spends no round trip on its key (one of an approval's
 * three). It keeps them only while it hears every change: a revocation anywhere (the CLI, another web process) is
 * announced on API_KEYS_CHANNEL when it commits and empties it; while its LISTEN connection is down it keeps nothing
 * and every call reads its key, as without it. Unknown keys are never kept, so guessing cannot fill it.
 */
export class ApiKeyCache implements ApiKeyVerifier {
  private readonly entries = new Map<string, Entry>();
  private live = false;
  // moves with every change heard and every gap in hearing: a read that saw it move may predate the change
  private generation = 0;
  private readonly now: () => number;
  private readonly maxAgeMs: number;
  private readonly maxEntries: number;

  constructor(
    private readonly db: Queryable,
    opts: ApiKeyCacheOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.maxAgeMs = opts.maxAgeMs ?? 60_000;
    this.maxEntries = opts.maxEntries ?? 1000;
  }

  async verify(presented: string): Promise<ApiKeyPrincipal> {
    const digest = apiKeyDigest(presented);
    const now = this.now();
    const kept = this.live ? this.entries.get(digest) : undefined;
    if (kept && now - kept.readAt < this.maxAgeMs) {
      if (now - kept.stampedAt >= STAMP_EVERY_MS) {
        kept.stampedAt = now;
        stampApiKeyUse(this.db, kept.principal.id);
      }
      return kept.principal;
    }
    const generation = this.generation;
    // stamps the key's last use when that is over a minute old: either way it is fresh as of now
    const principal = await verifyApiKeyDigest(this.db, digest);
    if (this.live && generation === this.generation) this.keep(digest, { principal, readAt: now, stampedAt: now });
    return principal;
  }

  forgetAll(): void {
    this.generation++;
    this.entries.clear();
  }

  /** every change is heard from now on (LISTEN is in place) */
  resume(): void {
    this.forgetAll();
    this.live = true;
  }

  /** changes may go unheard (the LISTEN connection is gone): keep nothing until it is back */
  suspend(): void {
    this.live = false;
    this.forgetAll();
  }

  /** whether it keeps keys: it hears every change */
  get listening(): boolean {
    return this.live;
  }

  private keep(digest: string, entry: Entry): void {
    this.entries.delete(digest);
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(digest, entry);
  }

  /** LISTENs on a connection of its own, coming back after a lost connection; the cache works only while it listens. */
  listen(databaseUrl: string, logger: Logger): { stop(): Promise<void> } {
    const listener = listenForNotifications(
      {
        databaseUrl,
        channel: API_KEYS_CHANNEL,
        applicationName: 'signoff-api-keys',
        logger: logger.child({ component: 'api-key-cache' }),
        failure: 'could not LISTEN for API key changes; every call reads its key until it can',
      },
      { listening: () => this.resume(), lost: () => this.suspend(), notified: () => this.forgetAll() },
    );
    listener.ensure();
    return {
      stop: async () => {
        await listener.stop();
        this.suspend();
      },
    };
  }
}
