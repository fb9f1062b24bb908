import type { Request, Router } from 'express';
import { z } from 'zod';
import type { AppContext } from '../../app-context.ts';
import {
  decisionResultSchema, optionalText, pageOf, pageQuery, requestDetailSchema, requestStatusSchema, requestViewSchema, text,
} from './api-schemas.ts';
import type { RouteRegistry } from './route-registry.ts';

const reasonFields = {
  reason: optionalText(2000),
  /** Configuration Manager's name for the same thing */
  comments: optionalText(2000),
};

const decisionBody = z
  .strictObject({
    ...reasonFields,
    approver: text(256).optional().describe('username of the approver the calling system acts for; without it the API key decides as a trusted system'),
    stage: z.number().int().min(0).max(2).optional()
      .describe('decide only while the request is still pending at this stage (its currentStage); otherwise 409 already_decided. Without it, deny on an approved request revokes it and approve on a denied one reapproves it, except when the request was still pending as the call arrived: a call that loses a race with another decision is 409 already_decided, never a revoke or reapproval'),
  })
  .refine((b) => !(b.reason !== undefined && b.comments !== undefined), { message: 'give reason or comments, not both', path: ['comments'] });

const idParam = (req: Request) => String(req.params.id);

export function registerRequestRoutes(router: Router, registry: RouteRegistry, ctx: AppContext): void {
  registry.add(router, {
    method: 'post', path: '/approved-requests', tag: 'requests', scope: 'requests:write',
    summary: 'CreateApprovedRequest: approve an application for a user and device (or a device alone) without a prompt. Called again for the same triple it returns the same request and, with autoInstall, orders the install again.',
    body: z.strictObject({
      applicationId: text(512),
      clientGuid: text(256),
      username: text(256).optional(),
      comments: optionalText(2000),
      autoInstall: z.boolean().default(true),
    }),
    response: requestViewSchema,
    successStatus: 201,
    alsoStatus: { status: 200, description: 'Called again for the same client GUID, user and application: the same request (the install ordered again with autoInstall)' },
    handler: async ({ body, actor }) => {
      const { request, created } = await ctx.requests.createApproved(actor, body);
      return { status: created ? 201 : 200, body: request, headers: { Location: `/api/v1/requests/${request.id}` } };
    },
  });

  registry.add(router, {
    method: 'post', path: '/requests', tag: 'requests', scope: 'requests:write',
    summary: 'Submit a request for a user; it is prompted to the approvers of the first stage.',
    body: z.strictObject({
      applicationId: text(512),
      username: text(256),
      clientGuid: text(256).optional(),
      justification: optionalText(2000),
      answers: z.record(z.string().max(64), z.unknown()).optional(),
    }),
    response: requestViewSchema,
    successStatus: 201,
    handler: async ({ body, actor }) => {
      const view = await ctx.requests.submit(actor, {
        applicationId: body.applicationId, requesterUsername: body.username, clientGuid: body.clientGuid,
        justification: body.justification, answers: body.answers, source: 'api',
      });
      return { status: 201, body: view, headers: { Location: `/api/v1/requests/${view.id}` } };
    },
  });

  registry.add(router, {
    method: 'get', path: '/requests', tag: 'requests', scope: 'requests:read',
    summary: 'List requests, newest first, filtered by status, application, user and device.',
    query: z.strictObject({
      status: requestStatusSchema.optional(),
      applicationId: text(512).optional(),
      username: text(256).optional(),
      clientGuid: text(256).optional(),
      ...pageQuery,
    }),
    response: pageOf(requestViewSchema),
    handler: async ({ query }) => {
      const { limit, cursor, ...filter } = query;
      return ctx.requests.list(filter, limit, cursor);
    },
  });

  registry.add(router, {
    method: 'get', path: '/requests/:id', tag: 'requests', scope: 'requests:read',
    summary: 'One request with its stages, decisions and history.',
    response: requestDetailSchema,
    handler: ({ req }) => ctx.requests.get(idParam(req)),
  });

  for (const decision of ['approve', 'deny'] as const) {
    registry.add(router, {
      method: 'post', path: `/requests/:id/${decision}`, tag: 'requests', scope: 'requests:write',
      summary: decision === 'approve'
        ? 'Approve (for one approver, or as a trusted system); also reapproves a denied or revoked request.'
        : 'Deny a pending request; on an approved request this revokes it and orders the uninstall.',
      body: decisionBody,
      response: decisionResultSchema,
      handler: ({ req, body, actor }) =>
        ctx.requests.decide(actor, idParam(req), decision, body.reason ?? body.comments ?? null, { approverUsername: body.approver, promptStage: body.stage }),
    });
  }

  registry.add(router, {
    method: 'post', path: '/requests/:id/cancel', tag: 'requests', scope: 'requests:write',
    summary: 'Cancel a pending request.',
    body: z.strictObject({ ...reasonFields }),
    response: requestViewSchema,
    handler: ({ req, body, actor }) => ctx.requests.cancel(actor, idParam(req), body.reason ?? body.comments ?? null),
  });

  registry.add(router, {
    method: 'post', path: '/requests/:id/revoke', tag: 'requests', scope: 'requests:write',
    summary: 'Revoke an approved request; orders the uninstall when an install was ordered.',
    body: z.strictObject({ ...reasonFields }),
    response: requestViewSchema,
    handler: ({ req, body, actor }) => ctx.requests.revoke(actor, idParam(req), body.reason ?? body.comments ?? null),
  });

  registry.add(router, {
    method: 'post', path: '/requests/:id/install', tag: 'requests', scope: 'requests:write',
    summary: 'Order the install of an approved request now, ignoring its install window.',
    body: z.strictObject({}),
    response: requestViewSchema,
    handler: ({ req, actor }) => ctx.requests.installNow(actor, idParam(req)),
  });
}
