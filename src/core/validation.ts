import type { z } from 'zod';
import { AppError } from './errors.ts';

export interface FieldProblem {
  field: string;
  message: string;
}

export function zodProblems(error: z.ZodError): FieldProblem[] {
  return error.issues.map((i) => ({ field: i.path.map(String).join('.') || '(body)', message: i.message }));
}

/** Parses input with a zod schema; failures become one validation_failed error naming each field. */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown, what = 'input'): z.infer<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const problems = zodProblems(result.error);
  throw new AppError('validation_failed', `The ${what} is not valid: ${problems.map((p) => `${p.field}: ${p.message}`).join('; ')}.`, { errors: problems });
}
