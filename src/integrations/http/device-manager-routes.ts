import type { Router } from 'express';
import { z } from 'zod';
import type { AppContext } from '../../app-context.ts';
import { deviceManagerKinds } from '../../core/device-manager.ts';
import { applicationConnector } from '../../core/directory.ts';
import { AppError } from '../../core/errors.ts';
import { allDeviceManagerStatuses, deviceManagerStatusOf } from '../../db/device-manager-status.ts';
import { checkNow } from '../device-managers/connector-checks.ts';
import { deviceManagersFor } from '../device-managers/connector-registry.ts';
import type { RouteRegistry } from './route-registry.ts';

export const deviceManagerStatusView = z.object({
  kind: z.enum(deviceManagerKinds),
  state: z
    .enum(['ok', 'error', 'unchecked'])
    .describe('ok: the last check or order succeeded; error: it failed (see message); unchecked: not known yet'),
  message: z.string().nullable().describe('what the connector last found, in words an administrator can act on'),
  checkedAt: z.string().nullable(),
  lastSuccessAt: z.string().nullable(),
  lastFailureAt: z.string().nullable(),
});

/** Connector health per application, for the admin web app and operators; the same status shows on each application. */
export function registerDeviceManagerRoutes(router: Router, registry: RouteRegistry, ctx: AppContext): void {
  registry.add(router, {
    method: 'get',
    path: '/device-managers',
    tag: 'applications',
    scope: 'admin',
    summary: 'The device-manager connector of every application that has one, with its status.',
    response: z.object({ items: z.array(deviceManagerStatusView.extend({ applicationId: z.string() })) }),
    handler: async () => ({ items: await allDeviceManagerStatuses(ctx.db) }),
  });

  registry.add(router, {
    method: 'post',
    path: '/applications/:ref/device-manager/check',
    tag: 'applications',
    scope: 'admin',
    summary:
      "Check the application's connector settings against Intune or Configuration Manager now (after fixing them there) and record the result.",
    response: deviceManagerStatusView,
    handler: async ({ params }) => {
      const app = await applicationConnector(ctx.db, params.ref!);
      if (!app) throw new AppError('not_found', `No application "${params.ref}" exists.`);
      if (!app.device_manager) throw new AppError('invalid_transition', `${app.name} has no deviceManager to check.`);
      await checkNow(ctx.db, deviceManagersFor(ctx.config), { ...app, device_manager: app.device_manager });
      return (await deviceManagerStatusOf(ctx.db, app.id))!;
    },
  });
}
