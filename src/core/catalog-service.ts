import type { Database, Queryable, Tx } from '../db/database.ts';
import { appendAudit, type Actor } from './audit-log.ts';
import { canonicalJson } from './canonical-json.ts';
import { approverGroupKind, deviceKind, identityKind } from './catalog-directory-kinds.ts';
import type { BaseRow, KindOps } from './catalog-kind.ts';
import { applicationKind, changePolicyKind, generateWebhookSecret, policyKind, webhookKind } from './catalog-resource-kinds.ts';
import {
  applicationInputSchema,
  approverGroupInputSchema,
  catalogDocumentSchema,
  catalogKinds,
  changePolicyInputSchema,
  deviceInputSchema,
  identityInputSchema,
  policyInputSchema,
  webhookInputSchema,
  type ApplicationInput,
  type ApproverGroupInput,
  type CatalogDocument,
  type CatalogKind,
  type ChangePolicyInput,
  type DeviceInput,
  type IdentityInput,
  type PolicyInputNamed,
  type WebhookInput,
} from './catalog-schemas.ts';
import { catalogConflict } from './catalog-conflicts.ts';
import type { Clock } from './clock.ts';
import { checkDeviceManagers, recordChecks } from './device-manager-checks.ts';
import type { DeviceManagerCheck } from './device-manager.ts';
import { AppError } from './errors.ts';
import type { UrlGuard } from './ports.ts';
import { parseInput } from './validation.ts';

export type { UrlGuard } from './ports.ts';

export type Outcome = 'created' | 'updated' | 'unchanged';
export interface KindSummary {
  created: number;
  updated: number;
  unchanged: number;
  deleted: number;
}
export type ApplySummary = Record<CatalogKind, KindSummary> & { dryRun: boolean };
export interface ApplyOptions {
  prune?: boolean;
  dryRun?: boolean;
  actor?: Actor;
}

/** The public shape of any catalog object: its id, its desired state, and timestamps. */
export type CatalogView = { id: string; createdAt: string; updatedAt: string } & Record<string, unknown>;
export interface UpsertResult {
  outcome: Outcome;
  item: CatalogView;
}
export interface UpsertOptions {
  /** `create` refuses an existing object (POST); `upsert` creates or replaces it (PUT, apply) */
  mode?: 'create' | 'upsert';
  /** the id or natural key from the URL; when it names an existing object that object is replaced (renames allowed) */
  ref?: string;
}

export const cliActor: Actor = { id: null, label: 'cli', channel: 'cli' };

type AnyKind = KindOps<any, BaseRow, any>;

export const catalogInputSchemas = {
  identities: identityInputSchema,
  devices: deviceInputSchema,
  approverGroups: approverGroupInputSchema,
  policies: policyInputSchema,
  applications: applicationInputSchema,
  changePolicies: changePolicyInputSchema,
  webhooks: webhookInputSchema,
} as const;

const nouns: Record<CatalogKind, string> = {
  identities: 'identity',
  devices: 'device',
  approverGroups: 'approver group',
  policies: 'policy',
  applications: 'application',
  changePolicies: 'change policy',
  webhooks: 'webhook',
};

class DryRunRollback extends Error {}

// Catalog writes take turns: reference checks read other rows (a policy's groups, a group's users), so two
// concurrent writes could otherwise each pass their check and together leave a dangling reference.
// distinct from every other advisory key (7461626 migrations, 7461628 the audit sealer): sharing one made `apply` wait forever on a running worker
const CATALOG_LOCK = 7461629;

const iso = (d: Date) => new Date(d).toISOString();

/** Catalog and directory administration (identities, devices, groups, applications, policies, webhooks). */
export class CatalogService {
  readonly kinds: Record<CatalogKind, AnyKind>;

  constructor(
    readonly db: Database,
    readonly clock: Clock,
    readonly urlGuard: UrlGuard = async () => undefined,
    /** checks a device-manager configuration against the service before it is stored (outside the write transaction) */
    readonly deviceManagerCheck?: DeviceManagerCheck,
  ) {
    this.kinds = {
      identities: identityKind,
      devices: deviceKind,
      approverGroups: approverGroupKind,
      policies: policyKind,
      applications: applicationKind,
      changePolicies: changePolicyKind,
      webhooks: webhookKind((url) => this.urlGuard(url)),
    };
  }

