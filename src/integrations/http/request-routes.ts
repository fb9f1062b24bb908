import type { Request, Router } from 'express';
import { z } from 'zod';
import type { AppContext } from '../../app-context.ts';
import { AppError } from '../../core/errors.ts';
import { requestVisibility } from '../../core/visibility.ts';
import {
  decisionResultSchema,
  optionalText,
  pageOf,
  pageQuery,
  requestDetailSchema,
  requestStatusSchema,
  requestViewSchema,
  text,
} from './api-schemas.ts';
import { etagOf, expectedVersion, notModified } from './preconditions.ts';
import type { RouteRegistry } from './route-registry.ts';

const reasonFields = {
  reason: optionalText(2000),
  /** Configuration Manager's name for the same thing */
  comments: optionalText(2000),
};

const approverField = text(256)
  .optional()
  .describe(
    'username of the person deciding, who must be eligible (an approver of the stage, never the requester). Required unless the API key is bound to a person (then it may only name that person); without it: 403 approver_required',
  );

const oneReason = (b: { reason?: string; comments?: string }) => !(b.reason !== undefined && b.comments !== undefined);
const oneReasonIssue = { message: 'give reason or comments, not both', path: ['comments'] };

const decisionBody = z
  .strictObject({
    ...reasonFields,
    approver: approverField,
    stage: z
      .number()
      .int()
      .min(0)
      .max(2)
      .optional()
      .describe(
        'decide only while the request is still pending at this stage (its currentStage); otherwise 409 already_decided. Without it, the stage pending when the request is locked is decided',
      ),
  })
  .refine(oneReason, oneReasonIssue);

const reversalBody = z.strictObject({ ...reasonFields, approver: approverField }).refine(oneReason, oneReasonIssue);

const ifMatchNote = ' Honours If-Match with the ETag from GET (412 precondition_failed when the request changed since).';

const idParam = (req: Request) => String(req.params.id);

