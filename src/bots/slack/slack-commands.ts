import { protectedResourceTypes } from '../../core/change-queries.ts';
import { applicationById, devicesOfUser, policyOf, type ApplicationRow, type IdentityRow } from '../../core/directory.ts';
import type { SlackView } from './slack-api.ts';
import { pendingRequestActions, reviewQuestion, statusLabel } from './slack-approval-blocks.ts';
import { changeModal } from './slack-change-modal.ts';
import { button, context, esc, section, slackDate } from './slack-format.ts';
import { requestableApplications } from './slack-home.ts';
import { ACTION } from './slack-ids.ts';
import { infoModal, loadingModal, reasonModal, requestModal, type ReasonMeta } from './slack-request-modal.ts';
import { actorOf, errorText, logUnexpected, notLinkedText, replyPrivately, resolveUser, type SlackDeps } from './slack-replies.ts';
import type { Ack } from './slack-receiver.ts';

export interface SlashCommand {
  command: string;
  text: string;
  user_id: string;
  channel_id: string;
  trigger_id: string;
  response_url?: string;
}

export const HELP = [
  '*Signoff* — ask for software and approve requests without leaving Slack.',
  '• `/signoff request [app]` — request an application (opens a form; the app name is optional)',
  '• `/signoff my` — your requests and changes, with Cancel and Install now',
  '• `/signoff pending` — what waits on your decision',
  '• `/signoff change` — propose a change to a protected resource for another admin to approve',
  '• `/signoff revoke <request id>` — approvers: take back an approval (the app is uninstalled); asks why',
  '• `/signoff reapprove <request id>` — approvers: approve a denied or revoked request after all; asks why',
  '• `/signoff help` — this help',
  'The *Home* tab of the Signoff app shows the catalog and everything above.',
].join('\n');

/** Opens a modal while the trigger_id is fresh: if loading is slow, a placeholder opens first and is then replaced. */
export async function openModal(
  deps: SlackDeps,
  triggerId: string,
  build: Promise<SlackView>,
  budgetMs = deps.modalBudgetMs,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), budgetMs);
  });
  const guarded = build.then(
    (v) => v,
    (e: unknown) => errorModal(deps, e),
  );
  const first = await Promise.race([guarded, late]);
  clearTimeout(timer);
  if (first) {
    await deps.api.viewsOpen(triggerId, first);
    return;
  }
  const opened = await deps.api.viewsOpen(triggerId, loadingModal());
  await deps.api.viewsUpdate(opened.id, await guarded);
}

function errorModal(deps: SlackDeps, e: unknown): SlackView {
  logUnexpected(deps, e, 'building a modal');
  return infoModal('Signoff', [section(errorText(e, ''))]);
}

/** Finds what someone typed after `/signoff request`: exact name or id first, then a unique partial match. */
export function matchApplication(apps: ApplicationRow[], query: string): ApplicationRow | undefined {
  const q = query.trim().toLowerCase();
  if (!q) return undefined;
  const exact = apps.find((a) => a.name.toLowerCase() === q || a.id.toLowerCase() === q);
  if (exact) return exact;
  const partial = apps.filter((a) => a.name.toLowerCase().includes(q));
  return partial.length === 1 ? partial[0] : undefined;
}

export async function buildRequestModal(deps: SlackDeps, who: IdentityRow, opts: { appId?: string; query?: string }): Promise<SlackView> {
  const apps = await requestableApplications(deps, who);
  let app = opts.appId ? apps.find((a) => a.id === opts.appId) : opts.query ? matchApplication(apps, opts.query) : undefined;
  let notice: string | undefined;
  if (opts.query && !app) notice = `:mag: Nothing in your catalog matches “${esc(opts.query)}”. Search below.`;
  if (opts.appId && !app) notice = ':warning: That application is not available to you.';
  if (app) app = (await applicationById(deps.ctx.db, app.id)) ?? undefined;
  const devices = app?.per_device ? await devicesOfUser(deps.ctx.db, who.id) : [];
  return requestModal({ app: app ? { ...app, policy: policyOf(app) } : undefined, devices, notice });
}

