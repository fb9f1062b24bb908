import type { Router } from 'express';
import type { AppContext } from '../../app-context.ts';
import type { RouteRegistry } from './route-registry.ts';

/** Stub until the catalog admin API lands (applications, policies, approver groups, identities, devices, webhooks). */
export function registerAdminRoutes(_router: Router, _registry: RouteRegistry, _ctx: AppContext): void {}
