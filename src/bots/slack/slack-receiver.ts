import express, { type Request, type RequestHandler, type Response } from 'express';
import { type LogLevel, ReceiverMultipleAckError, type AckFn, type App, type Logger as BoltLogger, type Receiver } from '@slack/bolt';
import { AppError } from '../../core/errors.ts';
import { sendProblem, toProblem } from '../../integrations/http/problem.ts';
import type { Logger } from '../../logger.ts';
import { verifySlackSignature } from './slack-verify.ts';

export interface SlackReceiverOptions {
  signingSecret: string;
  /** how long a listener may take before Slack gets an empty 200 anyway (Slack gives up at 3 s) */
  ackBudgetMs: number;
  maxBodyBytes: number;
  logger: Logger;
  now?: () => number;
}

const header = (req: Request, name: string) => {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
};

/**
 * Bolt's receiver for POST /slack/events on Signoff's own Express server. It replaces ExpressReceiver for two
 * reasons: the signature check refuses timestamps more than 5 minutes away in either direction (Bolt's accepts
 * any future one), and an empty acknowledgement goes out within the ack budget whatever the listeners are doing.
 * Everything past verification and parsing is Bolt's: `app.action(...)`, `app.view(...)`, `app.command(...)`.
 */
export class SlackReceiver implements Receiver {
  private app?: App;
  private readonly now: () => number;

  constructor(private readonly opts: SlackReceiverOptions) {
    this.now = opts.now ?? Date.now;
  }

  init(app: App): void {
    this.app = app;
  }

  // the HTTP server belongs to Signoff (runtime.ts), so there is nothing to start or stop here
  start(): Promise<void> {
    return Promise.resolve();
  }

  stop(): Promise<void> {
    return Promise.resolve();
  }

  /** The route's handlers: raw bytes first, since the signature covers them exactly. */
  handlers(): RequestHandler[] {
    const raw = express.raw({ type: () => true, limit: this.opts.maxBodyBytes });
    return [raw, (req, res) => this.handle(req, res)];
  }

  private handle(req: Request, res: Response): void {
    const { logger } = this.opts;
    const body: Buffer = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const verdict = verifySlackSignature(
      this.opts.signingSecret,
      {
        timestamp: header(req, 'x-slack-request-timestamp'),
        signature: header(req, 'x-slack-signature'),
      },
      body,
      this.now(),
    );
    if (!verdict.ok) {
      logger.warn({ reason: verdict.reason, ip: req.ip }, 'slack: request refused (signature)');
      refuse(
        req,
        res,
        new AppError('unauthenticated', 'The Slack request signature is missing, stale or does not match.', { error: 'invalid_signature' }),
      );
      return;
    }
    let parsed: Record<string, unknown>;
    try {
      parsed = parseSlackBody(header(req, 'content-type') ?? '', body);
    } catch {
      refuse(
        req,
        res,
        new AppError('validation_failed', 'The Slack request body could not be read (malformed JSON or form payload).', {
          error: 'malformed_body',
        }),
      );
      return;
    }
    if (parsed.type === 'url_verification' && typeof parsed.challenge === 'string') {
      res.status(200).json({ challenge: parsed.challenge });
      return;
    }
    if (parsed.ssl_check) {
      res.status(200).end();
      return;
    }
    if (!this.app) {
      res.status(503).json({ error: 'not_ready' });
      return;
    }

    let sent = false;
    const respond = (answer: unknown) => {
      sent = true;
      if (answer === undefined || answer === '') res.status(200).end();
      else if (typeof answer === 'string') res.status(200).type('text/plain').send(answer);
      else res.status(200).json(answer);
    };
    // a second ack (the budget ran out first) rejects, so a listener knows to answer some other way
    const ack: AckFn<unknown> = (answer) => {
      if (sent) return Promise.reject(new ReceiverMultipleAckError());
      respond(answer);
      return Promise.resolve();
    };
    // Slack retries (and shows an error) after 3 s, so an empty ack goes out in time no matter what is slow
    const timer = setTimeout(() => {
      if (!sent) respond(undefined);
    }, this.opts.ackBudgetMs);
    const retry = header(req, 'x-slack-retry-num');
    this.app
      .processEvent({
        body: parsed,
        ack,
        retryNum: retry && /^\d+$/.test(retry) ? Number(retry) : undefined,
        retryReason: header(req, 'x-slack-retry-reason'),
      })
      .catch((e: unknown) =>
        logger.error({ err: e instanceof Error ? { message: e.message, stack: e.stack } : e }, 'slack: listener failed'),
      )
      .finally(() => {
        clearTimeout(timer);
        // nothing listened (an unknown action, a closed view): Slack still gets its 200
        if (!sent) respond(undefined);
      });
  }
}

/** Refusals are problem+json like every other error here; `error` keeps the short code Slack tooling logs. */
function refuse(req: Request, res: Response, e: AppError): void {
  const problem = toProblem(e, req.originalUrl);
  if (res.locals.requestId) problem.traceId = res.locals.requestId;
  // a 401 names how to authenticate here: Slack's request signature, not the API's bearer key
  sendProblem(res, problem, e.status === 401 ? { 'WWW-Authenticate': 'Slack-Signature realm="slack"' } : {});
}

/** Interactivity and slash commands arrive form-encoded (the former as a JSON `payload` field), events as JSON. */
export function parseSlackBody(contentType: string, body: Buffer): Record<string, unknown> {
  const text = body.toString('utf8');
  if (contentType.includes('application/json')) {
    const json: unknown = JSON.parse(text);
    if (!json || typeof json !== 'object' || Array.isArray(json)) throw new Error('not a JSON object');
    return json as Record<string, unknown>;
  }
  const form = new URLSearchParams(text);
  const payload = form.get('payload');
  if (payload !== null) {
    const json: unknown = JSON.parse(payload);
    if (!json || typeof json !== 'object' || Array.isArray(json)) throw new Error('payload is not a JSON object');
    return json as Record<string, unknown>;
  }
  return Object.fromEntries(form);
}

/**
 * Acknowledges the Slack request. The first call sends the HTTP response (with `answer` when given) and resolves
 * true; later calls resolve false, so a listener knows to deliver its answer another way.
 */
export type Ack = (answer?: unknown) => Promise<boolean>;

/** Acknowledges with `answer`; false when the acknowledgement already went out (the budget ran out first). */
export const tryAck = (ack: AckFn<any>, answer?: unknown): Promise<boolean> =>
  ack(answer).then(
    () => true,
    () => false,
  );

/** Bolt logs through Signoff's pino logger, at pino's level. */
export function boltLogger(logger: Logger): BoltLogger {
  const child = logger.child({ component: 'bolt' });
  const line = (msg: unknown[]) =>
    msg.map((m) => (m instanceof Error ? m.message : typeof m === 'string' ? m : JSON.stringify(m))).join(' ');
  return {
    debug: (...msg) => child.debug(line(msg)),
    info: (...msg) => child.info(line(msg)),
    warn: (...msg) => child.warn(line(msg)),
    error: (...msg) => child.error(line(msg)),
    setLevel: () => undefined,
    getLevel: () => child.level as LogLevel,
    setName: () => undefined,
  };
}
