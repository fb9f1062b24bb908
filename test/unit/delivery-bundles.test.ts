import { describe, expect, it } from 'vitest';
import { deliveryBundles, jobIds } from '../../src/integrations/queue/queues.ts';

const d = (i: number, endpointId: string) => ({ id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, endpointId });

describe('deliveryBundles', () => {
  it('bundles each endpoint’s deliveries in order, never mixing endpoints, every delivery exactly once', () => {
    const all = [...Array.from({ length: 19 }, (_, i) => d(i, i % 2 ? 'a' : 'b')), d(99, 'c')];
    const jobs = deliveryBundles(all, 4);
    const idsOf = (j: (typeof jobs)[number]) => [j.data.deliveryId, ...(j.data.more ?? [])];
    const carried = jobs.flatMap(idsOf);
    expect(carried.sort()).toEqual(all.map((x) => x.id).sort());
    for (const j of jobs) {
      const ids = idsOf(j);
      expect(ids.length).toBeLessThanOrEqual(4);
      expect(new Set(ids.map((id) => all.find((x) => x.id === id)!.endpointId))).toEqual(new Set([j.data.endpointId]));
      // in the order the relay handed them over
      expect(ids).toEqual(all.filter((x) => ids.includes(x.id)).map((x) => x.id));
    }
    expect(jobs.filter((j) => j.data.endpointId === 'a').map((j) => idsOf(j).length)).toEqual([4, 4, 1]);
  });

  it('gives a bundle an id of its own and a lone delivery its delivery’s id, so retries and re-enqueues keep theirs', () => {
    const [bundle, lone] = deliveryBundles([d(1, 'a'), d(2, 'a'), d(3, 'b')]);
    expect(bundle!.opts.jobId).toBe(jobIds.bundle([d(1, 'a').id, d(2, 'a').id]));
    expect(bundle!.opts.jobId).not.toBe(jobIds.delivery(d(1, 'a').id));
    // the same bundle again is the same job; another grouping with the same first delivery is another job
    expect(deliveryBundles([d(1, 'a'), d(2, 'a')])[0]!.opts.jobId).toBe(bundle!.opts.jobId);
    expect(deliveryBundles([d(1, 'a'), d(4, 'a')])[0]!.opts.jobId).not.toBe(bundle!.opts.jobId);
    expect(lone!.opts.jobId).toBe(jobIds.delivery(d(3, 'b').id));
    expect(lone!.data).toEqual({ deliveryId: d(3, 'b').id, endpointId: 'b' });
  });
});
