import type { Router } from 'express';
import type { AppContext } from '../../app-context.ts';
import type { RouteRegistry } from './route-registry.ts';

/** Stub until the webhook delivery API lands (/api/v1/deliveries: list, redeliver). */
export function registerDeliveryRoutes(_router: Router, _registry: RouteRegistry, _ctx: AppContext): void {}
