-- Callback subscriptions and their delivery state (protocol 1.5-1.7 and 7, decisions 8-10).
-- A subscription's delivery tasks are the batches after `position` (a `batches.id`, in cut
-- order: batch ids are taken under the batching lock), delivered oldest first. A task is leased
-- to one holder (`lease_holder` until `lease_until`); an expired lease is taken over by any
-- instance. A subscription that failed its last retry is suspended (`suspended_at`), not
-- deleted; a PUT re-activates it.
CREATE TABLE callback_subscriptions (
    id              bigserial   PRIMARY KEY,
    country         text        NOT NULL,
    callback_id     text        NOT NULL,
    url             text        NOT NULL,
    created_at      timestamptz NOT NULL,
    position        bigint      NOT NULL DEFAULT 0,
    retries         integer     NOT NULL DEFAULT 0 CHECK (retries >= 0),
    next_attempt_at timestamptz,
    suspended_at    timestamptz,
    lease_holder    text,
    lease_until     timestamptz,
    CONSTRAINT callback_subscriptions_country_id_key UNIQUE (country, callback_id)
);
CREATE INDEX callback_subscriptions_active_idx ON callback_subscriptions (id)
    WHERE suspended_at IS NULL;
