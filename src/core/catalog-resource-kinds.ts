import { randomBytes } from 'node:crypto';
import type { Queryable, Tx } from '../db/database.ts';
import { findByIdOrKey, plural, referenceError, requireGroups, resolveIdentities, type BaseRow, type KindOps } from './catalog-kind.ts';
import type { ApplicationInput, ChangePolicyInput, PolicyInputNamed, WebhookInput } from './catalog-schemas.ts';
import { configMgrModelName, type DeviceManagerConfig } from './device-manager.ts';
import { deviceManagerStatusOf } from '../db/device-manager-status.ts';
import { AppError } from './errors.ts';
import { policyDefinitionSchema, type InstallWindow, type PolicyDefinition } from './policy-schema.ts';
import type { UrlGuard } from './ports.ts';
import { foldAttemptsOfEndpoint } from '../db/attempt-totals.ts';

/** Policies, applications, change policies and webhook endpoints. */

/** Inline policies are stored as `app:<application id>`, a prefix no shared policy name may use. */
const INLINE_PREFIX = 'app:';
export const inlinePolicyName = (applicationId: string) => `${INLINE_PREFIX}${applicationId}`;
export const isInlinePolicyName = (name: string) => name.startsWith(INLINE_PREFIX);

/** Stored definitions are re-parsed so a default added later does not make every policy look changed. */
function normaliseDefinition(raw: unknown): PolicyDefinition {
  const parsed = policyDefinitionSchema.safeParse(raw);
  return parsed.success ? parsed.data : (raw as PolicyDefinition);
}

/** Every group and identity a policy names must exist, so a request can never reach a stage nobody can decide. */
async function checkPolicyReferences(q: Queryable, def: PolicyDefinition, prefix: string): Promise<void> {
  for (const [i, stage] of def.stages.entries()) await requireGroups(q, stage.approvers, `${prefix}stages.${i}.approvers`);
  await requireGroups(q, def.escalateTo ?? [], `${prefix}escalateTo`);
  await requireGroups(q, def.reviewers ?? [], `${prefix}reviewers`);
  await requireGroups(q, def.requestors.groups, `${prefix}requestors.groups`);
  await resolveIdentities(q, def.requestors.identities, `${prefix}requestors.identities`);
}

interface PolicyDbRow extends BaseRow {
  name: string;
  definition: unknown;
}
interface PolicyState {
  name: string;
  definition: PolicyDefinition;
}

export const policyKind: KindOps<PolicyInputNamed, PolicyDbRow, PolicyState> = {
  kind: 'policies',
  subjectType: 'policy',
  noun: 'policy',
  keyOf: (i) => i.name,
  keyOfRow: (r) => r.name,
  normKey: (k) => k,
  find: (q, ref, lock = false) => findByIdOrKey(q, 'policies', 'name = $1', ref, lock),
  list: (q) => q.query('SELECT * FROM policies ORDER BY name'),
  desired: async (tx, input, existing) => {
    if (isInlinePolicyName(input.name) || (existing && isInlinePolicyName(existing.name))) {
      throw referenceError('name', 'names starting with "app:" are reserved for inline application policies; edit the application instead');
    }
    const { name, ...rest } = input;
    const definition = policyDefinitionSchema.parse(rest);
    await checkPolicyReferences(tx, definition, '');
    return { name, definition };
  },
  current: async (_q, r) => ({ name: r.name, definition: normaliseDefinition(r.definition) }),
  insert: (tx, d, now) =>
    tx.one('INSERT INTO policies (name, definition, created_at, updated_at) VALUES ($1,$2,$3,$3) RETURNING *', [
      d.name,
      JSON.stringify(d.definition),
      now,
    ]),
  update: async (tx, r, d, now) => {
    await tx.query('UPDATE policies SET name=$2, definition=$3, updated_at=$4 WHERE id=$1', [
      r.id,
      d.name,
      JSON.stringify(d.definition),
      now,
    ]);
  },
  blockers: async (tx, r) => {
    const apps = await tx.query<{ name: string }>('SELECT name FROM applications WHERE policy_id = $1 ORDER BY name', [r.id]);
    return apps.length ? [`the policy of application ${apps.map((a) => `"${a.name}"`).join(', ')}`] : [];
  },
  remove: async (tx, r) => {
    await tx.query('DELETE FROM policies WHERE id = $1', [r.id]);
  },
  present: (d) => ({ name: d.name, inline: isInlinePolicyName(d.name), ...d.definition }),
  prunable: (r) => !isInlinePolicyName(r.name),
};

