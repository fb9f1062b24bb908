import type { Request, Router } from 'express';
import { z } from 'zod';
import type { AppContext } from '../../app-context.ts';
import { AppError } from '../../core/errors.ts';
import { changeVisibility } from '../../core/visibility.ts';
import { changeDetailSchema, changeStatusSchema, changeViewSchema, optionalText, pageOf, pageQuery, text } from './api-schemas.ts';
import type { ChangeView } from '../../core/views.ts';
import { etagOf, expectedVersion, notModified } from './preconditions.ts';
import type { RouteRegistry } from './route-registry.ts';

const idParam = (req: Request) => String(req.params.id);
const withEtag = (change: ChangeView) => ({ body: change, headers: { ETag: etagOf(change.version) } });
const ifMatchNote = ' Honours If-Match with the ETag from GET (412 precondition_failed when the change moved on).';

// `notes` is Intune's word; `reason` and `comments` are accepted too, as on requests
const noteFields = {
  notes: optionalText(2000),
  reason: optionalText(2000).describe('same as notes'),
  comments: optionalText(2000).describe('same as notes'),
};
const notesOf = (b: { notes?: string; reason?: string; comments?: string }) => b.notes ?? b.reason ?? b.comments ?? null;

const decisionBody = z.strictObject({
  ...noteFields,
  approver: text(256)
    .optional()
    .describe(
      "username of the admin deciding, who must be in the change policy's approver groups and is never the author. Required unless the API key is bound to a person; without it: 403 approver_required",
    ),
});

/** Multi-admin approval (Intune MAA) over REST: every route needs `changes:write`, reads included, since changes carry admin data. */
export function registerChangeRoutes(router: Router, registry: RouteRegistry, ctx: AppContext): void {
  registry.add(router, {
    method: 'post',
    path: '/changes',
    tag: 'changes',
    scope: 'changes:write',
    summary: 'Submit a change to a protected resource for approval by another admin; the response carries the diff approvers see.',
    body: z.strictObject({
      resourceType: text(64),
      resourceId: text(512),
      before: z.json(),
      after: z.json(),
      justification: text(2000),
      requestedBy: text(256).optional().describe('username of the admin the change is submitted for'),
    }),
    response: changeViewSchema,
    successStatus: 201,
    handler: async ({ body, actor }) => {
      const view = await ctx.changes.submit(actor, body);
      return { status: 201, body: view, headers: { Location: `/api/v1/changes/${view.id}`, ETag: etagOf(view.version) } };
    },
  });

  registry.add(router, {
    method: 'get',
    path: '/changes',
    tag: 'changes',
    scope: 'changes:write',
    summary: 'List changes, newest first.',
    query: z.strictObject({
      status: changeStatusSchema.optional(),
      resourceType: text(64).optional(),
      resourceId: text(512).optional(),
      ...pageQuery,
    }),
    response: pageOf(changeViewSchema),
    handler: ({ query, actor }) => {
      const { limit, cursor, ...filter } = query;
      // a key bound to a person lists what that person may see; a system key, everything
      return ctx.changes.list({ ...filter, visibleToId: actor.id ?? undefined }, limit, cursor);
    },
  });

  registry.add(router, {
    method: 'get',
    path: '/changes/:id',
    tag: 'changes',
    scope: 'changes:write',
    summary: 'One change with its diff and history. Its version is the ETag (If-None-Match answers 304).',
    response: changeDetailSchema,
    handler: async ({ req, actor }) => {
      const change = await ctx.changes.get(idParam(req));
      if (actor.id && !(await changeVisibility(ctx.db, actor.id, change)).allowed) {
        throw new AppError('not_found', `No change with id "${change.id}" that this key's person can open.`);
      }
      const headers = { ETag: etagOf(change.version) };
      return notModified(req, change.version) ? { status: 304, headers, body: undefined } : { body: change, headers };
    },
  });

  registry.add(router, {
    method: 'post',
    path: '/changes/:id/approve',
    tag: 'changes',
    scope: 'changes:write',
    summary: `Approve a pending change as a second admin (never your own); emits change.apply.${ifMatchNote}`,
    body: decisionBody,
    response: changeViewSchema,
    handler: async ({ req, body, actor }) =>
      withEtag(
        await ctx.changes.approve(actor, idParam(req), notesOf(body), {
          approverUsername: body.approver,
          expectedVersion: expectedVersion(req),
        }),
      ),
  });

  registry.add(router, {
    method: 'post',
    path: '/changes/:id/reject',
    tag: 'changes',
    scope: 'changes:write',
    summary: `Reject a pending change as a second admin, with notes for the requester.${ifMatchNote}`,
    body: decisionBody,
    response: changeViewSchema,
    handler: async ({ req, body, actor }) =>
      withEtag(
        await ctx.changes.reject(actor, idParam(req), notesOf(body), {
          approverUsername: body.approver,
          expectedVersion: expectedVersion(req),
        }),
      ),
  });

  registry.add(router, {
    method: 'post',
    path: '/changes/:id/cancel',
    tag: 'changes',
    scope: 'changes:write',
    summary: `Cancel a pending change (the requester withdraws it).${ifMatchNote}`,
    body: z.strictObject(noteFields),
    response: changeViewSchema,
    handler: async ({ req, body, actor }) =>
      withEtag(await ctx.changes.cancel(actor, idParam(req), notesOf(body), { expectedVersion: expectedVersion(req) })),
  });
}
