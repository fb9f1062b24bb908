import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BOB_LAPTOP, seedContoso, VISIO, type Seeded } from '../support/fixtures.ts';
import { runCli } from '../support/run-cli.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';
import { webhooksOfRow } from '../support/outbox-webhooks.ts';

/** An admin at a terminal decides with the same rules as chat and the API: as a named person, pending only. */
let t: TestContext;
let s: Seeded;
beforeAll(async () => {
  t = await createTestContext();
  s = await seedContoso(t.tdb.db);
});
afterAll(() => t.close());

const signoff = (...args: string[]) => runCli(t.tdb.url, args);
const lastLine = (x: string) => x.trimEnd().split('\n').at(-1)!;

describe('decisions from the CLI', () => {
  it('approve as an approver; a late deny changes nothing; revoke and reapprove need a reason and a stale version is refused', async () => {
    const r = await t.ctx.requests.submit(s.actor(s.bob), {
      applicationId: VISIO,
      clientGuid: BOB_LAPTOP,
      justification: 'cli',
      answers: { usage: 'Other' },
    });
    const [self, approved] = await Promise.all([
      signoff('requests', 'approve', r.id, '--as', 'CONTOSO\\bob'),
      signoff('requests', 'approve', r.id, '--as', 'CONTOSO\\ada', '--reason', 'standard tool'),
    ]);
    expect(self).toMatchObject({ code: 1, stdout: '' });
    expect(self.stderr).toMatch(/^error: You cannot decide your own request\./);
    expect(approved).toMatchObject({ code: 0, stderr: '' });
    expect(lastLine(approved.stdout)).toMatch(
      new RegExp(`^approved: Visio for Bob User on BOB-LAPTOP \\(request ${r.id}, version \\d+\\)$`),
    );
    const view = await t.ctx.requests.get(r.id);
    expect(view).toMatchObject({ status: 'approved', decidedBy: 'Ada Admin', decisionReason: 'standard tool' });
    expect(view.decisions).toMatchObject([{ channel: 'cli', approver: { id: s.ada.id } }]);

    const late = await signoff('requests', 'deny', r.id, '--as', 'CONTOSO\\cyd', '--reason', 'too late');
    expect(late.code).toBe(1);
    expect(late.stderr).toMatch(/already approved by Ada Admin/);

    const noReason = await signoff('requests', 'revoke', r.id, '--as', 'CONTOSO\\cyd');
    expect(noReason.code).toBe(1);
    expect(noReason.stderr).toMatch(/Say why/);
    const stale = await signoff('requests', 'revoke', r.id, '--as', 'CONTOSO\\cyd', '--reason', 'left', '--if-version', '1');
    expect(stale.code).toBe(1);
    expect(stale.stderr).toMatch(/changed since version 1/);
    const future = await signoff('requests', 'revoke', r.id, '--as', 'CONTOSO\\cyd', '--reason', 'left', '--if-version', '7');
    expect(future.code).toBe(1);
    expect(future.stderr).toMatch(/was never at version 7: it is at version \d+ \(approved by Ada Admin/);
    const revoked = await signoff('requests', 'revoke', r.id, '--as', 'CONTOSO\\cyd', '--reason', 'left the team', '--json');
    expect(revoked.code).toBe(0);
    expect(JSON.parse(revoked.stdout)).toMatchObject({ outcome: 'revoked', request: { status: 'revoked', decidedBy: 'Cyd Approver' } });
    const reapproved = await signoff('requests', 'reapprove', r.id, '--as', 'CONTOSO\\ada', '--reason', 'back on the team');
    expect(reapproved.code).toBe(0);
    expect(lastLine(reapproved.stdout)).toMatch(/^reapproved: Visio/);
    const hooks = (
      await t.tdb.db.query<{ id: string; payload: any }>(`SELECT id, payload FROM outbox WHERE subject_id = $1 ORDER BY seq`, [r.id])
    )
      .flatMap((x) => webhooksOfRow(x).map((w) => w.type))
      .filter((x) => x.startsWith('app.'));
    expect(hooks).toEqual(['app.install', 'app.uninstall', 'app.install']);
  });

  it('changes: list, and approve or reject as a second admin, never the author', async () => {
    const c = await t.ctx.changes.submit(s.actor(s.ada), {
      resourceType: 'script',
      resourceId: 'cli.ps1',
      before: { a: 1 },
      after: { a: 2 },
      justification: 'tidy',
    });
    const list = await signoff('changes', 'list', '--status', 'pending');
    expect(list.code).toBe(0);
    expect(list.stdout).toContain(c.id);
    expect(list.stdout).toContain('script cli.ps1');
    const own = await signoff('changes', 'approve', c.id, '--as', 'CONTOSO\\ada');
    expect(own.code).toBe(1);
    expect(own.stderr).toMatch(/your own change/);
    const outsider = await signoff('changes', 'reject', c.id, '--as', 'CONTOSO\\dan', '--notes', 'no');
    expect(outsider.stderr).toMatch(/Only members of it-approvers/);
    const rejectSilently = await signoff('changes', 'reject', c.id, '--as', 'CONTOSO\\cyd');
    expect(rejectSilently.stderr).toMatch(/Say why/);
    const ok = await signoff('changes', 'approve', c.id, '--as', 'CONTOSO\\cyd', '--notes', 'looks right');
    expect(ok.code).toBe(0);
    expect(lastLine(ok.stdout)).toBe(`approved: script cli.ps1 by ${c.requester.label} (change ${c.id}, version 2)`);
    expect((await t.ctx.changes.get(c.id)).decidedBy).toBe('Cyd Approver');
  });
});