interface ApplicationDbRow extends BaseRow {
  name: string;
  description: string | null;
  version: string | null;
  visibility: 'visible' | 'hidden-until-approved';
  per_device: boolean;
  install_window: InstallWindow | null;
  policy_id: string | null;
  device_manager: DeviceManagerConfig | null;
}
interface ApplicationState {
  id: string;
  name: string;
  description: string | null;
  version: string | null;
  visibility: 'visible' | 'hidden-until-approved';
  perDevice: boolean;
  installWindow: InstallWindow | null;
  /** a shared policy by name, or null */
  policyName: string | null;
  /** the inline policy, or null */
  policy: PolicyDefinition | null;
  deviceManager: DeviceManagerConfig | null;
}

export const applicationKind: KindOps<ApplicationInput, ApplicationDbRow, ApplicationState> = {
  kind: 'applications',
  subjectType: 'application',
  noun: 'application',
  keyOf: (i) => i.id,
  keyOfRow: (r) => r.id,
  normKey: (k) => k,
  find: (q, ref, lock = false) => q.maybeOne(`SELECT * FROM applications WHERE id = $1${lock ? ' FOR UPDATE' : ''}`, [ref]),
  list: (q) => q.query('SELECT * FROM applications ORDER BY lower(name)'),
  desired: async (tx, i, existing) => {
    if (existing && existing.id !== i.id) {
      throw referenceError('id', `an application's id cannot change (it is "${existing.id}")`);
    }
    if (i.policyName) {
      const p = await tx.maybeOne<{ name: string }>('SELECT name FROM policies WHERE name = $1', [i.policyName]);
      if (!p || isInlinePolicyName(p.name))
        throw referenceError('policyName', `no policy "${i.policyName}" exists; add it under policies first`);
    }
    if (i.policy) await checkPolicyReferences(tx, i.policy, 'policy.');
    if (i.deviceManager?.kind === 'configmgr' && !configMgrModelName(i.deviceManager, i.id)) {
      throw referenceError(
        'deviceManager.modelName',
        `the application id "${i.id}" is not a Configuration Manager model name (ScopeId_<GUID>/Application_<GUID>); give modelName`,
      );
    }
    return {
      id: i.id,
      name: i.name,
      description: i.description ?? null,
      version: i.version ?? null,
      visibility: i.visibility,
      perDevice: i.perDevice,
      installWindow: i.installWindow ?? null,
      policyName: i.policyName ?? null,
      policy: i.policy ?? null,
      deviceManager: i.deviceManager ?? null,
    };
  },
  current: async (q, r) => {
    const p = r.policy_id
      ? await q.maybeOne<{ name: string; definition: unknown }>('SELECT name, definition FROM policies WHERE id = $1', [r.policy_id])
      : undefined;
    const inline = p !== undefined && p.name === inlinePolicyName(r.id);
    return {
      id: r.id,
      name: r.name,
      description: r.description,
      version: r.version,
      visibility: r.visibility,
      perDevice: r.per_device,
      installWindow: r.install_window,
      policyName: p && !inline ? p.name : null,
      policy: p && inline ? normaliseDefinition(p.definition) : null,
      deviceManager: r.device_manager ?? null,
    };
  },
  insert: async (tx, d, now) => {
    const policyId = await policyIdFor(tx, d, now);
    return tx.one(
      `INSERT INTO applications (id, name, description, version, visibility, per_device, install_window, policy_id, device_manager, created_at, updated_at)
       VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$10,$9,$9) RETURNING *`,
      [d.id, ...applicationValues(d, policyId, now)],
    );
  },
  update: async (tx, r, d, now) => {
    const policyId = await policyIdFor(tx, d, now);
    await tx.query(
      `UPDATE applications SET name=$2, description=$3, version=$4, visibility=$5, per_device=$6, install_window=$7, policy_id=$8, updated_at=$9,
              device_manager=$10 WHERE id=$1`,
      [r.id, ...applicationValues(d, policyId, now)],
    );
    // an inline policy the application no longer uses would otherwise linger under its id
    if (!d.policy)
      await tx.query('DELETE FROM policies WHERE name = $1 AND NOT EXISTS (SELECT 1 FROM applications WHERE policy_id = policies.id)', [
        inlinePolicyName(r.id),
      ]);
  },
  blockers: async (tx, r) => {
    const { n } = await tx.one<{ n: number }>('SELECT count(*)::int AS n FROM requests WHERE application_id = $1', [r.id]);
    return n > 0 ? [`${plural(n, 'request')} for it`] : [];
  },
  remove: async (tx, r) => {
    await tx.query('DELETE FROM applications WHERE id = $1', [r.id]);
    await tx.query('DELETE FROM policies WHERE name = $1', [inlinePolicyName(r.id)]);
  },
  present: (d) => ({ ...d, requestable: d.policy !== null || d.policyName !== null }),
  observed: async (q, r) => {
    if (!r.device_manager) return { deviceManagerStatus: null };
    const status = await deviceManagerStatusOf(q, r.id);
    return {
      deviceManagerStatus: status ?? {
        kind: r.device_manager.kind,
        state: 'unchecked',
        message: 'not checked yet',
        checkedAt: null,
        lastSuccessAt: null,
        lastFailureAt: null,
      },
    };
  },
};

