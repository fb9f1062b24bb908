import { InvalidArgumentError, Option, type Command } from 'commander';
import type { AppContext } from '../app-context.ts';
import type { Actor } from '../core/audit-log.ts';
import { requireIdentity } from '../core/directory.ts';
import { changeStatuses, type ChangeStatus } from '../core/request-state.ts';
import type { ChangeView, RequestView } from '../core/views.ts';
import { out, positiveInt, runCommand, table, withContext } from './run.ts';

/**
 * Decisions from a terminal, by a named person: `--as` is the directory identity deciding, with the same rights
 * as in chat, on the web or through the API (an approver of the stage, never the requester or the change's author).
 */

const version = (value: string) => {
  const n = Number(value.replace(/^(W\/)?"|"$/g, ''));
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be the version (ETag) the decision is made on, e.g. 3');
  return n;
};

async function personActor(ctx: AppContext, username: string): Promise<Actor> {
  const who = await requireIdentity(ctx.db, { username }, 'as');
  return { id: who.id, label: who.display_name, channel: 'cli' };
}

const describeRequest = (r: RequestView) =>
  `${r.application.name} for ${r.requester?.displayName ?? 'a device'}${r.device ? ` on ${r.device.name}` : ''} (request ${r.id}, version ${r.version})`;

const requestLines: Record<string, (r: RequestView) => string> = {
  recorded: (r) => `approval recorded; stage ${r.currentStage + 1} needs more approvals: ${describeRequest(r)}`,
  stage_approved: (r) => `stage approved; now waiting for stage ${r.currentStage + 1}: ${describeRequest(r)}`,
  approved: (r) => `approved: ${describeRequest(r)}`,
  denied: (r) => `denied: ${describeRequest(r)}`,
  revoked: (r) => `revoked: ${describeRequest(r)}${r.installOrderedAt ? '; the uninstall is ordered' : ''}`,
  reapproved: (r) => `reapproved: ${describeRequest(r)}`,
};

type DecisionOpts = { as: string; reason?: string; ifVersion?: number; stage?: number; json: boolean };

export function registerRequestDecisionCommands(requests: Command): void {
  const verbs = {
    approve: 'approve a pending request (its current stage) as an eligible approver',
    deny: 'deny a pending request (its current stage) as an eligible approver',
    revoke: 'revoke an approved request (uninstalls when an install was ordered); needs --reason',
    reapprove: 'approve a denied or revoked request again (installs); needs --reason',
  } as const;
  for (const [verb, description] of Object.entries(verbs) as [keyof typeof verbs, string][]) {
    const cmd = requests
      .command(`${verb} <id>`)
      .description(description)
      .requiredOption('--as <username>', 'the directory identity deciding (DOMAIN\\user or UPN)')
      .option('--reason <text>', 'why; the requester is told')
      .option('--if-version <n>', 'decide only if the request is still at this version (as If-Match)', version)
      .option('--json', 'print the request as JSON', false);
    if (verb === 'approve' || verb === 'deny')
      cmd.option('--stage <n>', 'decide only while this stage (1-3) is pending', (v) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1 || n > 3) throw new InvalidArgumentError('must be a stage number from 1 to 3');
        return n - 1;
      });
    cmd.action((id: string, opts: DecisionOpts) =>
      runCommand(() =>
        withContext(async (ctx) => {
          const actor = await personActor(ctx, opts.as);
          const o = { expectedVersion: opts.ifVersion };
          const result =
            verb === 'approve' || verb === 'deny'
              ? await ctx.requests.decide(actor, id, verb, opts.reason ?? null, { ...o, stage: opts.stage })
              : verb === 'revoke'
                ? await ctx.requests.revoke(actor, id, opts.reason, o)
                : await ctx.requests.reapprove(actor, id, opts.reason, o);
          out.line(
            opts.json
              ? JSON.stringify({ outcome: result.outcome, request: result.request }, null, 2)
              : requestLines[result.outcome]!(result.request),
          );
        }),
      ),
    );
  }
}

const describeChange = (c: ChangeView) =>
  `${c.resourceType} ${c.resourceId} by ${c.requester.label} (change ${c.id}, version ${c.version})`;

export function registerChangeCommands(program: Command): void {
  const changes = program.command('changes').description('multi-admin approval of changes to protected resources');
  changes
    .command('list')
    .description('list changes, newest first')
    .addOption(new Option('--status <status>', 'only this status').choices([...changeStatuses]))
    .option('--limit <n>', 'at most this many (1-200)', positiveInt(200), 50)
    .option('--json', 'print JSON instead of a table', false)
    .action((opts: { status?: ChangeStatus; limit: number; json: boolean }) =>
      runCommand(() =>
        withContext(async (ctx) => {
          const page = await ctx.changes.list({ status: opts.status }, opts.limit);
          if (opts.json) return void out.line(JSON.stringify(page, null, 2));
          if (page.items.length === 0) return void out.line('no changes match');
          out.line(
            table(
              ['ID', 'STATUS', 'RESOURCE', 'REQUESTED BY', 'CHANGES', 'CREATED', 'DECIDED BY'],
              page.items.map((c) => [
                c.id,
                c.status,
                `${c.resourceType} ${c.resourceId}`,
                c.requester.label,
                String(c.diff.length),
                c.createdAt,
                c.decidedBy ?? '-',
              ]),
            ),
          );
        }),
      ),
    );
  for (const verb of ['approve', 'reject'] as const) {
    changes
      .command(`${verb} <id>`)
      .description(`${verb} a pending change as a second admin (never your own)`)
      .requiredOption('--as <username>', 'the admin deciding (DOMAIN\\user or UPN)')
      .option('--notes <text>', verb === 'reject' ? 'why; the requester is told (required)' : 'approver notes')
      .option('--if-version <n>', 'decide only if the change is still at this version (as If-Match)', version)
      .option('--json', 'print the change as JSON', false)
      .action((id: string, opts: { as: string; notes?: string; ifVersion?: number; json: boolean }) =>
        runCommand(() =>
          withContext(async (ctx) => {
            const actor = await personActor(ctx, opts.as);
            const o = { expectedVersion: opts.ifVersion, notesRequired: true };
            const c =
              verb === 'approve'
                ? await ctx.changes.approve(actor, id, opts.notes ?? null, o)
                : await ctx.changes.reject(actor, id, opts.notes ?? null, o);
            out.line(opts.json ? JSON.stringify(c, null, 2) : `${c.status}: ${describeChange(c)}`);
          }),
        ),
      );
  }
}
