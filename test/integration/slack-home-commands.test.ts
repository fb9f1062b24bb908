import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ACTION, CALLBACK } from '../../src/bots/slack/slack-ids.ts';
import { BOB_LAPTOP, seedContoso, VISIO, type Seeded } from '../support/fixtures.ts';
import { buttonsOf, startSlackHarness, textOf, type SlackHarness } from '../support/slack-harness.ts';
import { HANG_LIMIT_MS } from '../support/wait.ts';

let h: SlackHarness;
let s: Seeded;
const HIDDEN = 'ScopeId_X/Application_hidden';
const PROJECT = 'ScopeId_X/Application_project';
beforeAll(async () => {
  h = await startSlackHarness();
  s = await seedContoso(h.t.tdb.db);
  // a hidden-until-approved app and a per-user app with a text question and no per-device install
  await h.t.tdb.db.query(
    `INSERT INTO applications (id, name, visibility, per_device, policy_id) SELECT $1, 'Secret Tool', 'hidden-until-approved', true, policy_id FROM applications WHERE id = $2`,
    [HIDDEN, VISIO],
  );
  const p = await h.t.tdb.db.one<{ id: string }>(`INSERT INTO policies (name, definition) VALUES ('project', $1) RETURNING id`, [
    JSON.stringify({
      requestors: { allMembers: true, identities: [], groups: [] },
      justification: 'optional',
      stages: [{ approvers: ['it-approvers'], quorum: 'any', approverJustification: false, notifyApproversDirectly: false }],
      questions: [{ id: 'costCenter', text: 'Cost center', type: 'text', required: true, pattern: '^CC-\\d{4}$' }],
      decisionDeadline: 'P14D',
      accessExtendable: false,
      accessExpiryWarning: 'P7D',
    }),
  ]);
  await h.t.tdb.db.query(
    `INSERT INTO applications (id, name, description, per_device, policy_id) VALUES ($1, 'Project', 'Project planning', false, $2)`,
    [PROJECT, p.id],
  );
});
afterAll(() => h.close());

