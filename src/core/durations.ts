import { z } from 'zod';

const ISO = /^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$/;

/** Parses the ISO 8601 durations the policy uses (weeks, days, hours, minutes, seconds) into milliseconds. */
export function parseDuration(value: string): number {
  const m = ISO.exec(value);
  if (!m || value === 'P' || value.endsWith('T')) throw new Error(`"${value}" is not an ISO 8601 duration such as P14D or PT12H`);
  const [, w, d, h, min, s] = m.map((x) => (x ? Number(x) : 0));
  return ((((w! * 7 + d!) * 24 + h!) * 60 + min!) * 60 + s!) * 1000;
}

export const durationSchema = z.string().refine((v) => {
  try {
    return parseDuration(v) > 0;
  } catch {
    return false;
  }
}, 'must be a positive ISO 8601 duration such as P14D, P1W or PT4H');

export const addDuration = (from: Date, duration: string) => new Date(from.getTime() + parseDuration(duration));