/** An application's columns after its id, in the order the INSERT and the UPDATE both bind them ($2..$10). */
const applicationValues = (d: ApplicationState, policyId: string | null, now: Date) => [
  d.name,
  d.description,
  d.version,
  d.visibility,
  d.perDevice,
  d.installWindow ? JSON.stringify(d.installWindow) : null,
  policyId,
  now,
  d.deviceManager ? JSON.stringify(d.deviceManager) : null,
];

async function policyIdFor(tx: Tx, d: ApplicationState, now: Date): Promise<string | null> {
  if (d.policyName) return (await tx.one<{ id: string }>('SELECT id FROM policies WHERE name = $1', [d.policyName])).id;
  if (!d.policy) return null;
  const row = await tx.one<{ id: string }>(
    `INSERT INTO policies (name, definition, created_at, updated_at) VALUES ($1,$2,$3,$3)
     ON CONFLICT (name) DO UPDATE SET definition = EXCLUDED.definition, updated_at = EXCLUDED.updated_at RETURNING id`,
    [inlinePolicyName(d.id), JSON.stringify(d.policy), now],
  );
  return row.id;
}

interface ChangePolicyDbRow extends BaseRow {
  name: string;
  resource_types: string[];
  approvers: string[];
}
type ChangePolicyState = ChangePolicyInput;

export const changePolicyKind: KindOps<ChangePolicyInput, ChangePolicyDbRow, ChangePolicyState> = {
  kind: 'changePolicies',
  subjectType: 'change_policy',
  noun: 'change policy',
  keyOf: (i) => i.name,
  keyOfRow: (r) => r.name,
  normKey: (k) => k,
  find: (q, ref, lock = false) => findByIdOrKey(q, 'change_policies', 'name = $1', ref, lock),
  list: (q) => q.query('SELECT * FROM change_policies ORDER BY name'),
  desired: async (tx, i) => {
    await requireGroups(tx, i.approvers, 'approvers');
    return { name: i.name, resourceTypes: [...new Set(i.resourceTypes)], approvers: [...new Set(i.approvers)] };
  },
  current: async (_q, r) => ({ name: r.name, resourceTypes: r.resource_types, approvers: r.approvers }),
  insert: (tx, d, now) =>
    tx.one('INSERT INTO change_policies (name, resource_types, approvers, created_at, updated_at) VALUES ($1,$2,$3,$4,$4) RETURNING *', [
      d.name,
      d.resourceTypes,
      d.approvers,
      now,
    ]),
  update: async (tx, r, d, now) => {
    await tx.query('UPDATE change_policies SET name=$2, resource_types=$3, approvers=$4, updated_at=$5 WHERE id=$1', [
      r.id,
      d.name,
      d.resourceTypes,
      d.approvers,
      now,
    ]);
  },
  blockers: async (tx, r) => {
    const { n } = await tx.one<{ n: number }>('SELECT count(*)::int AS n FROM changes WHERE change_policy_id = $1', [r.id]);
    return n > 0 ? [`${plural(n, 'change')} decided under it`] : [];
  },
  remove: async (tx, r) => {
    await tx.query('DELETE FROM change_policies WHERE id = $1', [r.id]);
  },
  present: (d) => ({ ...d }),
};