  // ---- generic operations, by kind ----

  async list(kind: CatalogKind): Promise<CatalogView[]> {
    const ops = this.kinds[kind];
    const rows = await ops.list(this.db);
    return Promise.all(rows.map((r) => this.view(this.db, ops, r)));
  }

  async get(kind: CatalogKind, ref: string): Promise<CatalogView> {
    const ops = this.kinds[kind];
    const row = await ops.find(this.db, ref);
    if (!row) throw this.notFound(ops, ref);
    return this.view(this.db, ops, row);
  }

  async upsert(kind: CatalogKind, input: unknown, actor: Actor, opts: UpsertOptions = {}): Promise<UpsertResult> {
    const ops = this.kinds[kind];
    const parsed = parseInput(catalogInputSchemas[kind], input, nouns[kind]);
    const checks = kind === 'applications' ? await checkDeviceManagers(this.db, this.deviceManagerCheck, [parsed as ApplicationInput]) : [];
    return this.write(async (tx) => {
      const { outcome, row } = await this.upsertIn(tx, ops, parsed, actor, opts);
      await recordChecks(tx, checks);
      return { outcome, item: await this.view(tx, ops, row) };
    });
  }

  async delete(kind: CatalogKind, ref: string, actor: Actor): Promise<void> {
    const ops = this.kinds[kind];
    await this.write(async (tx) => {
      const row = await ops.find(tx, ref, true);
      if (!row) throw this.notFound(ops, ref);
      await this.deleteIn(tx, ops, row, actor);
    });
  }

  // ---- typed conveniences ----

  listIdentities = () => this.list('identities');
  getIdentity = (ref: string) => this.get('identities', ref);
  upsertIdentity = (input: IdentityInput, actor: Actor, opts?: UpsertOptions) => this.upsert('identities', input, actor, opts);
  deleteIdentity = (ref: string, actor: Actor) => this.delete('identities', ref, actor);
  listDevices = () => this.list('devices');
  getDevice = (ref: string) => this.get('devices', ref);
  upsertDevice = (input: DeviceInput, actor: Actor, opts?: UpsertOptions) => this.upsert('devices', input, actor, opts);
  deleteDevice = (ref: string, actor: Actor) => this.delete('devices', ref, actor);
  listApproverGroups = () => this.list('approverGroups');
  getApproverGroup = (ref: string) => this.get('approverGroups', ref);
  upsertApproverGroup = (input: ApproverGroupInput, actor: Actor, opts?: UpsertOptions) =>
    this.upsert('approverGroups', input, actor, opts);
  deleteApproverGroup = (ref: string, actor: Actor) => this.delete('approverGroups', ref, actor);
  listPolicies = () => this.list('policies');
  getPolicy = (ref: string) => this.get('policies', ref);
  upsertPolicy = (input: PolicyInputNamed, actor: Actor, opts?: UpsertOptions) => this.upsert('policies', input, actor, opts);
  deletePolicy = (ref: string, actor: Actor) => this.delete('policies', ref, actor);
  listApplications = () => this.list('applications');
  getApplication = (ref: string) => this.get('applications', ref);
  upsertApplication = (input: ApplicationInput, actor: Actor, opts?: UpsertOptions) => this.upsert('applications', input, actor, opts);
  deleteApplication = (ref: string, actor: Actor) => this.delete('applications', ref, actor);
  listChangePolicies = () => this.list('changePolicies');
  getChangePolicy = (ref: string) => this.get('changePolicies', ref);
  upsertChangePolicy = (input: ChangePolicyInput, actor: Actor, opts?: UpsertOptions) => this.upsert('changePolicies', input, actor, opts);
  deleteChangePolicy = (ref: string, actor: Actor) => this.delete('changePolicies', ref, actor);
  listWebhooks = () => this.list('webhooks');
  getWebhook = (ref: string) => this.get('webhooks', ref);
  deleteWebhook = (ref: string, actor: Actor) => this.delete('webhooks', ref, actor);

