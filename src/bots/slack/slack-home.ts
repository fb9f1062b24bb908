import { requestableApplications as requestableIn, type ApplicationRow, type IdentityRow } from '../../core/directory.ts';
import { historyOf } from '../../core/request-queries.ts';
import type { ReviewView } from '../../core/review-queries.ts';
import type { ChangeView, HistoryEntry, RequestView } from '../../core/views.ts';
import type { Blocks, SlackView } from './slack-api.ts';
import { pendingRequestActions, reviewQuestion, statusLabel } from './slack-approval-blocks.ts';
import { button, clip, context, divider, esc, header, section, slackDate } from './slack-format.ts';
import { ACTION } from './slack-ids.ts';
import { notLinkedText, type SlackDeps } from './slack-replies.ts';

/** What the Home tab shows one person, loaded by loadHome. */
export interface HomeInput {
  identity: IdentityRow;
  catalog: ApplicationRow[];
  mine: { request: RequestView; history: HistoryEntry[] }[];
  waiting: RequestView[];
  /** all requests waiting on this person, of which `waiting` shows the newest */
  waitingTotal?: number;
  changesWaiting: ChangeView[];
  myChanges: ChangeView[];
  /** open access reviews this person may answer */
  reviewsWaiting: ReviewView[];
}

const LIMITS = { catalog: 20, mine: 10, waiting: 10, changes: 5, reviews: 5 };

const describeHistory = (h: HistoryEntry[]) =>
  h
    .filter((e) => e.action !== 'message.sent')
    .slice(-3)
    .map((e) => `${esc(e.action.replace(/^request\./, '').replace('decision.', ''))} by ${esc(e.actor)} ${slackDate(e.at)}`)
    .join(' · ');

/** App Home: what I can request, what I asked for, and (for approvers) what waits on me. */
export function homeView(input: HomeInput): SlackView {
  const blocks: Blocks = [
    header('Signoff'),
    {
      ...section(`Hi ${esc(input.identity.display_name)}. Ask for software here; approvers decide in Slack and it is installed for you.`),
      accessory: button('Request software', ACTION.openRequestModal, 'open', 'primary'),
    },
    divider(),
  ];

  blocks.push(header('Catalog'));
  if (input.catalog.length === 0) blocks.push(section('_Nothing in the catalog is available to you yet._'));
  for (const app of input.catalog.slice(0, LIMITS.catalog)) {
    const extra = [
      app.version ? `v${esc(app.version)}` : '',
      app.per_device ? 'per device' : '',
      app.description ? esc(clip(app.description, 200)) : '',
    ]
      .filter(Boolean)
      .join(' · ');
    blocks.push({ ...section(`*${esc(app.name)}*${extra ? `\n${extra}` : ''}`), accessory: button('Request', ACTION.requestApp, app.id) });
  }
  if (input.catalog.length > LIMITS.catalog)
    blocks.push(context(`${input.catalog.length - LIMITS.catalog} more: use *Request software* and search.`));

  blocks.push(divider(), header('Your requests'));
  if (input.mine.length === 0) blocks.push(section('_You have not requested anything yet._'));
  for (const { request: r, history } of input.mine.slice(0, LIMITS.mine)) {
    const who =
      r.decidedBy && r.status !== 'pending'
        ? ` by ${esc(r.decidedBy)} ${slackDate(r.decidedAt)}`
        : r.status === 'pending'
          ? ` (stage ${r.currentStage + 1} of ${r.stageCount})`
          : '';
    blocks.push(
      section(
        `*${esc(r.application.name)}*${r.device ? ` on ${esc(r.device.name)}` : ''}: ${statusLabel(r.status)}${who}\nSubmitted ${slackDate(r.createdAt)}`,
      ),
    );
    const hist = describeHistory(history);
    if (hist) blocks.push(context(hist));
    const elements = [button('History', ACTION.history, r.id)];
    if (r.status === 'pending') elements.unshift(button('Cancel', ACTION.cancel, r.id, 'danger'));
    if (r.status === 'approved' && r.device) elements.unshift(button('Install now', ACTION.installNow, r.id));
    blocks.push({ type: 'actions', block_id: `home_mine:${r.id}`, elements });
  }
  for (const c of input.myChanges.slice(0, LIMITS.changes)) {
    blocks.push({
      ...section(
        `*Change* ${esc(c.resourceType)} \`${esc(c.resourceId)}\`: ${statusLabel(c.status)} (waiting for ${esc(c.approverGroups.join(', '))})`,
      ),
      accessory: button('Cancel change', ACTION.changeCancel, c.id, 'danger'),
    });
  }

  if (input.waiting.length || input.changesWaiting.length || input.reviewsWaiting.length) {
    blocks.push(divider(), header('Waiting on you'));
    for (const r of input.waiting.slice(0, LIMITS.waiting)) {
      blocks.push(
        section(
          `*${esc(r.application.name)}* for *${esc(r.requester?.displayName ?? 'a device')}*${r.device ? ` on ${esc(r.device.name)}` : ''}, stage ${r.currentStage + 1} of ${r.stageCount}${r.deadlineAt ? `, decide by ${slackDate(r.deadlineAt)}` : ''}${r.justification ? `\n>${esc(clip(r.justification, 300))}` : ''}`,
        ),
      );
      blocks.push(pendingRequestActions(`home_wait:${r.id}`, r));
    }
    const waitingTotal = input.waitingTotal ?? input.waiting.length;
    if (waitingTotal > LIMITS.waiting)
      blocks.push(
        context(`Showing the ${LIMITS.waiting} newest of ${waitingTotal} requests waiting on you; \`/signoff pending\` lists them too.`),
      );
    for (const c of input.changesWaiting.slice(0, LIMITS.changes)) {
      blocks.push(
        section(
          `*Change* to ${esc(c.resourceType)} \`${esc(c.resourceId)}\` by *${esc(c.requester.label)}* (${c.diff.length} change${c.diff.length === 1 ? '' : 's'})\n>${esc(clip(c.justification, 300))}`,
        ),
      );
      blocks.push({
        type: 'actions',
        block_id: `home_chg:${c.id}`,
        elements: [button('Approve', ACTION.changeApprove, c.id, 'primary'), button('Reject', ACTION.changeReject, c.id, 'danger')],
      });
    }
    for (const v of input.reviewsWaiting.slice(0, LIMITS.reviews)) {
      blocks.push(section(`*Access review*: ${reviewQuestion(v)}\nAnswer by ${slackDate(v.dueAt)}`));
      blocks.push({
        type: 'actions',
        block_id: `home_rev:${v.id}`,
        elements: [button('Keep', ACTION.reviewKeep, v.id, 'primary'), button('Remove', ACTION.reviewRemove, v.id, 'danger')],
      });
    }
    if (input.reviewsWaiting.length > LIMITS.reviews)
      blocks.push(context(`${input.reviewsWaiting.length - LIMITS.reviews} more access reviews wait on you.`));
  }
  blocks.push(context('Type `/signoff help` anywhere for commands.'));
  return { type: 'home', blocks: blocks.slice(0, 100) };
}

