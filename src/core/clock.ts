/** Time is a port so reminders, deadlines and expiry are testable without sleeping. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** A moment to the minute, UTC, without the zone: `2026-01-05 09:00` (tables whose header says UTC). */
export const utcMinute = (d: Date | string): string => new Date(d).toISOString().slice(0, 16).replace('T', ' ');

/** A moment as people read it in messages (minutes, UTC); API fields keep full ISO 8601. */
export const readableUtc = (d: Date | string): string => `${utcMinute(d)} UTC`;

/** A clock tests move by hand. */
export class ManualClock implements Clock {
  private current: number;
  constructor(start: Date | string = '2026-01-05T09:00:00Z') {
    this.current = new Date(start).getTime();
  }
  now(): Date {
    return new Date(this.current);
  }
  set(to: Date | string): void {
    this.current = new Date(to).getTime();
  }
  advance(ms: number): Date {
    this.current += ms;
    return this.now();
  }
}
