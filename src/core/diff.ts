import type { DiffEntry } from './views.ts';
import { canonicalJson } from './canonical-json.ts';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A structural diff of two JSON values, as JSON-Pointer-like paths, so approvers see exactly what changes. */
export function diffJson(before: unknown, after: unknown, path = ''): DiffEntry[] {
  if (canonicalJson(before) === canonicalJson(after)) return [];
  if (before === undefined) return [{ path: path || '/', op: 'add', after }];
  if (after === undefined) return [{ path: path || '/', op: 'remove', before }];
  if (isObject(before) && isObject(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    return keys.flatMap((k) => diffJson(before[k], after[k], `${path}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`));
  }
  if (Array.isArray(before) && Array.isArray(after)) {
    const n = Math.max(before.length, after.length);
    const out: DiffEntry[] = [];
    for (let i = 0; i < n; i++)
      out.push(...diffJson(i < before.length ? before[i] : undefined, i < after.length ? after[i] : undefined, `${path}/${i}`));
    return out;
  }
  return [{ path: path || '/', op: 'replace', before, after }];
}
