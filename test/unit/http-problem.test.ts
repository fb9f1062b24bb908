import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { AppError } from '../../src/core/errors.ts';
import { parseInput } from '../../src/core/validation.ts';
import { toProblem } from '../../src/integrations/http/problem.ts';

describe('problem+json mapping', () => {
  it('carries the taxonomy: type, title, status, code, retryable', () => {
    const p = toProblem(new AppError('idempotency_in_progress', 'still running'), '/api/v1/requests');
    expect(p).toEqual({
      type: 'https://signoff.dev/problems/idempotency_in_progress',
      title: 'A request with this Idempotency-Key is still being processed',
      status: 409,
      detail: 'still running',
      instance: '/api/v1/requests',
      code: 'idempotency_in_progress',
      retryable: true,
    });
  });

  it('reports the current state of a conflict without clobbering the HTTP status', () => {
    const p = toProblem(
      new AppError('already_decided', 'x', {
        status: 'approved',
        decidedBy: 'Ada',
        decidedAt: '2026-01-05T09:00:00.000Z',
        title: 'sneaky',
      }),
      '/i',
    );
    expect(p).toMatchObject({
      status: 409,
      currentStatus: 'approved',
      decidedBy: 'Ada',
      decidedAt: '2026-01-05T09:00:00.000Z',
      title: 'Already decided',
    });
  });

  it('names each field at fault, whatever shape the core reported', () => {
    let zod: AppError | undefined;
    try {
      parseInput(z.strictObject({ a: z.string(), b: z.object({ c: z.number() }) }), { a: 1, b: { c: 'x' }, extra: true, more: 1 });
    } catch (e) {
      zod = e as AppError;
    }
    expect(
      toProblem(zod!, '/')
        .errors?.map((e) => e.field)
        .sort(),
    ).toEqual(['a', 'b.c', 'extra', 'more']);

    const single = toProblem(new AppError('not_found', 'No device "X" is known.', { field: 'clientGuid' }), '/');
    expect(single.errors).toEqual([{ field: 'clientGuid', message: 'No device "X" is known.' }]);
    expect(single).not.toHaveProperty('field');

    const policy = toProblem(
      new AppError('validation_failed', 'incomplete', {
        fields: { justification: 'required', answers: { usage: 'pick one' }, unknown: ['color'] },
      }),
      '/',
    );
    expect(policy.errors).toEqual([
      { field: 'justification', message: 'required' },
      { field: 'answers.usage', message: 'pick one' },
      { field: 'answers.color', message: 'is not a question of this application' },
    ]);
    expect(policy).not.toHaveProperty('fields');
  });
});
