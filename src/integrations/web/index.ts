import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import type { AppContext } from '../../app-context.ts';
import { oidcEnabled } from '../../config.ts';
import { PROJECT_ROOT } from '../../paths.ts';
import { AppError, toAppError } from '../../core/errors.ts';
import { fromBodyParser } from '../http/problem.ts';
import { registerAuthRoutes } from './auth-routes.ts';
import { errorPage, securityHeaders } from './layout.ts';
import { createLiveEvents } from './live-events.ts';
import { createOidc } from './oidc.ts';
import { registerAdminPages } from './pages-admin.ts';
import { registerApprovalPages } from './pages-approvals.ts';
import { registerRequestPages } from './pages-request.ts';
import { registerRequestDetailPages } from './pages-requests.ts';
import { loadSession, requireCsrf, sessionOf } from './sessions.ts';

/**
 * The web app at /app: server-rendered pages from this process, one small stylesheet and one small script for
 * live updates. Every action calls the same core services as chat and REST, as the signed-in person on the 'web'
 * channel, so chat prompts, emails and webhooks follow.
 */

function asset(file: string, type: string) {
  const body = readFileSync(join(PROJECT_ROOT, 'src/integrations/web/static', file));
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 16)}"`;
  return (req: Request, res: Response) => {
    res.setHeader('Cache-Control', 'public, max-age=300, must-revalidate');
    res.setHeader('ETag', etag);
    if (req.headers['if-none-match'] === etag) return void res.status(304).end();
    res.type(type).send(body);
  };
}

export interface WebApp {
  stop(): Promise<void>;
}

export function mountWebApp(app: Express, ctx: AppContext): WebApp {
  const router = express.Router();
  const live = createLiveEvents(ctx);
  const oidc = oidcEnabled(ctx.config) ? createOidc(ctx) : null;

  router.use(securityHeaders);
  router.get('/static/app.css', asset('app.css', 'text/css; charset=utf-8'));
  router.get('/static/app.js', asset('app.js', 'text/javascript; charset=utf-8'));
  router.use(express.urlencoded({ extended: false, limit: '64kb', parameterLimit: 200 }));
  router.use(loadSession(ctx));

  registerAuthRoutes(router, ctx, oidc);

  // everything below is for signed-in people, and every form carries the session's CSRF token
  router.use((req, res, next) => {
    if (!sessionOf(res)?.identity) {
      if (req.method === 'GET' || req.method === 'HEAD')
        return void res.redirect(303, `/app/signin?return=${encodeURIComponent(req.originalUrl)}`);
      throw new AppError('unauthenticated', 'Your session has ended; sign in again.');
    }
    if (req.method === 'POST') requireCsrf(req, res);
    next();
  });
  router.get('/events', (req, res) => live.handler(req, res));
  registerRequestPages(router, ctx);
  registerRequestDetailPages(router, ctx);
  registerApprovalPages(router, ctx);
  registerAdminPages(router, ctx);

  router.use((req: Request) => {
    throw new AppError('not_found', `There is no page ${req.originalUrl}.`);
  });
  router.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    // a form body that could not be read (too large, not what its Content-Encoding says) is the sender's doing
    const parsing = err instanceof AppError ? undefined : fromBodyParser(err);
    const e =
      err instanceof AppError
        ? err
        : (err as { type?: string }).type === 'entity.too.large'
          ? new AppError('payload_too_large', 'The form is too large.')
          : (parsing ?? toAppError(err));
    if (!(err instanceof AppError) && !parsing) ctx.logger.error({ err, path: req.path }, 'web page failed');
    errorPage(res, sessionOf(res)?.identity ? sessionOf(res) : null, e);
  });

  app.use('/app', router);
  return { stop: () => live.stop() };
}