  /** Like upsert, but a newly set secret (generated or given) is returned once, here and never again. */
  async upsertWebhook(input: WebhookInput, actor: Actor, opts?: UpsertOptions): Promise<UpsertResult & { secret?: string }> {
    const before = opts?.ref ? await this.kinds.webhooks.find(this.db, opts.ref) : await this.kinds.webhooks.find(this.db, input.name);
    const result = await this.upsert('webhooks', input, actor, opts);
    const row = await this.db.maybeOne<{ secret: string }>('SELECT secret FROM webhook_endpoints WHERE id = $1', [result.item.id]);
    const changed = row && row.secret !== (before as { secret?: string } | undefined)?.secret;
    return changed ? { ...result, secret: row.secret } : result;
  }

  /** Replaces an endpoint's signing secret; the new one is returned once. */
  async rotateWebhookSecret(ref: string, actor: Actor): Promise<{ item: CatalogView; secret: string }> {
    const ops = this.kinds.webhooks;
    return this.write(async (tx) => {
      const row = await ops.find(tx, ref, true);
      if (!row) throw this.notFound(ops, ref);
      const secret = generateWebhookSecret();
      await tx.query('UPDATE webhook_endpoints SET secret = $2, updated_at = $3 WHERE id = $1', [row.id, secret, this.clock.now()]);
      await appendAudit(tx, {
        actor,
        action: 'webhook.secret_rotated',
        subjectType: ops.subjectType,
        subjectId: row.id,
        details: { name: ops.keyOfRow(row) },
        at: this.clock.now(),
      });
      const fresh = (await ops.find(tx, row.id))!;
      return { item: await this.view(tx, ops, fresh), secret };
    });
  }

  // ---- the YAML document ----

  /**
   * Makes the catalog match the document in one transaction: objects are created or replaced only when they
   * differ, so applying the same document twice writes no rows and no audit events. Sections the document
   * leaves out are not touched; with `prune`, objects of a present section that the document does not name
   * are deleted (anything still referenced makes the whole apply fail with `conflict`).
   */
  async applyDocument(input: CatalogDocument, opts: ApplyOptions = {}): Promise<ApplySummary> {
    const doc = parseInput(catalogDocumentSchema, input, 'catalog document');
    const actor = opts.actor ?? cliActor;
    const summary = Object.fromEntries(
      catalogKinds.map((k) => [k, { created: 0, updated: 0, unchanged: 0, deleted: 0 }]),
    ) as unknown as ApplySummary;
    summary.dryRun = Boolean(opts.dryRun);
    const checks = doc.applications ? await checkDeviceManagers(this.db, this.deviceManagerCheck, doc.applications, 'applications') : [];
    try {
      await this.write(async (tx) => {
        for (const kind of catalogKinds) {
          const items = doc[kind] as unknown[] | undefined;
          if (!items) continue;
          const ops = this.kinds[kind];
          for (const [i, item] of items.entries()) {
            const { outcome } = await this.inDocument(kind, i, ops.keyOf(item), () =>
              this.upsertIn(tx, ops, item, actor, { mode: 'upsert' }),
            );
            summary[kind][outcome]++;
          }
        }
        if (opts.prune) {
          for (const kind of [...catalogKinds].reverse()) {
            const items = doc[kind] as unknown[] | undefined;
            if (!items) continue;
            const ops = this.kinds[kind];
            const named = new Set(items.map((item) => ops.normKey(ops.keyOf(item))));
            for (const row of await ops.list(tx)) {
              if (named.has(ops.normKey(ops.keyOfRow(row))) || (ops.prunable && !ops.prunable(row))) continue;
              await this.deleteIn(tx, ops, row, actor, { pruned: true });
              summary[kind].deleted++;
            }
          }
        }
        await recordChecks(tx, checks);
        if (opts.dryRun) throw new DryRunRollback();
      });
    } catch (e) {
      if (!(e instanceof DryRunRollback)) throw e;
    }
    return summary;
  }

  // ---- internals ----