export function registerRequestRoutes(router: Router, registry: RouteRegistry, ctx: AppContext): void {
  registry.add(router, {
    method: 'post',
    path: '/approved-requests',
    tag: 'requests',
    scope: 'requests:write',
    summary:
      'CreateApprovedRequest: approve an application for a user and device (or a device alone) without a prompt. Called again for the same triple it returns the same request and, with autoInstall, orders the install again.',
    body: z.strictObject({
      applicationId: text(512),
      clientGuid: text(256),
      username: text(256).optional(),
      comments: optionalText(2000),
      autoInstall: z.boolean().default(true),
    }),
    response: requestViewSchema,
    successStatus: 201,
    alsoStatus: {
      status: 200,
      description:
        'Called again for the same client GUID, user and application: the same request (the install ordered again with autoInstall)',
    },
    handler: async ({ body, actor }) => {
      const { request, created } = await ctx.requests.createApproved(actor, body);
      return {
        status: created ? 201 : 200,
        body: request,
        headers: { Location: `/api/v1/requests/${request.id}`, ETag: etagOf(request.version) },
      };
    },
  });

  registry.add(router, {
    method: 'post',
    path: '/requests',
    tag: 'requests',
    scope: 'requests:write',
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
        applicationId: body.applicationId,
        requesterUsername: body.username,
        clientGuid: body.clientGuid,
        justification: body.justification,
        answers: body.answers,
        source: 'api',
      });
      return { status: 201, body: view, headers: { Location: `/api/v1/requests/${view.id}`, ETag: etagOf(view.version) } };
    },
  });

  registry.add(router, {
    method: 'get',
    path: '/requests',
    tag: 'requests',
    scope: 'requests:read',
    summary: 'List requests, newest first, filtered by status, application, user and device.',
    query: z.strictObject({
      status: requestStatusSchema.optional(),
      applicationId: text(512).optional(),
      username: text(256).optional(),
      clientGuid: text(256).optional(),
      ...pageQuery,
    }),
    response: pageOf(requestViewSchema),
    handler: async ({ query, actor }) => {
      const { limit, cursor, ...filter } = query;
      // a key bound to a person lists what that person may see; a system key, everything
      return ctx.requests.list({ ...filter, visibleToId: actor.id ?? undefined }, limit, cursor);
    },
  });

  registry.add(router, {
    method: 'get',
    path: '/requests/:id',
    tag: 'requests',
    scope: 'requests:read',
    summary: 'One request with its stages, decisions and history. Its version is the ETag (If-None-Match answers 304).',
    response: requestDetailSchema,
    handler: async ({ req, actor }) => {
      const detail = await ctx.requests.get(idParam(req));
      if (actor.id && !(await requestVisibility(ctx.db, actor.id, detail)).allowed) {
        throw new AppError('not_found', `No request with id "${detail.id}" that this key's person can open.`);
      }
      const headers = { ETag: etagOf(detail.version) };
      return notModified(req, detail.version) ? { status: 304, headers, body: undefined } : { body: detail, headers };
    },
  });

  for (const decision of ['approve', 'deny'] as const) {
    registry.add(router, {
      method: 'post',
      path: `/requests/:id/${decision}`,
      tag: 'requests',
      scope: 'requests:write',
      summary:
        (decision === 'approve'
          ? 'Approve a pending request for its current stage (or the given one), as an eligible approver.'
          : 'Deny a pending request for its current stage (or the given one), as an eligible approver.') +
        ' On a request that is no longer pending nothing changes: 409 already_decided says who decided and when (revoke and reapprove are their own routes). Concurrent calls yield one decision.' +
        ifMatchNote,
      body: decisionBody,
      response: decisionResultSchema,
      handler: async ({ req, body, actor }) => {
        const result = await ctx.requests.decide(actor, idParam(req), decision, body.reason ?? body.comments ?? null, {
          approverUsername: body.approver,
          stage: body.stage,
          expectedVersion: expectedVersion(req),
        });
        return { body: result, headers: { ETag: etagOf(result.request.version) } };
      },
    });
  }

  registry.add(router, {
    method: 'post',
    path: '/requests/:id/cancel',
    tag: 'requests',
    scope: 'requests:write',
    summary: `Cancel a pending request.${ifMatchNote}`,
    body: z.strictObject({ ...reasonFields }),
    response: requestViewSchema,
    handler: async ({ req, body, actor }) => {
      const view = await ctx.requests.cancel(actor, idParam(req), body.reason ?? body.comments ?? null, {
        expectedVersion: expectedVersion(req),
      });
      return { body: view, headers: { ETag: etagOf(view.version) } };
    },
  });

  for (const reversal of ['revoke', 'reapprove'] as const) {
    registry.add(router, {
      method: 'post',
      path: `/requests/:id/${reversal}`,
      tag: 'requests',
      scope: 'requests:write',
      summary:
        (reversal === 'revoke'
          ? "Revoke an approved request (approved → revoked), with a reason, as one of its policy's approvers; orders the uninstall when an install was ordered."
          : 'Reapprove a denied or revoked request (→ approved), with a reason, as an approver of the stage that said no (the last stage after a revoke); orders the install.') +
        ' Answers the request with the outcome.' +
        ifMatchNote,
      body: reversalBody,
      response: requestViewSchema.extend({ outcome: z.enum(['revoked', 'reapproved']) }),
      handler: async ({ req, body, actor }) => {
        const reason = body.reason ?? body.comments ?? null;
        const opts = { approverUsername: body.approver, expectedVersion: expectedVersion(req) };
        const result =
          reversal === 'revoke'
            ? await ctx.requests.revoke(actor, idParam(req), reason, opts)
            : await ctx.requests.reapprove(actor, idParam(req), reason, opts);
        return { body: { ...result.request, outcome: result.outcome }, headers: { ETag: etagOf(result.request.version) } };
      },
    });
  }

  registry.add(router, {
    method: 'post',
    path: '/requests/:id/install',
    tag: 'requests',
    scope: 'requests:write',
    summary: 'Order the install of an approved request now, ignoring its install window.',
    body: z.strictObject({}),
    response: requestViewSchema,
    handler: ({ req, actor }) => ctx.requests.installNow(actor, idParam(req)),
  });
}