export const unlinkedHomeView = (slackUserId: string): SlackView => ({
  type: 'home',
  blocks: [header('Signoff'), section(notLinkedText(slackUserId))],
});

/** The applications this person may request: visible (or already approved) and allowed by the policy's requestors. */
export const requestableApplications = (deps: SlackDeps, who: IdentityRow): Promise<ApplicationRow[]> => requestableIn(deps.ctx.db, who);

export async function loadHome(deps: SlackDeps, who: IdentityRow): Promise<HomeInput> {
  const { ctx } = deps;
  const [catalog, mine, waiting, waitingTotal, changesWaiting, myChanges, reviews] = await Promise.all([
    requestableApplications(deps, who),
    ctx.requests.list({ requesterId: who.id }, LIMITS.mine),
    ctx.requests.list({ pendingForApproverId: who.id }, LIMITS.waiting),
    ctx.requests.count({ pendingForApproverId: who.id }),
    ctx.changes.pendingFor(who.id),
    ctx.changes.pendingBy(who.id, LIMITS.changes),
    ctx.reviews.list({ reviewerId: who.id }, 50),
  ]);
  const withHistory = await Promise.all(
    mine.items.map(async (request) => ({ request, history: await historyOf(ctx.db, 'request', request.id) })),
  );
  return {
    identity: who,
    catalog,
    mine: withHistory,
    waiting: waiting.items,
    waitingTotal,
    changesWaiting,
    reviewsWaiting: reviews.items,
    myChanges,
  };
}

export async function publishHome(deps: SlackDeps, slackUserId: string, who: IdentityRow | undefined): Promise<void> {
  const view = who ? homeView(await loadHome(deps, who)) : unlinkedHomeView(slackUserId);
  await deps.api.viewsPublish(slackUserId, view);
}
