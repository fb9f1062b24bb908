import type { Request, Router } from 'express';
import { z } from 'zod';
import type { AppContext } from '../../app-context.ts';
import { reviewStatuses } from '../../core/review-queries.ts';
import { optionalText, pageOf, pageQuery, requestStatusSchema, text } from './api-schemas.ts';
import type { RouteRegistry } from './route-registry.ts';

const isoDate = z.iso.datetime();

export const reviewViewSchema = z.object({
  id: z.uuid(),
  requestId: z.uuid(),
  status: z
    .enum(reviewStatuses)
    .describe(
      'pending until answered; kept/removed by a reviewer; lapsed when nobody answered in time (access kept); closed when the access ended first',
    ),
  reviewerGroups: z
    .array(z.string())
    .describe("approver groups whose members may answer: the policy's reviewers, else its last stage's approvers"),
  application: z.object({ id: z.string(), name: z.string() }),
  requester: z.object({ id: z.uuid(), username: z.string(), displayName: z.string(), email: z.string().nullable() }).nullable(),
  device: z.object({ id: z.uuid(), clientGuid: z.string(), name: z.string() }).nullable(),
  approvedAt: isoDate.nullable(),
  approvedBy: z.string().nullable(),
  requestStatus: requestStatusSchema,
  dueAt: isoDate,
  createdAt: isoDate,
  decidedAt: isoDate.nullable(),
  decidedBy: z.object({ id: z.uuid().nullable(), label: z.string() }).nullable(),
  reason: z.string().nullable(),
});

const decisionBody = z.strictObject({
  reason: optionalText(2000),
  reviewer: text(256)
    .optional()
    .describe(
      'username of the reviewer answering, who must be in the reviewer groups and is never the requester. Required unless the API key is bound to a person; without it: 403 approver_required',
    ),
});

const idParam = (req: Request) => String(req.params.id);

/** Periodic access reviews: started by the timer sweeper, answered here or in chat. */
export function registerReviewRoutes(router: Router, registry: RouteRegistry, ctx: AppContext): void {
  registry.add(router, {
    method: 'get',
    path: '/reviews',
    tag: 'reviews',
    scope: 'requests:read',
    summary: 'List access reviews, newest first, filtered by status and request.',
    query: z.strictObject({
      status: z.enum(reviewStatuses).optional(),
      requestId: z.uuid().optional(),
      ...pageQuery,
    }),
    response: pageOf(reviewViewSchema),
    handler: async ({ query }) => {
      const { limit, cursor, ...filter } = query;
      return ctx.reviews.list(filter, limit, cursor);
    },
  });

  registry.add(router, {
    method: 'get',
    path: '/reviews/:id',
    tag: 'reviews',
    scope: 'requests:read',
    summary: 'One access review: the access under review, who may answer, and the answer once given.',
    response: reviewViewSchema,
    handler: ({ req }) => ctx.reviews.get(idParam(req)),
  });

  for (const decision of ['keep', 'remove'] as const) {
    registry.add(router, {
      method: 'post',
      path: `/reviews/:id/${decision}`,
      tag: 'reviews',
      scope: 'requests:write',
      summary:
        decision === 'keep'
          ? 'Keep the access under review. Only members of the reviewer groups (never the requester) may answer; a second answer is 409 already_decided.'
          : 'Remove the access under review: the request is revoked and, when an install was ordered, app.uninstall is sent.',
      body: decisionBody,
      response: reviewViewSchema,
      handler: async ({ req, body, actor }) => {
        const id = idParam(req);
        await ctx.reviews.decide(actor, id, decision, body.reason ?? null, { reviewerUsername: body.reviewer });
        return ctx.reviews.get(id);
      },
    });
  }
}
