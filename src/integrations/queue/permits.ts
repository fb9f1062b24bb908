/** A permit held by one holder, which may give it up for a while and take it back. */
export interface HeldPermit {
  /** gives the permit back (again: a no-op) */
  stepAside(): void;
  /** takes a permit again, waiting in line, unless still holding it */
  stepBack(): Promise<void>;
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

  /** Takes a permit, as a handle that can step aside from it and back. */
  async hold(): Promise<HeldPermit> {
    await this.take();
    let holding = true;
    return {
      stepAside: () => {
        if (!holding) return;
        holding = false;
        this.give();
      },
      stepBack: async () => {
        if (holding) return;
        await this.take();
        holding = true;
      },
    };
  }
}
