import type { Request } from 'express';
import { AppError } from '../../core/errors.ts';
import type { ExpectedVersion } from '../../core/versions.ts';

/** Requests and changes carry a version; it is their ETag. Strong: it names the state, not a byte encoding. */
export const etagOf = (version: number) => `"${version}"`;

const TAG = /^\s*(?:W\/)?"(\d{1,9})"\s*$|^\s*(\d{1,9})\s*$/;
// entity-tag = [ W/ ] DQUOTE *etagc DQUOTE (RFC 9110 8.8.3), as a comma-separated list
const TAG_LIST = /^\s*(?:(?:W\/)?"[\x21\x23-\x7e\x80-\xff]*"\s*(?:,\s*|$))+$/;
const EACH_TAG = /(W\/)?"([^"]*)"/g;

/**
 * If-Match as the versions the caller decides on. `*` (any current version) and no header give undefined. It is
 * compared strongly (RFC 9110 13.1.1): a weak tag matches nothing, and of a list any one tag will do; a tag that is
 * none of ours (another server's, a body hash) matches nothing either. A bare number is taken as its tag, for
 * careless clients; anything else is malformed.
 */
export function expectedVersion(req: Request): ExpectedVersion | undefined {
  const raw = req.get('if-match');
  if (raw === undefined || raw.trim() === '*') return undefined;
  const bare = /^\s*(\d{1,9})\s*$/.exec(raw);
  if (bare) return Number(bare[1]);
  if (!TAG_LIST.test(raw)) {
    throw new AppError('validation_failed', 'If-Match must be ETags as returned by GET (e.g. "3"), or *.', {
      errors: [{ field: 'If-Match', message: 'must be one or more ETags such as "3", or *' }],
    });
  }
  const tags = [...raw.matchAll(EACH_TAG)];
  const versions = tags.filter((m) => !m[1] && /^\d{1,9}$/.test(m[2]!)).map((m) => Number(m[2]));
  return versions.length === 1 && tags.length === 1 ? versions[0]! : versions;
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