export async function handleCommand(deps: SlackDeps, cmd: SlashCommand, ack: Ack): Promise<void> {
  const [sub = '', ...rest] = cmd.text.trim().split(/\s+/);
  const arg = rest.join(' ');
  const reply = async (text: string, blocks?: Record<string, unknown>[]) => {
    if (await ack({ response_type: 'ephemeral', text, ...(blocks ? { blocks } : {}) })) return;
    await replyPrivately(deps, { user: cmd.user_id, channel: cmd.channel_id, responseUrl: cmd.response_url }, text, blocks);
  };
  const verb = sub.toLowerCase();
  if (verb === '' || verb === 'help') return reply(HELP);
  if (!['request', 'my', 'mine', 'pending', 'change', 'revoke', 'reapprove'].includes(verb))
    return reply(`I don't know \`${esc(sub)}\`.\n${HELP}`);

  let who: IdentityRow | undefined;
  try {
    who = await resolveUser(deps, cmd.user_id);
  } catch (e) {
    // the database away before we know who asked: say so rather than nothing
    logUnexpected(deps, e, `command ${verb}`);
    return reply(errorText(e, cmd.user_id));
  }
  if (!who) return reply(notLinkedText(cmd.user_id));
  try {
    switch (verb) {
      case 'request':
        await ack();
        return await openModal(deps, cmd.trigger_id, buildRequestModal(deps, who, { query: arg }));
      case 'change': {
        await ack();
        return await openModal(deps, cmd.trigger_id, protectedResourceTypes(deps.ctx.db).then(changeModal));
      }
      case 'my':
      case 'mine':
        return await reply(...(await myRequests(deps, who)));
      case 'pending':
        return await reply(...(await pendingForMe(deps, who)));
      case 'revoke':
      case 'reapprove':
        return await openReversal(deps, cmd, who, verb, arg, reply, ack);
    }
  } catch (e) {
    logUnexpected(deps, e, `/signoff ${verb}`);
    await reply(errorText(e, cmd.user_id));
  }
}

/**
 * Revoke and reapprove are their own commands (a decided prompt keeps no buttons): refused here before anyone types
 * a reason, then a reason modal bound to the version it was opened on.
 */
async function openReversal(
  deps: SlackDeps,
  cmd: SlashCommand,
  who: IdentityRow,
  verb: 'revoke' | 'reapprove',
  ref: string,
  reply: (text: string) => Promise<void>,
  ack: Ack,
): Promise<void> {
  if (!ref)
    return reply(
      `Say which request: \`/signoff ${verb} <request id>\` (the id is at the bottom of its message, e.g. \`Request 1a2b3c4d\`).`,
    );
  const id = await deps.ctx.requests.resolveRef(ref);
  const r = await deps.ctx.requests.checkReversal(actorOf(who), id, verb);
  await ack();
  const meta: ReasonMeta = { kind: 'request', id: r.id, decision: verb, channel: cmd.channel_id, version: r.version };
  const what = `*${esc(r.application.name)}* for *${esc(r.requester?.displayName ?? 'a device')}*${r.device ? ` on ${esc(r.device.name)}` : ''}: ${statusLabel(r.status)}${r.decidedBy ? ` by ${esc(r.decidedBy)} ${slackDate(r.decidedAt)}` : ''}`;
  const effect =
    verb === 'revoke'
      ? r.installOrderedAt
        ? 'Revoking takes the access back and uninstalls the application.'
        : 'Revoking takes the access back.'
      : 'Reapproving grants the access and orders the install.';
  await deps.api.viewsOpen(cmd.trigger_id, reasonModal(meta, `${what}\n${effect}`, true));
}

