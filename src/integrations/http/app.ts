import { STATUS_CODES, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { AddressInfo } from 'node:net';
import express, { type Express } from 'express';
import type { AppContext } from '../../app-context.ts';
import { registerAdminRoutes } from './admin-routes.ts';
import { apiKeyAuth } from './api-auth.ts';
import { registerAuditRoutes } from './audit-routes.ts';
import { jsonBody, rejectUnstorableText, requireJsonBody } from './body-parsing.ts';
import { registerChangeRoutes } from './change-routes.ts';
import { registerDeliveryRoutes } from './delivery-routes.ts';
import { registerDeviceManagerRoutes } from './device-manager-routes.ts';
import { idempotency } from './idempotency.ts';
import { createOpsRouter } from './ops-routes.ts';
import { PROBLEM_BASE, problemErrorHandler } from './problem.ts';
import { errorCatalog } from '../../core/errors.ts';
import { requestId } from './request-id.ts';
import { registerRequestRoutes } from './request-routes.ts';
import { registerReviewRoutes } from './review-routes.ts';
import { RouteRegistry } from './route-registry.ts';
import { routeFallback } from './route-fallback.ts';

export const API_BASE = '/api/v1';

export interface HttpAppOptions {
  /**
   * Adapters (Slack, Teams, email links) mount their own routes here, before any body parser: Slack verifies
   * signatures over the raw body. Their errors still end in the problem+json handler.
   */
  mount?: (app: Express) => void;
}

/** Builds the REST API with every route declared in the registry; exported for tests and the OpenAPI check. */
export function buildApiRouter(ctx: AppContext): { router: express.Router; registry: RouteRegistry } {
  const registry = new RouteRegistry();
  const router = express.Router();
  registerRequestRoutes(router, registry, ctx);
  registerReviewRoutes(router, registry, ctx);
  registerChangeRoutes(router, registry, ctx);
  registerAuditRoutes(router, registry, ctx);
  registerAdminRoutes(router, registry, ctx);
  registerDeliveryRoutes(router, registry, ctx);
  registerDeviceManagerRoutes(router, registry, ctx);
  return { router, registry };
}

export function createHttpApp(ctx: AppContext, opts: HttpAppOptions = {}): Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(requestId(ctx));

  opts.mount?.(app);
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.use(createOpsRouter(ctx));

  const { router, registry } = buildApiRouter(ctx);
  let openApi: Record<string, unknown> | undefined;
  app.get(`${API_BASE}/openapi.json`, (_req, res) => {
    openApi ??= registry.openApiDocument({ title: 'Signoff API', version: '1', serverUrl: ctx.config.PUBLIC_URL, basePath: API_BASE });
    res.json(openApi);
  });
  // who is calling comes before reading what they sent: an unauthenticated client cannot make us parse a body
  app.use(
    API_BASE,
    noStore,
    apiKeyAuth(ctx),
    requireJsonBody(),
    jsonBody(ctx.config.MAX_BODY_BYTES),
    rejectUnstorableText(),
    idempotency(ctx),
    router,
  );

  app.use(routeFallback(app));
  app.use(problemErrorHandler(ctx));
  return app;
}

// API answers are per caller and change with every decision: no shared cache may keep them
function noStore(_req: express.Request, res: express.Response, next: express.NextFunction): void {
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  next();
}

/**
 * What Node's HTTP parser refuses before Express sees it (headers too large, a malformed request line or header)
 * is answered as problem+json too, rather than Node's bare 400/431.
 */
function answerClientError(err: Error & { code?: string }, socket: Duplex): void {
  // as Node's own handler does: a socket that already carries a response (or is gone) is only closed
  const answering = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (!socket.writable || err.code === 'ECONNRESET' || answering?.headersSent) {
    socket.destroy();
    return;
  }
  const code = 'validation_failed';
  const [status, detail] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'The request headers are too large.']
      : err.code === 'HPE_REQUEST_TIMEOUT' || err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'The request was not received in time.']
        : [400, 'The request is not valid HTTP.'];
  const body = JSON.stringify({
    type: `${PROBLEM_BASE}${code}`,
    title: errorCatalog[code].title,
    status,
    detail,
    instance: '',
    code,
    retryable: false,
  });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

export interface RunningServer {
  server: Server;
  port: number;
  close(): Promise<void>;
}

/** Listens on `port` (0 picks one); close() stops accepting, lets requests in flight finish, then drops idle sockets. */
export function startHttpServer(app: Express, port: number, opts: { host?: string; graceMs?: number } = {}): Promise<RunningServer> {
  return new Promise((resolve, reject) => {
    const server = app.listen(port, opts.host ?? '0.0.0.0');
    server.on('clientError', answerClientError);
    server.once('error', reject);
    server.once('listening', () => {
      server.off('error', reject);
      let closing: Promise<void> | undefined;
      // keep-alive sockets of requests that finish during shutdown would otherwise hold close() open
      server.on('request', (_req, res) => {
        res.once('finish', () => {
          if (closing) setImmediate(() => server.closeIdleConnections());
        });
        if (closing) res.setHeader('Connection', 'close');
      });
      resolve({
        server,
        port: (server.address() as AddressInfo).port,
        close: () =>
          (closing ??= new Promise<void>((done, fail) => {
            const force = setTimeout(() => server.closeAllConnections(), opts.graceMs ?? 10_000);
            force.unref();
            server.close((e) => {
              clearTimeout(force);
              if (e) fail(e);
              else done();
            });
            server.closeIdleConnections();
          })),
      });
    });
  });
}