interface WebhookDbRow extends BaseRow {
  name: string;
  url: string;
  secret: string;
  events: string[];
  enabled: boolean;
  disabled_reason: string | null;
}
interface WebhookState {
  name: string;
  url: string;
  secret: string;
  events: string[];
  enabled: boolean;
  disabledReason: string | null;
}

export const generateWebhookSecret = () => `whsec_${randomBytes(32).toString('base64')}`;
/** Enough to tell secrets apart in a list, never enough to sign with. */
export const secretHint = (secret: string) => `whsec_…${secret.slice(-4)}`;

export function webhookKind(urlGuard: UrlGuard): KindOps<WebhookInput, WebhookDbRow, WebhookState> {
  return {
    kind: 'webhooks',
    subjectType: 'webhook',
    noun: 'webhook',
    keyOf: (i) => i.name,
    keyOfRow: (r) => r.name,
    normKey: (k) => k,
    find: (q, ref, lock = false) => findByIdOrKey(q, 'webhook_endpoints', 'name = $1', ref, lock),
    list: (q) => q.query('SELECT * FROM webhook_endpoints ORDER BY name'),
    desired: async (_tx, i, existing) => {
      if (!existing || existing.url !== i.url) {
        try {
          await urlGuard(i.url);
        } catch (e) {
          if (e instanceof AppError) throw e;
          const message = e instanceof Error ? e.message : String(e);
          throw new AppError('unsafe_url', `url: ${message}`, { errors: [{ field: 'url', message }] });
        }
      }
      const enabled = i.enabled ?? existing?.enabled ?? true;
      return {
        name: i.name,
        url: i.url,
        secret: i.secret ?? existing?.secret ?? generateWebhookSecret(),
        events: i.events,
        enabled,
        // re-enabling clears why the delivery engine disabled it (e.g. a 410)
        disabledReason: enabled ? null : (existing?.disabled_reason ?? 'disabled by an administrator'),
      };
    },
    current: async (_q, r) => ({
      name: r.name,
      url: r.url,
      secret: r.secret,
      events: r.events,
      enabled: r.enabled,
      disabledReason: r.enabled ? null : r.disabled_reason,
    }),
    insert: (tx, d, now) =>
      tx.one(
        `INSERT INTO webhook_endpoints (name, url, secret, events, enabled, disabled_reason, created_at, updated_at)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$7) RETURNING *`,
        [d.name, d.url, d.secret, d.events, d.enabled, d.disabledReason, now],
      ),
    update: async (tx, r, d, now) => {
      await tx.query(
        'UPDATE webhook_endpoints SET name=$2, url=$3, secret=$4, events=$5, enabled=$6, disabled_reason=$7, updated_at=$8 WHERE id=$1',
        [r.id, d.name, d.url, d.secret, d.events, d.enabled, d.disabledReason, now],
      );
    },
    // deliveries still being attempted would vanish mid-retry; finished ones go with the endpoint
    blockers: async (tx, r) => {
      const pending = await tx.one<{ n: string }>(
        `SELECT count(*) AS n FROM webhook_deliveries WHERE endpoint_id = $1 AND status = 'pending'`,
        [r.id],
      );
      return Number(pending.n) > 0
        ? [`${pending.n} deliveries still being attempted (disable the endpoint, or wait for them to finish)`]
        : [];
    },
    remove: async (tx, r) => {
      // the attempt counters keep what this endpoint's deleted attempts counted
      await foldAttemptsOfEndpoint(tx, r.id);
      await tx.query('DELETE FROM webhook_endpoints WHERE id = $1', [r.id]);
    },
    present: ({ secret, ...rest }) => ({ ...rest, secretHint: secretHint(secret) }),
  };
}