describe('slash command', () => {
  it('/signoff and /signoff help explain every subcommand, only to the caller', async () => {
    for (const text of ['', 'help']) {
      const res = await h.command('U0BOB', text);
      expect(res.body.response_type).toBe('ephemeral');
      for (const sub of ['request', 'my', 'change', 'help']) expect(res.body.text).toContain(`/signoff ${sub}`);
    }
    expect((await h.command('U0BOB', 'frobnicate')).body.text).toMatch(/I don't know `frobnicate`/);
  });

  it('/signoff request without an app opens the search; picking an app redraws the form for it', async () => {
    h.fake.reset();
    await h.command('U0BOB', 'request');
    const [open] = await h.fake.waitFor('views.open');
    const view = open!.args.view;
    expect(view.blocks.map((b: any) => b.block_id).filter(Boolean)).toEqual(['app']);
    const missing = await h.submit('U0BOB', view, {});
    expect(missing.body.errors.app).toMatch(/Choose an application/);

    const picked = await h.post(
      new URLSearchParams({
        payload: JSON.stringify({
          type: 'block_actions',
          user: { id: 'U0BOB' },
          trigger_id: 't1',
          container: { type: 'view', view_id: 'V9' },
          view: { id: 'V9', type: 'modal', callback_id: CALLBACK.requestModal },
          actions: [{ action_id: ACTION.modalApp, block_id: 'app', type: 'external_select', selected_option: { value: PROJECT } }],
        }),
      }).toString(),
      'application/x-www-form-urlencoded',
    );
    expect(picked.status).toBe(200);
    const [upd] = await h.fake.waitFor('views.update');
    expect(upd!.args.view_id).toBe('V9');
    const ids = upd!.args.view.blocks.map((b: any) => b.block_id).filter(Boolean);
    expect(ids).toEqual(['app', 'justification', 'q_costCenter']);
    const form = upd!.args.view;
    expect(form.blocks.find((b: any) => b.block_id === 'justification').optional).toBe(true);

    const bad = await h.submit('U0BOB', form, { q_costCenter: 'marketing' });
    expect(bad.body).toEqual({ response_action: 'errors', errors: { q_costCenter: 'The answer is not in the expected format.' } });
    const ok = await h.submit('U0BOB', form, { q_costCenter: 'CC-1234' });
    expect(ok.body.response_action).toBe('update');
    const again = await h.submit('U0BOB', form, { q_costCenter: 'CC-1234' });
    expect(again.body.errors.app).toMatch(/already pending/);
  });

  it('an unknown app name opens the search with a hint, and hidden apps are not revealed', async () => {
    h.fake.reset();
    await h.command('U0BOB', 'request Secret Tool');
    const [open] = await h.fake.waitFor('views.open');
    expect(textOf(open!.args.view.blocks)).toContain('Nothing in your catalog matches “Secret Tool”');
    expect(JSON.stringify(open!.args.view)).not.toContain(HIDDEN);
  });

  it("/signoff my lists bob's requests with state and Cancel", async () => {
    const res = await h.command('U0BOB', 'my');
    expect(res.body.response_type).toBe('ephemeral');
    const shown = textOf(res.body.blocks);
    expect(shown).toMatch(/\*Project\*: :hourglass_flowing_sand: Pending/);
    expect(buttonsOf(res.body.blocks).map((b) => b.text)).toEqual(['Cancel', 'History']);
  });

  it("bob cancels from the list; approvers' copies show it cancelled", async () => {
    const id = (await h.t.tdb.db.one<{ id: string }>(`SELECT id FROM requests WHERE application_id = $1`, [PROJECT])).id;
    await h.drain();
    h.fake.reset();
    await h.action('U0BOB', ACTION.cancel, id, { channel: 'C0GENERAL' });
    const [eph] = await h.fake.waitFor('chat.postEphemeral');
    expect(textOf(eph!.args.blocks)).toMatch(/Your request for \*Project\* is cancelled/);
    // a reply only bob sees is still a message Signoff sent: it is in the audit log
    await vi.waitFor(
      async () => {
        const sent = await h.t.tdb.db.query<{ details: Record<string, unknown> }>(
          `SELECT details FROM audit_events WHERE action = 'message.sent' AND subject_type = 'conversation' AND subject_id = 'C0GENERAL'`,
        );
        expect(sent.map((r) => r.details)).toContainEqual(
          expect.objectContaining({
            platform: 'slack',
            method: 'chat.postEphemeral',
            private: true,
            to: 'U0BOB',
            text: expect.stringMatching(/Your request for \*Project\* is cancelled/),
          }),
        );
      },
      { timeout: HANG_LIMIT_MS, interval: 25 },
    ); // vi.waitFor gives up after 1 s by default
    await h.drain();
    const copy = h.fake.of('chat.update').find((u) => u.args.channel === 'C0APPROVE')!;
    expect(textOf(copy.args.blocks)).toMatch(/Cancelled\* by \*Bob User\*/);
    expect(buttonsOf(copy.args.blocks)).toEqual([]);
    // bob cancelled it himself: no extra "your request was cancelled" DM
    expect(h.fake.of('chat.postMessage')).toHaveLength(0);
  });

  it("History opens a modal with the request's audit trail", async () => {
    const id = (await h.t.tdb.db.one<{ id: string }>(`SELECT id FROM requests WHERE application_id = $1`, [PROJECT])).id;
    h.fake.reset();
    await h.action('U0BOB', ACTION.history, id, { channel: 'D0BOB' });
    const [open] = await h.fake.waitFor('views.open');
    const shown = textOf(open!.args.view.blocks);
    expect(shown).toMatch(/\*submitted\* by Bob User \(slack\)/);
    expect(shown).toMatch(/\*cancelled\* by Bob User \(slack\)/);
    // Dan is neither its requester nor an approver of its policy: a hand-made click shows him nothing of it
    h.fake.reset();
    await h.action('U0DAN', ACTION.history, id, { channel: 'D0DAN' });
    const [refused] = await h.fake.waitFor('views.open');
    const told = textOf(refused!.args.view.blocks);
    expect(told).toContain('that you can open');
    expect(told).not.toMatch(/Bob User/);
  });
});

describe('App Home', () => {
  it('shows bob the catalog he may request (not hidden apps) and his requests', async () => {
    await h.t.ctx.requests.submit(s.actor(s.bob), {
      applicationId: VISIO,
      clientGuid: BOB_LAPTOP,
      justification: 'diagrams',
      answers: { usage: 'Diagrams' },
    });
    h.fake.reset();
    const res = await h.event({ type: 'app_home_opened', user: 'U0BOB', tab: 'home', channel: 'D0BOB' });
    expect(res.status).toBe(200);
    const [pub] = await h.fake.waitFor('views.publish');
    expect(pub!.args.user_id).toBe('U0BOB');
    const view = pub!.args.view;
    expect(view.type).toBe('home');
    const shown = textOf(view.blocks);
    expect(shown).toContain('*Visio*');
    expect(shown).toContain('*Project*');
    expect(shown).not.toContain('Secret Tool');
    expect(
      buttonsOf(view.blocks)
        .filter((b) => b.action_id === ACTION.requestApp)
        .map((b) => b.value)
        .sort(),
    ).toEqual([PROJECT, VISIO].sort());
    expect(shown).toMatch(/\*Visio\* on BOB-LAPTOP: :hourglass_flowing_sand: Pending/);
    expect(shown).toMatch(/\*Project\*: :no_entry_sign: Cancelled by Bob User/);
    expect(shown).toMatch(/submitted by Bob User/);
    expect(shown).not.toContain('Waiting on you');
  });

  it('shows ada what waits on her, with Approve and Deny, and approving refreshes her Home', async () => {
    h.fake.reset();
    await h.event({ type: 'app_home_opened', user: 'U0ADA', tab: 'home' });
    const [pub] = await h.fake.waitFor('views.publish');
    const shown = textOf(pub!.args.view.blocks);
    expect(shown).toContain('Waiting on you');
    expect(shown).toMatch(/\*Visio\* for \*Bob User\* on BOB-LAPTOP/);
    const approve = buttonsOf(pub!.args.view.blocks).find((b) => b.action_id === ACTION.approve)!;

    h.fake.reset();
    await h.action('U0ADA', ACTION.approve, approve.value, { view: { id: 'VHOME', type: 'home' } });
    const [again] = await h.fake.waitFor('views.publish');
    expect(textOf(again!.args.view.blocks)).not.toContain('Waiting on you');
    // no channel in a Home click: the confirmation goes to ada's DM with the app
    expect(h.fake.of('chat.postMessage').find((p) => p.args.channel === 'D0ADA')).toBeTruthy();
    expect((await h.t.ctx.requests.get(approve.value.split(':')[0]!)).status).toBe('approved');
  });

  it('Deny from Home asks for a reason in a modal; once submitted her Home no longer lists the request', async () => {
    const r = await h.t.ctx.requests.submit(s.actor(s.bob), { applicationId: PROJECT, answers: { costCenter: 'CC-1234' } });
    h.fake.reset();
    await h.event({ type: 'app_home_opened', user: 'U0ADA', tab: 'home' });
    const [pub] = await h.fake.waitFor('views.publish');
    const deny = buttonsOf(pub!.args.view.blocks).find((b) => b.action_id === ACTION.deny && b.value === `${r.id}:0`)!;

    h.fake.reset();
    await h.action('U0ADA', ACTION.deny, deny.value, { view: { id: 'VHOME', type: 'home' } });
    const [open] = await h.fake.waitFor('views.open');
    expect(h.fake.of('views.publish')).toHaveLength(0);
    const done = await h.submit('U0ADA', open!.args.view, { reason: 'Use the shared licence' });
    expect(done.body).toEqual({ response_action: 'clear' });
    const [again] = await h.fake.waitFor('views.publish');
    expect(again!.args.user_id).toBe('U0ADA');
    expect(buttonsOf(again!.args.view.blocks).filter((b) => b.value.startsWith(r.id))).toEqual([]);
    expect((await h.t.ctx.requests.get(r.id)).status).toBe('denied');
  });

  it('with more waiting than fit, /signoff pending and Home give the true count and say the list is cut', async () => {
    // 12 devices of bob's, one pending Visio request each
    for (let i = 0; i < 12; i++) {
      const guid = `GUID:00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
      await h.t.tdb.db.query(`INSERT INTO devices (client_guid, name, primary_user_id) VALUES ($1, $2, $3)`, [
        guid,
        `BOB-PC-${i}`,
        s.bob.id,
      ]);
      await h.t.ctx.requests.submit(s.actor(s.bob), {
        applicationId: VISIO,
        clientGuid: guid,
        justification: `batch ${i}`,
        answers: { usage: 'Diagrams' },
      });
    }
    const waiting = await h.t.ctx.requests.count({ pendingForApproverId: s.cyd.id });
    expect(waiting).toBeGreaterThanOrEqual(12);
    const res = await h.command('U0CYD', 'pending');
    expect(res.body.text).toMatch(new RegExp(`^${waiting} item\\(s\\) wait on you`));
    expect(textOf(res.body.blocks)).toContain(`Showing the 10 newest of ${waiting} requests waiting on you`);
    h.fake.reset();
    await h.event({ type: 'app_home_opened', user: 'U0CYD', tab: 'home' });
    const [pub] = await h.fake.waitFor('views.publish');
    expect(textOf(pub!.args.view.blocks)).toContain(`Showing the 10 newest of ${waiting} requests waiting on you`);
  });

  it('shows a hidden-until-approved app once it is approved for the user', async () => {
    await h.t.ctx.requests.createApproved(
      { id: null, label: 'api:test', channel: 'api' },
      { applicationId: HIDDEN, clientGuid: BOB_LAPTOP, username: 'CONTOSO\\bob' },
    );
    h.fake.reset();
    await h.event({ type: 'app_home_opened', user: 'U0BOB', tab: 'home' });
    const [pub] = await h.fake.waitFor('views.publish');
    expect(textOf(pub!.args.view.blocks)).toContain('Secret Tool');
  });
});
