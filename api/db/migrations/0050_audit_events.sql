-- Audit trail (api/audit). One row per audited request or auth event; retention by kind:
-- application 90 days, access 1 year, security forever (archived to MinIO first).
CREATE TABLE audit_events (
    id          bigserial   PRIMARY KEY,
    time        timestamptz NOT NULL,
    actor_id    text        NOT NULL DEFAULT '',
    actor_role  text        NOT NULL DEFAULT '',
    action      text        NOT NULL,
    target      text        NOT NULL DEFAULT '',
    outcome     text        NOT NULL,
    status      integer     NOT NULL DEFAULT 0,
    -- text, not inet: the value comes from proxy headers and must be recorded even when
    -- it does not parse.
    client_ip   text        NOT NULL DEFAULT '',
    request_id  text        NOT NULL DEFAULT '',
    kind        text        NOT NULL CHECK (kind IN ('application', 'access', 'security')),
    detail      jsonb
);

-- GET /audit: newest first, optionally by actor, action prefix, kind, outcome.
CREATE INDEX audit_events_time_idx ON audit_events (time DESC, id DESC);
CREATE INDEX audit_events_actor_idx ON audit_events (actor_id, time DESC, id DESC);
-- Prefix filter (action >= p AND action < p || '~') in byte order.
CREATE INDEX audit_events_action_idx ON audit_events ((action COLLATE "C"), time DESC);
-- Denied and failed requests are the interesting minority.
CREATE INDEX audit_events_outcome_idx ON audit_events (outcome, time DESC) WHERE outcome <> 'success';
-- Retention walks one kind from its oldest record; also serves the kind filter.
CREATE INDEX audit_events_kind_idx ON audit_events (kind, time, id);

-- Security events are archived without being deleted; this remembers how far.
CREATE TABLE audit_archive_marks (
    kind     text   PRIMARY KEY,
    last_id  bigint NOT NULL
);

-- The security archiver walks security events in id order past its mark.
CREATE INDEX audit_events_security_id_idx ON audit_events (id) WHERE kind = 'security';

-- GDPR anonymization keeps the network of a request but not the address: IPv4 to its
-- /24, IPv6 to its /48; anything unparsable becomes ''. Idempotent.
CREATE FUNCTION corpintel_truncate_ip(ip text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    a inet;
BEGIN
    IF ip IS NULL OR ip = '' THEN
        RETURN '';
    END IF;
    a := ip::inet;
    IF family(a) = 4 THEN
        RETURN host(network(set_masklen(a, 24)));
    END IF;
    RETURN host(network(set_masklen(a, 48)));
EXCEPTION WHEN others THEN
    RETURN '';
END
$$;
