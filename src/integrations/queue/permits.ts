/** A permit held by one holder until it gives it back. */
export interface HeldPermit {
  /** gives the permit back (again: a no-op, so an early give-back and a final one may both run) */
  giveBack(): void;
}

/** A counting semaphore: at most `size` holders at once, the others wait in arrival order. */
export class Permits {
  private readonly waiting: (() => void)[] = [];

  constructor(private free: number) {}

  async take(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  give(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }

  /** Takes a permit, as a handle whose give-back is idempotent. */
  async hold(): Promise<HeldPermit> {
    await this.take();
    let holding = true;
    return {
      giveBack: () => {
        if (!holding) return;
        holding = false;
        this.give();
      },
    };
  }
}
