import type { Queryable } from '../db/database.ts';
import { isUuid } from './request-queries.ts';

// Reads of webhook deliveries and connector orders for the REST API and the web pages; the workers' writes are in
// src/integrations/webhooks.

export type DeliveryStatus = 'pending' | 'succeeded' | 'failed';

/** One delivery with its endpoint, as the REST API lists it. */
export interface DeliveryRow {
  id: string;
  message_id: string;
  endpoint_id: string | null;
  endpoint_name: string | null;
  endpoint_url: string | null;
  endpoint_enabled: boolean | null;
  connector: 'intune' | 'configmgr' | null;
  application_id: string | null;
  outbox_id: string | null;
  event_type: string;
  body: string;
  status: DeliveryStatus;
  attempts: number;
  next_attempt_at: Date | null;
  last_status_code: number | null;
  last_error: string | null;
  created_at: Date;
  completed_at: Date | null;
  /** created_at to the microsecond, for the list's cursor */
  cursor_ts: string;
}

const selectDelivery = `
  SELECT d.*, e.name AS endpoint_name, e.url AS endpoint_url, e.enabled AS endpoint_enabled,
         to_char(d.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS cursor_ts
    FROM webhook_deliveries d LEFT JOIN webhook_endpoints e ON e.id = d.endpoint_id`;

export function deliveryById(db: Queryable, id: string): Promise<DeliveryRow | undefined> {
  return db.maybeOne<DeliveryRow>(`${selectDelivery} WHERE d.id = $1`, [id]);
}

export interface DeliveryFilter {
  status?: DeliveryStatus;
  eventType?: string;
  target?: 'webhook' | 'intune' | 'configmgr';
  applicationId?: string;
  /** an endpoint id or name */
  endpoint?: string;
  /** only deliveries before this (created_at, id): the list's cursor */
  before?: [string, string];
}

/** Deliveries matching the filter, newest first. */
export function listDeliveries(db: Queryable, filter: DeliveryFilter, limit: number): Promise<DeliveryRow[]> {
  const where: string[] = [];
  const params: unknown[] = [];
  const add = (sql: string, ...v: unknown[]) => {
    let s = sql;
    for (const x of v) {
      params.push(x);
      s = s.replace('?', `$${params.length}`);
    }
    where.push(s);
  };
  if (filter.status) add('d.status = ?', filter.status);
  if (filter.eventType) add('d.event_type = ?', filter.eventType);
  if (filter.target === 'webhook') add('d.connector IS NULL');
  else if (filter.target) add('d.connector = ?', filter.target);
  if (filter.applicationId) add('d.application_id = ?', filter.applicationId);
  if (filter.endpoint) {
    if (isUuid(filter.endpoint)) add('(e.id = ?::uuid OR e.name = ?)', filter.endpoint, filter.endpoint);
    else add('e.name = ?', filter.endpoint);
  }
  if (filter.before) add('(d.created_at, d.id) < (?::timestamptz, ?::uuid)', ...filter.before);
  params.push(limit);
  return db.query<DeliveryRow>(
    `${selectDelivery} ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY d.created_at DESC, d.id DESC LIMIT $${params.length}`,
    params,
  );
}

export interface AttemptRow {
  attempt: number;
  status_code: number | null;
  latency_ms: number;
  response_excerpt: string | null;
  error: string | null;
  created_at: Date;
}

/** Every attempt of one delivery, first to last. */
export function deliveryAttempts(db: Queryable, deliveryId: string): Promise<AttemptRow[]> {
  return db.query<AttemptRow>('SELECT * FROM webhook_attempts WHERE delivery_id = $1 ORDER BY attempt', [deliveryId]);
}

export interface EndpointBacklogRow {
  id: string;
  name: string;
  url: string;
  enabled: boolean;
  pending: string;
  oldest: Date | null;
}

/** A webhook endpoint (id or name) with how many deliveries wait for it and since when. */
export function endpointBacklog(db: Queryable, ref: string): Promise<EndpointBacklogRow | undefined> {
  return db.maybeOne<EndpointBacklogRow>(
    `SELECT e.id, e.name, e.url, e.enabled,
            (SELECT count(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.status = 'pending') AS pending,
            (SELECT min(created_at) FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.status = 'pending') AS oldest
       FROM webhook_endpoints e WHERE ${isUuid(ref) ? 'e.id = $1::uuid' : 'e.name = $1'}`,
    [ref],
  );
}

export interface DeliverySummaryRow {
  id: string;
  event_type: string;
  status: string;
  attempts: number;
  /** the endpoint's name; null for connector orders */
  endpoint: string | null;
  connector: string | null;
  last_status_code: number | null;
  last_error: string | null;
  created_at: Date;
  completed_at: Date | null;
  request_id: string | null;
}

/** The 100 newest deliveries in one state, with the request each is about (the admin page). */
export function deliveriesWithStatus(db: Queryable, status: string): Promise<DeliverySummaryRow[]> {
  return db.query<DeliverySummaryRow>(
    `SELECT d.id, d.event_type, d.status, d.attempts, e.name AS endpoint, d.connector, d.last_status_code, d.last_error, d.created_at, d.completed_at,
            coalesce(d.request_id::text, d.body::jsonb -> 'data' ->> 'requestId') AS request_id
       FROM webhook_deliveries d LEFT JOIN webhook_endpoints e ON e.id = d.endpoint_id WHERE d.status = $1 ORDER BY d.created_at DESC LIMIT 100`,
    [status],
  );
}

export type RequestDeliveryRow = Pick<
  DeliverySummaryRow,
  'id' | 'event_type' | 'status' | 'attempts' | 'endpoint' | 'connector' | 'last_error' | 'created_at'
>;

/** Every delivery about one request, oldest first. */
export function requestDeliveries(db: Queryable, requestId: string): Promise<RequestDeliveryRow[]> {
  return db.query<RequestDeliveryRow>(
    `SELECT d.id, d.event_type, d.status, d.attempts, e.name AS endpoint, d.connector, d.last_error, d.created_at FROM webhook_deliveries d LEFT JOIN webhook_endpoints e ON e.id = d.endpoint_id
      WHERE d.request_id = $1 OR (d.body::jsonb -> 'data' ->> 'requestId') = $1::text ORDER BY d.created_at`,
    [requestId],
  );
}

export interface OrderDeliveryRow {
  event_type: string;
  status: string;
  completed_at: Date | null;
  /** the endpoint's name, else the connector */
  to_name: string | null;
}

/** The latest install or uninstall order sent for a request. */
export function latestOrderDelivery(db: Queryable, requestId: string): Promise<OrderDeliveryRow | undefined> {
  return db.maybeOne<OrderDeliveryRow>(
    `SELECT d.event_type, d.status, d.completed_at, coalesce(e.name, d.connector) AS to_name FROM webhook_deliveries d LEFT JOIN webhook_endpoints e ON e.id = d.endpoint_id
      WHERE d.event_type IN ('app.install', 'app.uninstall') AND (d.request_id = $1 OR (d.body::jsonb -> 'data' ->> 'requestId') = $1::text)
      ORDER BY d.created_at DESC LIMIT 1`,
    [requestId],
  );
}

/** When the newest delivery attempt was made (text, so equal moments compare equal); null before any. */
export async function latestAttemptAt(db: Queryable): Promise<string | null> {
  return (await db.one<{ at: string | null }>('SELECT max(created_at)::text AS at FROM webhook_attempts')).at;
}
