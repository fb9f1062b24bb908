import { describe, expect, it } from 'vitest';
import { diffJson } from '../../../src/core/diff.ts';

describe('structural diff', () => {
  it('lists added, removed and replaced leaves by path', () => {
    const before = { name: 'Install Visio', runAs: 'system', args: ['/q'], meta: { owner: 'ada' } };
    const after = { name: 'Install Visio', runAs: 'user', args: ['/q', '/norestart'], meta: {}, schedule: 'daily' };
    expect(diffJson(before, after)).toEqual([
      { path: '/args/1', op: 'add', after: '/norestart' },
      { path: '/meta/owner', op: 'remove', before: 'ada' },
      { path: '/runAs', op: 'replace', before: 'system', after: 'user' },
      { path: '/schedule', op: 'add', after: 'daily' },
    ]);
  });
  it('is empty for equal values whatever the key order', () => {
    expect(diffJson({ a: 1, b: [1, { c: 2 }] }, { b: [1, { c: 2 }], a: 1 })).toEqual([]);
  });
  it('treats a new resource as one add at the root', () => {
    expect(diffJson(null, { a: 1 })).toEqual([{ path: '/', op: 'replace', before: null, after: { a: 1 } }]);
  });
});