  private async upsertIn(tx: Tx, ops: AnyKind, input: any, actor: Actor, opts: UpsertOptions): Promise<{ outcome: Outcome; row: BaseRow }> {
    const key = ops.keyOf(input);
    let existing = await ops.find(tx, opts.ref ?? key, true);
    if (!existing && opts.ref !== undefined) {
      if (ops.normKey(opts.ref) !== ops.normKey(key)) throw this.notFound(ops, opts.ref);
      existing = await ops.find(tx, key, true);
    }
    if (existing && opts.mode === 'create') {
      throw new AppError('conflict', `The ${ops.noun} "${ops.keyOfRow(existing)}" already exists; use PUT to replace it.`, {
        kind: ops.kind,
        key: ops.keyOfRow(existing),
      });
    }
    const desired = await ops.desired(tx, input, existing);
    const now = this.clock.now();
    if (!existing) {
      const row = await ops.insert(tx, desired, now);
      await this.audit(tx, ops, actor, 'created', row, undefined, ops.present(desired));
      return { outcome: 'created', row };
    }
    const current = await ops.current(tx, existing);
    if (canonicalJson(current) === canonicalJson(desired)) return { outcome: 'unchanged', row: existing };
    if (ops.normKey(ops.keyOfRow(existing)) !== ops.normKey(key)) {
      const clash = await ops.find(tx, key);
      if (clash && clash.id !== existing.id)
        throw new AppError('conflict', `Another ${ops.noun} is already called "${key}".`, { kind: ops.kind, key });
      // policies and requests name groups and requestors by name: a rename would leave them naming nothing
      const named = (await ops.renameBlockers?.(tx, existing)) ?? [];
      if (named.length) {
        throw new AppError(
          'conflict',
          `The ${ops.noun} "${ops.keyOfRow(existing)}" cannot be renamed while it is named elsewhere: ${named.join('; ')}. Point those at another name first.`,
          { kind: ops.kind, key: ops.keyOfRow(existing), references: named },
        );
      }
    }
    await ops.update(tx, existing, desired, now);
    await this.audit(tx, ops, actor, 'updated', existing, ops.present(current), ops.present(desired));
    return { outcome: 'updated', row: (await ops.find(tx, existing.id))! };
  }

  private async deleteIn(tx: Tx, ops: AnyKind, row: BaseRow, actor: Actor, details?: Record<string, unknown>): Promise<void> {
    const blockers = await ops.blockers(tx, row);
    if (blockers.length) {
      throw new AppError('conflict', `The ${ops.noun} "${ops.keyOfRow(row)}" is still referenced: ${blockers.join('; ')}.`, {
        kind: ops.kind,
        key: ops.keyOfRow(row),
        references: blockers,
      });
    }
    const before = ops.present(await ops.current(tx, row));
    await ops.remove(tx, row);
    await this.audit(tx, ops, actor, 'deleted', row, before, undefined, details);
  }

  private async audit(
    tx: Tx,
    ops: AnyKind,
    actor: Actor,
    verb: string,
    row: BaseRow,
    before: unknown,
    after: unknown,
    details?: Record<string, unknown>,
  ) {
    await appendAudit(tx, {
      actor,
      action: `${ops.subjectType}.${verb}`,
      subjectType: ops.subjectType,
      subjectId: row.id,
      before,
      after,
      details: { key: ops.keyOfRow(row), ...details },
      at: this.clock.now(),
    });
  }

  private async view(q: Queryable, ops: AnyKind, row: BaseRow): Promise<CatalogView> {
    const present = ops.present(await ops.current(q, row));
    const observed = ops.observed ? await ops.observed(q, row) : {};
    return { ...present, ...observed, id: row.id, createdAt: iso(row.created_at), updatedAt: iso(row.updated_at) };
  }

  private notFound(ops: AnyKind, ref: string): AppError {
    return new AppError('not_found', `No ${ops.noun} "${ref}" exists.`, { kind: ops.kind, ref });
  }

  /** Prefixes errors with where in the document they come from, so a long file's problem is easy to find. */
  private async inDocument<T>(kind: CatalogKind, index: number, key: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (!(e instanceof AppError)) throw e;
      const errors = (e.details?.errors as { field: string; message: string }[] | undefined)?.map((p) => ({
        ...p,
        field: `${kind}.${index}.${p.field}`,
      }));
      throw new AppError(e.code, `${kind}[${index}] "${key}": ${e.message}`, {
        ...e.details,
        path: [kind, index],
        ...(errors ? { errors } : {}),
      });
    }
  }

  /** One transaction; a unique or foreign-key violation that slipped past the checks still becomes a clear 409, named in the catalog's words. */
  private async write<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    try {
      return await this.db.tx(async (tx) => {
        await tx.query('SELECT pg_advisory_xact_lock($1)', [CATALOG_LOCK]);
        return fn(tx);
      });
    } catch (e) {
      throw catalogConflict(e) ?? e;
    }
  }
}
