import type { Express, NextFunction, Request, Response } from 'express';
import { AppError } from '../../core/errors.ts';

interface Layer {
  /** router@2 returns the match ({ path, params }); older versions return a boolean and set `this.path` */
  match(path: string): boolean | { path: string } | undefined;
  path?: string;
  route?: { methods: Record<string, boolean> };
  handle?: { stack?: Layer[] };
}

/**
 * The methods some route answers at `path`, found by asking Express's own layers, so routes that adapters
 * mount themselves (Slack, Teams, links) also get a 405 instead of a 404 for the wrong method.
 */
function allowedMethods(stack: Layer[], path: string, depth = 0): Set<string> {
  const out = new Set<string>();
  if (depth > 8) return out;
  for (const layer of stack) {
    let matched: ReturnType<Layer['match']>;
    try {
      matched = layer.match(path);
    } catch {
      matched = undefined;
    }
    if (!matched) continue;
    const prefix = typeof matched === 'object' ? matched.path : layer.path;
    if (layer.route) {
      for (const m of Object.keys(layer.route.methods)) if (m !== '_all') out.add(m.toUpperCase());
    } else if (layer.handle?.stack && typeof prefix === 'string') {
      for (const m of allowedMethods(layer.handle.stack, path.slice(prefix.length) || '/', depth + 1)) out.add(m);
    }
  }
  if (out.has('GET')) out.add('HEAD');
  return out;
}

/** After every route: 405 with Allow when the path exists under another method, else 404. */
export function routeFallback(app: Express) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const stack = (app as unknown as { router?: { stack?: Layer[] } }).router?.stack ?? [];
    const allowed = allowedMethods(stack, req.path);
    if (allowed.size > 0 && !allowed.has(req.method)) {
      res.setHeader('Allow', [...allowed].sort().join(', '));
      return next(
        new AppError('method_not_allowed', `${req.method} is not supported on ${req.path}; use ${[...allowed].sort().join(' or ')}.`, {
          allow: [...allowed].sort(),
        }),
      );
    }
    next(new AppError('not_found', `There is no ${req.method} ${req.path}. The API is described at /api/v1/openapi.json.`));
  };
}
