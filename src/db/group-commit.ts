export interface GroupWindow {
  /** how long the first call of a batch may wait for companions (a few ms at most) */
  maxWaitMs: number;
  /** whether more calls are expected soon; when not, the batch goes at the end of this event-loop turn */
  expectMore: () => boolean;
}

/**
 * Group commit: calls that arrive while a flush is in flight, or in the same event-loop turn, share the next flush
 * (one SQL statement for all of them). A lone call waits only for the turn to end (setImmediate); while others are
 * expected (attempts of this process still sending) the first call of a batch waits up to `maxWaitMs` for them.
 */
export class GroupCommit<I, O> {
  private queue: { item: I; resolve: (o: O) => void; reject: (e: unknown) => void }[] = [];
  private running = false;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly flush: (items: I[]) => Promise<O[]>,
    private readonly window: GroupWindow = { maxWaitMs: 0, expectMore: () => false },
    private readonly maxBatch = 256,
  ) {}

  /** Resolves with this item's result once the flush holding it is done (rejects when that flush fails). */
  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (this.running && !this.timer) return;
      const waitMs = this.queue.length < this.maxBatch && this.window.expectMore() ? this.window.maxWaitMs : 0;
      if (this.timer && waitMs > 0) return;
      if (this.timer) clearTimeout(this.timer);
      this.running = true;
      this.timer = null;
      if (waitMs > 0) this.timer = setTimeout(() => this.start(), waitMs);
      else setImmediate(() => this.start());
    });
  }

  private start(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    void this.drain();
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      try {
        const out = await this.flush(batch.map((b) => b.item));
        batch.forEach((b, i) => b.resolve(out[i] as O));
      } catch (e) {
        for (const b of batch) b.reject(e);
      }
    }
    this.running = false;
  }
}
