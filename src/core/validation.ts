import type { z } from 'zod';
import { AppError } from './errors.ts';

export interface FieldProblem {
  field: string;
  message: string;
}

export function zodProblems(error: z.ZodError): FieldProblem[] {
  return error.issues.flatMap((i) => {
    const at = i.path.map(String);
    // zod reports unknown keys on the parent object; name each key as the field at fault
    if (i.code === 'unrecognized_keys') return i.keys.map((k) => ({ field: [...at, k].join('.'), message: 'is not a known field' }));
    return [{ field: at.join('.') || '(body)', message: i.message }];
  });
}

/** Parses input with a zod schema; failures become one validation_failed error naming each field. */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown, what = 'input'): z.infer<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const problems = zodProblems(result.error);
  throw new AppError(
    'validation_failed',
    `The ${what} is not valid: ${problems.map((p) => `${p.field}: ${p.message.replace(/\.$/, '')}`).join('; ')}.`,
    { errors: problems },
  );
}

/**
 * The longest text a command keeps, whatever the channel: REST's schemas say so before the core is called, but a
 * chat modal or card reaches it with whatever the client sent.
 */
export const TEXT_LIMITS = { reason: 2000, justification: 2000, resourceType: 64, resourceId: 512 } as const;

export function withinLimit(field: keyof typeof TEXT_LIMITS, value: string | null | undefined, name: string = field): void {
  const max = TEXT_LIMITS[field];
  if (typeof value === 'string' && value.length > max) {
    throw new AppError('validation_failed', `Keep the ${name} under ${max} characters (it has ${value.length}).`, { field: name });
  }
}
