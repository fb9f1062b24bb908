import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The whole first schema. Races are settled here: partial unique indexes keep one pending request per
 * (user, device, application) and one pending change per resource; the audit table refuses UPDATE/DELETE.
 */
export class InitialSchema1763780000000 implements MigrationInterface {
  name = 'InitialSchema1763780000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE identities (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        username text NOT NULL,
        display_name text NOT NULL,
        email text,
        is_guest boolean NOT NULL DEFAULT false,
        slack_user_id text,
        teams_aad_id text,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE UNIQUE INDEX identities_username_uq ON identities (lower(username));
      CREATE UNIQUE INDEX identities_slack_uq ON identities (slack_user_id) WHERE slack_user_id IS NOT NULL;
      CREATE UNIQUE INDEX identities_teams_uq ON identities (lower(teams_aad_id)) WHERE teams_aad_id IS NOT NULL;

      CREATE TABLE devices (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        client_guid text NOT NULL,
        name text NOT NULL,
        primary_user_id uuid REFERENCES identities(id) ON DELETE SET NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE UNIQUE INDEX devices_client_guid_uq ON devices (upper(client_guid));
      CREATE INDEX devices_primary_user_idx ON devices (primary_user_id);

      CREATE TABLE approver_groups (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        name text NOT NULL UNIQUE,
        slack_channel text,
        teams_channel text,
        emails jsonb NOT NULL DEFAULT '[]',
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE TABLE approver_group_members (
        group_id uuid NOT NULL REFERENCES approver_groups(id) ON DELETE CASCADE,
        identity_id uuid NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
        PRIMARY KEY (group_id, identity_id)
      );
      CREATE INDEX approver_group_members_identity_idx ON approver_group_members (identity_id);

      CREATE TABLE policies (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        name text NOT NULL UNIQUE,
        definition jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      );

      CREATE TABLE applications (
        id text PRIMARY KEY,
        name text NOT NULL,
        description text,
        version text,
        visibility text NOT NULL DEFAULT 'visible' CHECK (visibility IN ('visible', 'hidden-until-approved')),
        per_device boolean NOT NULL DEFAULT true,
        install_window jsonb,
        policy_id uuid REFERENCES policies(id) ON DELETE RESTRICT,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE UNIQUE INDEX applications_name_uq ON applications (lower(name));

      CREATE TABLE change_policies (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        name text NOT NULL UNIQUE,
        resource_types text[] NOT NULL,
        approvers text[] NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      );

      CREATE TABLE requests (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        application_id text NOT NULL REFERENCES applications(id) ON DELETE RESTRICT,
        requester_id uuid REFERENCES identities(id) ON DELETE RESTRICT,
        device_id uuid REFERENCES devices(id) ON DELETE RESTRICT,
        source text NOT NULL CHECK (source IN ('chat', 'api', 'approved-request')),
        status text NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'cancelled', 'expired', 'revoked')),
        current_stage int NOT NULL DEFAULT 0,
        justification text,
        answers jsonb NOT NULL DEFAULT '{}',
        policy jsonb NOT NULL,
        auto_install boolean NOT NULL DEFAULT true,
        install_ordered_at timestamptz,
        install_due_at timestamptz,
        uninstall_ordered_at timestamptz,
        decided_at timestamptz,
        decided_by uuid REFERENCES identities(id),
        decided_by_label text,
        decision_reason text,
        deadline_at timestamptz,
        stage_started_at timestamptz,
        next_reminder_at timestamptz,
        escalate_at timestamptz,
        escalated_at timestamptz,
        access_expires_at timestamptz,
        access_warn_at timestamptz,
        next_review_at timestamptz,
        version int NOT NULL DEFAULT 1,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE UNIQUE INDEX requests_one_pending_uq ON requests (
        application_id,
        coalesce(requester_id, '00000000-0000-0000-0000-000000000000'::uuid),
        coalesce(device_id, '00000000-0000-0000-0000-000000000000'::uuid)
      ) WHERE status = 'pending';
      CREATE UNIQUE INDEX requests_one_approved_uq ON requests (
        application_id,
        coalesce(requester_id, '00000000-0000-0000-0000-000000000000'::uuid),
        coalesce(device_id, '00000000-0000-0000-0000-000000000000'::uuid)
      ) WHERE status = 'approved';
      CREATE INDEX requests_status_idx ON requests (status, created_at DESC);
      CREATE INDEX requests_requester_idx ON requests (requester_id, created_at DESC);
      CREATE INDEX requests_device_idx ON requests (device_id);
      CREATE INDEX requests_application_idx ON requests (application_id);
      -- timers: sweepers read only the rows that are due
      CREATE INDEX requests_deadline_due ON requests (deadline_at) WHERE status = 'pending' AND deadline_at IS NOT NULL;
      CREATE INDEX requests_reminder_due ON requests (next_reminder_at) WHERE status = 'pending' AND next_reminder_at IS NOT NULL;
      CREATE INDEX requests_escalate_due ON requests (escalate_at) WHERE status = 'pending' AND escalate_at IS NOT NULL;
      CREATE INDEX requests_install_due ON requests (install_due_at) WHERE status = 'approved' AND install_due_at IS NOT NULL;
      CREATE INDEX requests_access_expiry_due ON requests (access_expires_at) WHERE status = 'approved' AND access_expires_at IS NOT NULL;
      CREATE INDEX requests_access_warn_due ON requests (access_warn_at) WHERE status = 'approved' AND access_warn_at IS NOT NULL;
      CREATE INDEX requests_review_due ON requests (next_review_at) WHERE status = 'approved' AND next_review_at IS NOT NULL;

      CREATE TABLE request_decisions (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        request_id uuid NOT NULL REFERENCES requests(id) ON DELETE CASCADE,
        stage int NOT NULL,
        round int NOT NULL DEFAULT 0,
        approver_id uuid REFERENCES identities(id),
        approver_label text NOT NULL,
        decision text NOT NULL CHECK (decision IN ('approve', 'deny')),
        reason text,
        channel text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE UNIQUE INDEX request_decisions_one_per_approver ON request_decisions (request_id, round, stage, approver_id)
        WHERE approver_id IS NOT NULL;
      CREATE INDEX request_decisions_request_idx ON request_decisions (request_id, created_at);

      CREATE TABLE access_reviews (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        request_id uuid NOT NULL REFERENCES requests(id) ON DELETE CASCADE,
        status text NOT NULL CHECK (status IN ('pending', 'kept', 'removed', 'lapsed')),
        due_at timestamptz NOT NULL,
        decided_by uuid REFERENCES identities(id),
        decided_at timestamptz,
        reason text,
        created_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE UNIQUE INDEX access_reviews_one_pending ON access_reviews (request_id) WHERE status = 'pending';

      CREATE TABLE changes (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        resource_type text NOT NULL,
        resource_id text NOT NULL,
        before jsonb,
        after jsonb,
        diff jsonb NOT NULL DEFAULT '[]',
        justification text NOT NULL,
        requester_id uuid REFERENCES identities(id),
        requester_label text NOT NULL,
        change_policy_id uuid REFERENCES change_policies(id),
        approvers text[] NOT NULL DEFAULT '{}',
        status text NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'cancelled', 'expired')),
        decided_at timestamptz,
        decided_by uuid REFERENCES identities(id),
        decided_by_label text,
        decision_notes text,
        source text NOT NULL DEFAULT 'api',
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE UNIQUE INDEX changes_one_pending_uq ON changes (resource_type, resource_id) WHERE status = 'pending';
      CREATE INDEX changes_status_idx ON changes (status, created_at DESC);

      CREATE TABLE outbox (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        seq bigserial NOT NULL,
        type text NOT NULL,
        subject_type text,
        subject_id text,
        payload jsonb NOT NULL,
        status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
        available_at timestamptz NOT NULL DEFAULT now(),
        attempts int NOT NULL DEFAULT 0,
        last_error text,
        created_at timestamptz NOT NULL DEFAULT now(),
        processed_at timestamptz
      );
      CREATE INDEX outbox_pending_idx ON outbox (available_at, seq) WHERE status = 'pending';
      CREATE INDEX outbox_subject_idx ON outbox (subject_type, subject_id);

      CREATE TABLE message_refs (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        subject_type text NOT NULL CHECK (subject_type IN ('request', 'change', 'review')),
        subject_id uuid NOT NULL,
        platform text NOT NULL CHECK (platform IN ('slack', 'teams', 'email')),
        purpose text NOT NULL,
        stage int,
        conversation_id text NOT NULL,
        message_id text NOT NULL,
        recipient_id uuid REFERENCES identities(id),
        data jsonb NOT NULL DEFAULT '{}',
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX message_refs_subject_idx ON message_refs (subject_type, subject_id);
      CREATE UNIQUE INDEX message_refs_message_uq ON message_refs (platform, conversation_id, message_id);

      CREATE TABLE conversation_refs (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        platform text NOT NULL,
        key text NOT NULL,
        kind text NOT NULL,
        reference jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (platform, key)
      );

      CREATE TABLE webhook_endpoints (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        name text NOT NULL UNIQUE,
        url text NOT NULL,
        secret text NOT NULL,
        events text[] NOT NULL,
        enabled boolean NOT NULL DEFAULT true,
        disabled_reason text,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      );

      CREATE TABLE webhook_deliveries (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        message_id text NOT NULL,
        endpoint_id uuid NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
        outbox_id uuid REFERENCES outbox(id),
        event_type text NOT NULL,
        body text NOT NULL,
        status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
        attempts int NOT NULL DEFAULT 0,
        next_attempt_at timestamptz,
        last_status_code int,
        last_error text,
        created_at timestamptz NOT NULL DEFAULT now(),
        completed_at timestamptz
      );
      CREATE UNIQUE INDEX webhook_deliveries_outbox_endpoint_uq ON webhook_deliveries (outbox_id, endpoint_id) WHERE outbox_id IS NOT NULL;
      CREATE INDEX webhook_deliveries_status_idx ON webhook_deliveries (status, created_at DESC);

      CREATE TABLE webhook_attempts (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        delivery_id uuid NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
        attempt int NOT NULL,
        status_code int,
        latency_ms int NOT NULL,
        response_excerpt text,
        error text,
        created_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, attempt);

      CREATE TABLE link_tokens (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        token_hash text NOT NULL UNIQUE,
        request_id uuid NOT NULL REFERENCES requests(id) ON DELETE CASCADE,
        approver_id uuid NOT NULL REFERENCES identities(id),
        stage int NOT NULL,
        action text NOT NULL CHECK (action IN ('approve', 'deny')),
        expires_at timestamptz NOT NULL,
        used_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now()
      );

      CREATE TABLE api_keys (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        name text NOT NULL,
        prefix text NOT NULL,
        key_hash text NOT NULL UNIQUE,
        scopes text[] NOT NULL,
        identity_id uuid REFERENCES identities(id),
        created_at timestamptz NOT NULL DEFAULT now(),
        last_used_at timestamptz,
        revoked_at timestamptz
      );

      CREATE TABLE idempotency_keys (
        api_key_id uuid NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
        key text NOT NULL,
        method text NOT NULL,
        path text NOT NULL,
        request_hash text NOT NULL,
        status_code int,
        response_headers jsonb,
        response_body text,
        created_at timestamptz NOT NULL DEFAULT now(),
        completed_at timestamptz,
        PRIMARY KEY (api_key_id, key)
      );

      CREATE TABLE audit_events (
        id bigserial PRIMARY KEY,
        occurred_at timestamptz NOT NULL,
        actor_id uuid,
        actor_label text NOT NULL,
        channel text NOT NULL,
        action text NOT NULL,
        subject_type text NOT NULL,
        subject_id text NOT NULL,
        before jsonb,
        after jsonb,
        details jsonb,
        prev_hash text NOT NULL,
        hash text NOT NULL
      );
      CREATE INDEX audit_events_subject_idx ON audit_events (subject_type, subject_id, id);
      CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'audit_events is append-only';
      END $$;
      CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events
        FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
      CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
        FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

      -- wakes the outbox relay right after a commit instead of waiting for a poll
      CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_notify('signoff_outbox', NEW.id::text);
        RETURN NEW;
      END $$;
      CREATE TRIGGER outbox_notify_insert AFTER INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION outbox_notify();
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      DROP TABLE IF EXISTS audit_events, idempotency_keys, api_keys, link_tokens, webhook_attempts, webhook_deliveries,
        webhook_endpoints, conversation_refs, message_refs, outbox, changes, access_reviews, request_decisions, requests,
        change_policies, applications, policies, approver_group_members, approver_groups, devices, identities CASCADE;
      DROP FUNCTION IF EXISTS audit_events_append_only();
      DROP FUNCTION IF EXISTS outbox_notify();
    `);
  }
}