async function myRequests(deps: SlackDeps, who: IdentityRow): Promise<[string, Record<string, unknown>[]]> {
  const [page, changes] = await Promise.all([deps.ctx.requests.list({ requesterId: who.id }, 10), deps.ctx.changes.pendingBy(who.id, 5)]);
  if (page.items.length === 0 && changes.length === 0)
    return [
      'You have no requests yet. Use `/signoff request` to ask for software.',
      [section('You have no requests yet. Use `/signoff request` to ask for software.')],
    ];
  const blocks: Record<string, unknown>[] = [];
  // changes waiting for another admin come first: the one thing here that can still be cancelled for sure
  for (const c of changes) {
    blocks.push({
      ...section(
        `*Your change* to ${esc(c.resourceType)} \`${esc(c.resourceId)}\`: ${statusLabel('pending')} (waiting for ${esc(c.approverGroups.join(', '))})`,
      ),
      accessory: button('Cancel change', ACTION.changeCancel, c.id, 'danger'),
    });
  }
  if (page.items.length) blocks.push(section('*Your requests* (newest first)'));
  for (const r of page.items) {
    const by = r.status !== 'pending' && r.decidedBy ? ` by ${esc(r.decidedBy)} ${slackDate(r.decidedAt)}` : '';
    blocks.push(
      section(
        `*${esc(r.application.name)}*${r.device ? ` on ${esc(r.device.name)}` : ''}: ${statusLabel(r.status)}${by}\nSubmitted ${slackDate(r.createdAt)}`,
      ),
    );
    const elements = [button('History', ACTION.history, r.id)];
    if (r.status === 'pending') elements.unshift(button('Cancel', ACTION.cancel, r.id, 'danger'));
    if (r.status === 'approved' && r.device) elements.unshift(button('Install now', ACTION.installNow, r.id));
    blocks.push({ type: 'actions', block_id: `my:${r.id}`, elements });
  }
  if (page.nextCursor) blocks.push(context('Older requests are in the Home tab history and the API.'));
  return [
    `You have ${page.items.length} recent request(s)${changes.length ? ` and ${changes.length} pending change(s)` : ''}.`,
    blocks.slice(0, 50),
  ];
}

async function pendingForMe(deps: SlackDeps, who: IdentityRow): Promise<[string, Record<string, unknown>[]]> {
  const [reqs, total, changes, reviews] = await Promise.all([
    deps.ctx.requests.list({ pendingForApproverId: who.id }, 10),
    deps.ctx.requests.count({ pendingForApproverId: who.id }),
    deps.ctx.changes.pendingFor(who.id),
    deps.ctx.reviews.list({ reviewerId: who.id }, 50),
  ]);
  if (!reqs.items.length && !changes.length && !reviews.items.length)
    return ['Nothing waits on you.', [section(':tada: Nothing waits on your decision.')]];
  const blocks: Record<string, unknown>[] = [section('*Waiting on your decision*')];
  for (const r of reqs.items) {
    blocks.push(
      section(
        `*${esc(r.application.name)}* for *${esc(r.requester?.displayName ?? 'a device')}*${r.device ? ` on ${esc(r.device.name)}` : ''}, submitted ${slackDate(r.createdAt)}`,
      ),
    );
    blocks.push(pendingRequestActions(`pend:${r.id}`, r));
  }
  if (total > reqs.items.length)
    blocks.push(
      context(`Showing the ${reqs.items.length} newest of ${total} requests waiting on you; decide these and the next ones show here.`),
    );
  for (const c of changes.slice(0, 5)) {
    blocks.push(section(`*Change* to ${esc(c.resourceType)} \`${esc(c.resourceId)}\` by *${esc(c.requester.label)}*`));
    blocks.push({
      type: 'actions',
      block_id: `pendc:${c.id}`,
      elements: [button('Approve', ACTION.changeApprove, c.id, 'primary'), button('Reject', ACTION.changeReject, c.id, 'danger')],
    });
  }
  if (changes.length > 5) blocks.push(context(`${changes.length - 5} more changes wait on you.`));
  for (const v of reviews.items.slice(0, 5)) {
    blocks.push(section(`*Access review*: ${reviewQuestion(v)}\nAnswer by ${slackDate(v.dueAt)}`));
    blocks.push({
      type: 'actions',
      block_id: `pendr:${v.id}`,
      elements: [button('Keep', ACTION.reviewKeep, v.id, 'primary'), button('Remove', ACTION.reviewRemove, v.id, 'danger')],
    });
  }
  if (reviews.items.length > 5) blocks.push(context(`${reviews.items.length - 5} more access reviews wait on you.`));
  return [`${total + changes.length + reviews.items.length} item(s) wait on you.`, blocks.slice(0, 50)];
}
