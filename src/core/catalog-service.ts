import type { Database } from '../db/database.ts';
import type { Clock } from './clock.ts';

/** Outbound URL check supplied by the integrations layer (private/loopback/metadata addresses refused). */
export type UrlGuard = (url: string) => Promise<void>;

/** Catalog and directory administration (identities, devices, groups, applications, policies, webhooks). */
export class CatalogService {
  constructor(
    readonly db: Database,
    readonly clock: Clock,
    readonly urlGuard: UrlGuard = async () => undefined,
  ) {}
}
