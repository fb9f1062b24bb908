import type { DomainEvent } from './events.ts';

/**
 * What the core needs from outside. Adapters (Slack, Teams, SMTP, webhooks) implement these; the core
 * never calls them inside a transaction: it writes outbox rows and the relay calls the ports afterwards.
 */
export interface ChatNotifier {
  readonly platform: 'slack' | 'teams' | 'email';
  /** Renders and posts/updates whatever this event means on the platform. Must be idempotent per event id. */
  handle(event: DomainEvent): Promise<void>;
}

export interface DeviceManager {
  /** Orders an install or uninstall; the webhook dispatcher is the stock implementation. */
  dispatch(event: DomainEvent): Promise<void>;
}

export interface MailMessage {
  to: string[];
  subject: string;
  text: string;
  html?: string;
}

export interface Mailer {
  send(message: MailMessage): Promise<void>;
}
