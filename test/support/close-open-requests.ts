import type { Seeded } from './fixtures.ts';
import type { TestContext } from './test-context.ts';

/**
 * For a `beforeEach` or the start of an `it`: cancels the pending requests and revokes the approved ones an earlier
 * `it` left (whether it passed or not), delivers what that sends and forgets the calls the platform fake recorded.
 * Only one request per application, user and device may be pending or approved, and a timer sweep acts on every
 * open request, so without this one `it`'s leftovers would break or blur the next.
 */
export async function closeOpenRequests(
  h: { t: TestContext; drain(): Promise<unknown> },
  s: Seeded,
  forgetCalls: () => void,
  channel: 'slack' | 'teams' = 'slack',
): Promise<void> {
  const open = await h.t.tdb.db.query<{ id: string; status: string; requester_id: string }>(
    `SELECT id, status, requester_id FROM requests WHERE status IN ('pending', 'approved')`,
  );
  for (const r of open) {
    if (r.status === 'pending') await h.t.ctx.requests.cancel({ id: r.requester_id, label: 'test cleanup', channel }, r.id);
    else await h.t.ctx.requests.revoke(s.actor(s.ada, channel), r.id, 'closed between tests');
  }
  await h.drain();
  forgetCalls();
}
