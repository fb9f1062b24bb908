import express, { type Request, type Response } from 'express';
import { handleCommand, type SlashCommand } from './slack-commands.ts';
import { publishHome } from './slack-home.ts';
import { handleInteraction, type InteractionPayload } from './slack-interactions.ts';
import { logUnexpected, replyPrivately, resolveUser, UNAVAILABLE_TEXT, type SlackDeps } from './slack-replies.ts';
import { toAppError } from '../../core/errors.ts';
import { verifySlackSignature } from './slack-verify.ts';

/**
 * Acknowledges the Slack request. The first call sends the HTTP response (with `body` when given) and
 * returns true; later calls return false, so a handler knows to deliver its answer another way.
 */
export type Ack = (body?: unknown) => boolean;

export interface SlackHttpOptions {
  signingSecret: string;
  /** how long a handler may take before Slack gets an empty 200 anyway (Slack gives up at 3 s) */
  ackBudgetMs: number;
  maxBodyBytes: number;
  now?: () => number;
}

const header = (req: Request, name: string) => {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
};

/** POST /slack/events: verify the raw bytes, then parse, then dispatch with an ack deadline. */
export function slackEventsHandler(deps: SlackDeps, opts: SlackHttpOptions) {
  const raw = express.raw({ type: () => true, limit: opts.maxBodyBytes });
  const now = opts.now ?? Date.now;
  const handle = (req: Request, res: Response) => {
    const body: Buffer = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const verdict = verifySlackSignature(opts.signingSecret, {
      timestamp: header(req, 'x-slack-request-timestamp'),
      signature: header(req, 'x-slack-signature'),
    }, body, now());
    if (!verdict.ok) {
      deps.ctx.logger.warn({ reason: verdict.reason, ip: req.ip }, 'slack: request refused (signature)');
      res.status(401).json({ error: 'invalid_signature' });
      return;
    }
    let parsed: ParsedSlackBody;
    try {
      parsed = parseBody(header(req, 'content-type') ?? '', body);
    } catch {
      res.status(400).json({ error: 'malformed_body' });
      return;
    }
    dispatch(deps, parsed, res, opts.ackBudgetMs);
  };
  return [raw, handle] as const;
}

type ParsedSlackBody =
  | { kind: 'url_verification'; challenge: string }
  | { kind: 'event'; event: { type: string; user?: string; tab?: string } }
  | { kind: 'command'; command: SlashCommand }
  | { kind: 'interaction'; payload: InteractionPayload }
  | { kind: 'unknown' };

export function parseBody(contentType: string, body: Buffer): ParsedSlackBody {
  const text = body.toString('utf8');
  if (contentType.includes('application/json')) {
    const json = JSON.parse(text) as { type?: string; challenge?: string; event?: { type: string } };
    if (json.type === 'url_verification' && typeof json.challenge === 'string') return { kind: 'url_verification', challenge: json.challenge };
    if (json.type === 'event_callback' && json.event) return { kind: 'event', event: json.event };
    return { kind: 'unknown' };
  }
  const form = new URLSearchParams(text);
  const payload = form.get('payload');
  if (payload) return { kind: 'interaction', payload: JSON.parse(payload) as InteractionPayload };
  if (form.get('command')) {
    return {
      kind: 'command',
      command: {
        command: form.get('command')!, text: form.get('text') ?? '', user_id: form.get('user_id') ?? '', channel_id: form.get('channel_id') ?? '',
        trigger_id: form.get('trigger_id') ?? '', response_url: form.get('response_url') ?? undefined,
      },
    };
  }
  return { kind: 'unknown' };
}

function dispatch(deps: SlackDeps, parsed: ParsedSlackBody, res: Response, budgetMs: number): void {
  let sent = false;
  const ack: Ack = (body) => {
    if (sent) return false;
    sent = true;
    if (body === undefined) res.status(200).end();
    else res.status(200).json(body);
    return true;
  };
  // Slack retries (and shows an error) after 3 s, so an empty ack goes out in time no matter what is slow
  const timer = setTimeout(() => ack(), budgetMs);
  const work = (async () => {
    switch (parsed.kind) {
      case 'url_verification':
        ack({ challenge: parsed.challenge });
        return;
      case 'event':
        ack();
        if (parsed.event.type === 'app_home_opened' && parsed.event.user && (parsed.event.tab ?? 'home') === 'home') {
          await publishHome(deps, parsed.event.user, await resolveUser(deps, parsed.event.user));
        }
        return;
      case 'command':
        return handleCommand(deps, parsed.command, ack);
      case 'interaction':
        return handleInteraction(deps, parsed.payload, ack);
      default:
        ack();
    }
  })();
  work
    .catch(async (e: unknown) => {
      logUnexpected(deps, e, `slack ${parsed.kind}`);
      // the database away before the handler could answer (resolving who clicked): say so rather than nothing
      if (toAppError(e).code === 'dependency_unavailable') await sayUnavailable(deps, parsed, ack).catch((err: unknown) => logUnexpected(deps, err, 'slack unavailable reply'));
    })
    .finally(() => {
      clearTimeout(timer);
      ack();
    });
}

async function sayUnavailable(deps: SlackDeps, parsed: ParsedSlackBody, ack: Ack): Promise<void> {
  if (parsed.kind === 'command') {
    const c = parsed.command;
    if (ack({ response_type: 'ephemeral', text: UNAVAILABLE_TEXT })) return;
    await replyPrivately(deps, { user: c.user_id, channel: c.channel_id, responseUrl: c.response_url }, UNAVAILABLE_TEXT);
  } else if (parsed.kind === 'interaction' && parsed.payload.type === 'block_actions') {
    const p = parsed.payload;
    await replyPrivately(deps, { user: p.user.id, channel: p.channel?.id ?? p.container?.channel_id, responseUrl: p.response_url }, UNAVAILABLE_TEXT);
  } else if (parsed.kind === 'interaction' && parsed.payload.type === 'view_submission') {
    ack({ response_action: 'update', view: { type: 'modal', title: { type: 'plain_text', text: 'Signoff' }, blocks: [{ type: 'section', text: { type: 'mrkdwn', text: UNAVAILABLE_TEXT } }] } });
  }
}
