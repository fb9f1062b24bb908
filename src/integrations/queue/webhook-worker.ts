import { DelayedError, Worker, type Job, type WorkerOptions as BullWorkerOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import type { AppContext } from '../../app-context.ts';
import { attemptDelivery, endpointOf, type DeliveryRuntime, type DeliveryStep } from '../webhooks/delivery-processor.ts';
import { gateFor, gateWaitMs, type AttemptHealth, type EndpointGate, type GateResult } from '../webhooks/endpoint-gate.ts';
import { GroupCommit } from '../../db/group-commit.ts';
import { reportRedisError } from './connection.ts';
import { Permits } from './permits.ts';
import { onWaitingGrid, queueNames, type AppQueues, type DeliveryJob } from './queues.ts';

export interface WebhookWorker {
  worker: Worker<DeliveryJob>;
  gate: EndpointGate;
  /**
   * The endpoint's deliveries wait in lines now (its gate sent deliveries away lately, or a line of it is not long
   * past due): the relay puts its new ones straight into a line (enqueueBatch).
   */
  waiting(endpointId: string): boolean;
  /** resolves once the endpoint slots given back by finished attempts have reached Redis */
  released(): Promise<void>;
  /** the gate's connection: closed after the worker */
  close(): Promise<void>;
}

/** Deliveries a process carries between claim and outcome, per send slot. */
const ATTEMPTS_PER_SEND = 8;

// how long after its latest line came due an endpoint still counts as waiting in lines (the line runs, and goes
// back as a new line if the endpoint still takes none)
const LINE_GRACE_MS = 1000;
// the first line to go back waits a moment for the others due with it (onWaitingGrid)
const WAITING_WINDOW = { maxWaitMs: 5, expectMore: () => true };

interface Waiting {
  ids: string[];
  endpointId: string;
  gateWaits: number;
  at: number;
}

/** What became of one delivery of a job: finished for now, or to be tried again at `at`. */
type Outcome = { done: 'succeeded' | 'failed' | 'skipped' } | { at: number; gateWaits: number };

/**
 * The webhook worker. A job carries one delivery, or a bundle of one endpoint's fresh deliveries (added by the
 * relay): a bundle's deliveries are claimed together and sent side by side, so a backlog costs one queue round trip
 * per bundle instead of one per delivery. A retry goes back to the queue as a job of its own under its delivery's
 * id; what an endpoint's gate sends away waits in that endpoint's line (a bundle job named by its deliveries and how
 * often they have waited), with the endpoint's other waiting deliveries.
 */
export function startWebhookWorker(
  ctx: AppContext,
  queues: AppQueues,
  rt: DeliveryRuntime,
  common: Pick<BullWorkerOptions, 'prefix' | 'lockDuration' | 'stalledInterval' | 'maxStalledCount' | 'autorun'> & { connection: Redis },
  opts: { concurrency: number },
): WebhookWorker {
  const log = ctx.logger.child({ component: 'webhook-worker' });
  // gate calls made in the same tick (the releases of a record batch's jobs) go to Redis in one write
  const gateRedis = common.connection.duplicate({ enableAutoPipelining: true, connectionName: `${common.prefix}:worker-gate` });
  gateRedis.on('error', (e: Error) => reportRedisError(log, e));
  const gate = gateFor(ctx, gateRedis, common.prefix!);
  const releasing = new Set<Promise<void>>();
  // `concurrency` requests are sent at once. Twice as many jobs run, so the next deliveries are claimed while
  // these are sent, and a send waiting long for a slow endpoint gives its slot up (the job keeps running), so such
  // an endpoint's requests in flight cannot starve the others
  const sendSlots = new Permits(opts.concurrency);
  // deliveries between their claim and their outcome, whichever job carries them: a bundle's deliveries beyond these
  // wait here unclaimed, as separate jobs would wait in the queue, instead of all being claimed and then sent away by
  // a busy endpoint's gate to wait ever longer. Several per send: the claims and records of a moment then share
  // their statements, and a drain keeps the event loop busy instead of waiting for Postgres (an 8000-delivery drain:
  // 1031–1114/s with two per send, 1329–1610/s with four, 1676–1755/s with eight)
  const attemptSlots = new Permits(opts.concurrency * ATTEMPTS_PER_SEND);
  // per endpoint, when its latest line comes due: a line going back is added again before this is long past
  const linedUntil = new Map<string, number>();
  // the deliveries gates sent back while one add is on its way to Redis join the next: per endpoint, one job
  const waitingLines = new GroupCommit<Waiting, void>(async (lines) => {
    const byEndpoint = new Map<string, Waiting>();
    for (const w of lines) {
      const known = byEndpoint.get(w.endpointId);
      if (!known) byEndpoint.set(w.endpointId, { ...w, ids: [...w.ids] });
      else {
        known.ids.push(...w.ids);
        known.gateWaits = Math.max(known.gateWaits, w.gateWaits);
        known.at = Math.min(known.at, w.at);
      }
    }
    const adds: Promise<void>[] = [];
    for (const w of byEndpoint.values()) {
      linedUntil.set(w.endpointId, Math.max(linedUntil.get(w.endpointId) ?? 0, w.at));
      adds.push(queues.waitingLine(w.ids, w.endpointId, w.gateWaits, w.at));
    }
    await Promise.all(adds);
    return lines.map(() => undefined);
  }, WAITING_WINDOW);

  // per endpoint not known to answer quickly, its deliveries between their claim and their admission by its gate:
  // a few slots' worth, so a new endpoint not yet known to be slow cannot fill the attempt slots with deliveries
  // waiting at its gate (they held all of them for the 200 ms it takes to tell, and the other endpoints' deliveries
  // went unclaimed). A fast endpoint's are not held back: a backlog drains faster with more claims in a batch
  const admissions = new Map<string, { turns: Permits; users: number }>();
  const turnsPerEndpoint = gate.settings.concurrency * 2;

  async function deliverOne(deliveryId: string, endpointId: string, waits: number, admitted?: () => void): Promise<Outcome> {
    let a = admissions.get(endpointId);
    if (!a) admissions.set(endpointId, (a = { turns: new Permits(turnsPerEndpoint), users: 0 }));
    a.users++;
    let slot: { giveBack(): void } | undefined;
    const turn = gate.answersFast(endpointId) ? undefined : await a.turns.hold();
    try {
      slot = await attemptSlots.hold();
      return await attemptOne(deliveryId, endpointId, waits, () => {
        turn?.giveBack();
        admitted?.();
      });
    } finally {
      turn?.giveBack();
      slot?.giveBack();
      if (--a.users === 0) admissions.delete(endpointId);
    }
  }

  async function attemptOne(deliveryId: string, endpointId: string, waits: number, onAdmitted?: () => void): Promise<Outcome> {
    // a slot of this endpoint, or back to the queue without spending an attempt: a slow or failing endpoint holds
    // at most its own slots, never every worker slot
    const gated = (refused: Extract<GateResult, { ok: false }>): Outcome => ({
      at: Date.now() + gateWaitMs(refused, waits, gate.settings),
      gateWaits: waits + 1,
    });
    // an endpoint that let the last attempts through is asked once the delivery is claimed, just before the send;
    // one that sent deliveries away lately, or this one before, is asked first, so its queue costs no claims given back
    const askFirst = waits > 0 || gate.refusedLately(endpointId);
    let admitted = false;
    const admit = async () => {
      const r = await gate.acquireOrWait(endpointId, deliveryId);
      admitted = r.ok;
      if (r.ok) onAdmitted?.();
      return r;
    };
    if (askFirst) {
      const r = await admit();
      if (!r.ok) return gated(r);
    }
    // the slot goes back as soon as the endpoint has answered (the record is Postgres' business, not the
    // endpoint's); not awaited: later calls on this connection queue behind it, and close() waits for it
    const release = (health: AttemptHealth, latencyMs: number | null) => {
      if (!admitted) return;
      admitted = false;
      const done = gate
        .release(endpointId, deliveryId, health, latencyMs)
        .catch((e) => log.warn({ err: e, endpointId }, 'could not release the endpoint slot; its lease frees it'))
        .finally(() => releasing.delete(done));
      releasing.add(done);
    };
    let step: DeliveryStep;
    try {
      step = await attemptDelivery(rt, deliveryId, {
        answered: release,
        recordSuccessLater: true,
        admit: askFirst ? undefined : admit,
        sendSlots,
      });
    } finally {
      release('neutral', null);
    }
    if (step.outcome === 'gated') return gated(step.gate);
    // Postgres holds the attempt count and next_attempt_at; the gate's pauses start again
    if (step.outcome === 'retry') return { at: step.retryAt, gateWaits: 0 };
    return { done: step.outcome };
  }

  /**
   * Sends a retry's job back to the delayed set until `at` (what a gate sends away waits in a line instead). When
   * Redis lost the job while it ran (a wipe, a restart without persistence), a new one with the same id is added
   * instead, so the retry does not wait for the reconciler.
   */
  async function delay(job: Job<DeliveryJob>, token: string | undefined, endpointId: string, at: number) {
    const { deliveryId } = job.data;
    // a retry's pauses start again: a wait count left from an older job goes
    const same = job.data.endpointId === endpointId && !job.data.gateWaits;
    try {
      if (!same) await job.updateData({ deliveryId, endpointId });
      await job.moveToDelayed(at, token);
    } catch (e) {
      await queues.delivery(deliveryId, at - Date.now(), endpointId);
      throw e;
    }
    throw new DelayedError();
  }

  async function deliver(job: Job<DeliveryJob>, token: string | undefined) {
    const endpointId = job.data.endpointId ?? (await endpointOf(ctx, job.data.deliveryId));
    if (!endpointId) return 'skipped';
    if (job.data.more) return deliverBundle([job.data.deliveryId, ...job.data.more], endpointId, job.data.gateWaits ?? 0);
    const outcome = await deliverOne(job.data.deliveryId, endpointId, job.data.gateWaits ?? 0);
    if (!('at' in outcome)) return outcome.done;
    // sent away by its endpoint's gate: it waits in the endpoint's line with the others, not as a job of its own
    // (one event at a time, as approvals come, each delivery to a slow endpoint bounced through Redis on its own)
    if (outcome.gateWaits) {
      await waitingLines.submit({ ids: [job.data.deliveryId], endpointId, gateWaits: outcome.gateWaits, at: onWaitingGrid(outcome.at) });
      return 'waiting';
    }
    return delay(job, token, endpointId, outcome.at);
  }

  /**
   * A bundle's job only ever finishes: what must wait goes back to the queue as new jobs. A retry gets a job of its
   * own, under its delivery's id; the deliveries its endpoint's gate sent away go back together with those of the
   * endpoint's other bundles going back at the same moment, as one line (a bundle job named also by its wait count):
   * a slow endpoint's thousands of queued deliveries would otherwise bounce through Redis a few at a time, costing
   * the other endpoints' deliveries their worker time. (Were the bundle's job moved or its data changed
   * instead, a run that lost its job in a Redis wipe could change the bundle re-added under the same id, dropping its
   * other deliveries.) Every attempt is seen to its end before the job settles; should one have failed, or adding a
   * job, the bundle runs again, and its claims find the others done, leased or not yet due.
   */
  async function deliverBundle(ids: string[], endpointId: string, waits: number) {
    const gated: { id: string; at: number }[] = [];
    const adds: Promise<void>[] = [];
    // the endpoint took some (a slow endpoint freeing its slots): such an endpoint is visited about as often as its
    // slots free, which a merged line's growing pause would not be
    let progressed = false;
    const decided: Promise<void>[] = [];
    const runs = ids.map((id) => {
      let decide!: () => void;
      decided.push(new Promise<void>((resolve) => (decide = resolve)));
      const admitted = () => {
        progressed = true;
        decide();
      };
      return deliverOne(id, endpointId, waits, admitted)
        .then((o) => {
          if (!('at' in o)) progressed ||= o.done !== 'skipped';
          else if (o.gateWaits) gated.push({ id, at: o.at });
          else {
            progressed = true;
            adds.push(queues.delivery(id, o.at - Date.now(), endpointId));
          }
          return o;
        })
        .finally(decide);
    });
    // every delivery sent away, or on its way to the endpoint: the ones the gate sent away join their line now, not
    // once the others have their answers (a slow endpoint holds those for as long as it takes to answer)
    await Promise.all(decided);
    if (gated.length) {
      adds.push(
        waitingLines.submit({
          ids: gated.map((g) => g.id),
          endpointId,
          gateWaits: progressed ? Math.max(1, waits - 1) : waits + 1,
          at: onWaitingGrid(Math.min(...gated.map((g) => g.at))),
        }),
      );
    }
    const settled = await Promise.allSettled(runs);
    await Promise.all(adds);
    const outcomes = settled.map((s) => {
      if (s.status === 'rejected') throw s.reason;
      return 'at' in s.value ? 'waiting' : s.value.done;
    });
    return outcomes.join(',');
  }

  const worker = new Worker<DeliveryJob>(queueNames.webhooks, (job, token) => deliver(job, token), {
    ...common,
    concurrency: opts.concurrency * 2,
  });
  return {
    worker,
    gate,
    waiting: (endpointId) => {
      if (gate.refusedLately(endpointId)) return true;
      const until = linedUntil.get(endpointId);
      if (until === undefined) return false;
      if (Date.now() < until + LINE_GRACE_MS) return true;
      linedUntil.delete(endpointId);
      return false;
    },
    released: async () => {
      await Promise.allSettled([...releasing]);
    },
    close: async () => {
      await gate.close().catch(() => undefined);
      gateRedis.disconnect();
    },
  };
}
