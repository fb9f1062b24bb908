import type { Request } from 'express';
import { AppError } from '../../core/errors.ts';

/** Requests and changes carry a version; it is their ETag. Strong: it names the state, not a byte encoding. */
export const etagOf = (version: number) => `"${version}"`;

const TAG = /^\s*(?:W\/)?"(\d{1,9})"\s*$|^\s*(\d{1,9})\s*$/;

/**
 * If-Match as the version the caller decided on. `*` (any current version) and no header give undefined. A weak
 * tag names the same version here (we issue only strong ones, and a careless client copying W/ should not decide
 * blind), and several tags are refused: a decision is made on one version the caller saw.
 */
export function expectedVersion(req: Request): number | undefined {
  const raw = req.get('if-match');
  if (raw === undefined || raw.trim() === '*') return undefined;
  const tags = raw
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
  const m = tags.length === 1 ? TAG.exec(tags[0]!) : null;
  if (!m) {
    throw new AppError('validation_failed', 'If-Match must be one ETag as returned by GET (e.g. "3").', {
      errors: [{ field: 'If-Match', message: 'must be one ETag such as "3"' }],
    });
  }
  return Number(m[1] ?? m[2]);
}

/** If-None-Match on a GET: the caller already has this version. */
export function notModified(req: Request, version: number): boolean {
  const raw = req.get('if-none-match');
  if (!raw) return false;
  return raw.split(',').some((t) => {
    const m = TAG.exec(t);
    return t.trim() === '*' || (m !== null && Number(m[1] ?? m[2]) === version);
  });
}
