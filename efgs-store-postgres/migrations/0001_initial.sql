-- efgs-rs PostgreSQL schema, version 1.
-- Applied by efgs-store-postgres when a store connects (see src/migrate.rs).
-- The uniqueness promises of the federation are enforced here by constraints, not only by
-- application checks:
--   * batches_tag_key, batches_date_seq_key: one download batch per tag / per (day, number);
--   * uploads_country_tag_key: a batchTag is used once per uploading country (decisions 3);
--   * keys_dup_hash_key: a diagnosis key is stored at most once (protocol 1.2 step 8).

-- Download batches (protocol 5). `next_tag` is the link to the following batch (any day).
CREATE TABLE batches (
    id           bigserial   PRIMARY KEY,
    tag          text        NOT NULL,
    batch_date   date        NOT NULL,
    seq          integer     NOT NULL CHECK (seq >= 1),
    created_at   timestamptz NOT NULL,
    next_tag     text,
    key_count    integer     NOT NULL CHECK (key_count >= 0),
    format_major integer     NOT NULL,
    format_minor integer     NOT NULL,
    CONSTRAINT batches_tag_key UNIQUE (tag),
    CONSTRAINT batches_date_seq_key UNIQUE (batch_date, seq)
);
CREATE INDEX batches_created_at_idx ON batches (created_at);

-- One row per accepted upload. Its keys are in `keys`; `batch_id` is set when the batcher puts
-- the upload into a download batch. An upload is never split across batches.
CREATE TABLE uploads (
    id                  bigserial   PRIMARY KEY,
    country             text        NOT NULL,
    batch_tag           text        NOT NULL,
    batch_signature     text        NOT NULL,
    uploader_thumbprint text        NOT NULL,
    signer_thumbprint   text        NOT NULL,
    format_major        integer     NOT NULL,
    format_minor        integer     NOT NULL,
    content_digest      bytea       NOT NULL,
    key_count           integer     NOT NULL CHECK (key_count >= 0),
    created_at          timestamptz NOT NULL,
    batch_id            bigint      REFERENCES batches (id),
    CONSTRAINT uploads_country_tag_key UNIQUE (country, batch_tag)
);
CREATE INDEX uploads_pending_idx ON uploads (id) WHERE batch_id IS NULL AND key_count > 0;
CREATE INDEX uploads_batch_idx ON uploads (batch_id, id);
CREATE INDEX uploads_created_at_idx ON uploads (created_at);

-- One row per diagnosis key. The whole key (protobuf encoding of DiagnosisKey) is one
-- AES-256-GCM blob in `payload`, sealed with the per-row `nonce` under key `key_id`, with the
-- row's `dup_hash` in the associated data (src/crypto.rs). `dup_hash` is the keyed duplicate
-- hash of the key's canonical bytes. A key's creation time is its upload's `created_at`.
-- Rows are written with binary COPY, so the table carries only what the queries need: the
-- primary key (upload, position: download order, and deletion with the upload) and the
-- duplicate-hash constraint. There is deliberately no foreign key to `uploads`: its per-row
-- trigger check made bulk key inserts 1.5-1.9 times slower here; keys are written only in the transaction
-- that inserts their upload row, and deleted in the statement that deletes it.
CREATE TABLE keys (
    upload_id bigint   NOT NULL,
    position  integer  NOT NULL,
    dup_hash  bytea    NOT NULL,
    key_id    smallint NOT NULL,
    nonce     bytea    NOT NULL,
    payload   bytea    NOT NULL,
    CONSTRAINT keys_pkey PRIMARY KEY (upload_id, position),
    CONSTRAINT keys_dup_hash_key UNIQUE (dup_hash)
);

-- The trust list (protocol 10).
CREATE TABLE certificates (
    id         bigserial   PRIMARY KEY,
    created_at timestamptz NOT NULL,
    thumbprint text        NOT NULL,
    country    text        NOT NULL,
    cert_type  text        NOT NULL CHECK (cert_type IN ('AUTHENTICATION', 'SIGNING', 'CALLBACK')),
    revoked    boolean     NOT NULL DEFAULT false,
    signature  text        NOT NULL,
    pem        text        NOT NULL,
    CONSTRAINT certificates_thumbprint_key UNIQUE (thumbprint)
);

-- Statistics (protocol 1.2, 1.3, 8); never deleted.
CREATE TABLE upload_stats (
    id             bigserial   PRIMARY KEY,
    country        text        NOT NULL,
    batch_tag      text        NOT NULL,
    number_of_keys bigint      NOT NULL,
    created_at     timestamptz NOT NULL
);
CREATE INDEX upload_stats_created_at_idx ON upload_stats (created_at);

CREATE TABLE download_stats (
    id             bigserial   PRIMARY KEY,
    country        text        NOT NULL,
    batch_tag      text        NOT NULL,
    number_of_keys bigint      NOT NULL,
    requested_at   timestamptz NOT NULL
);
CREATE INDEX download_stats_requested_at_idx ON download_stats (requested_at);

CREATE TABLE cleanup_stats (
    id          bigserial   PRIMARY KEY,
    ran_at      timestamptz NOT NULL,
    cutoff      timestamptz NOT NULL,
    deleted     bigint      NOT NULL,
    keys_before bigint      NOT NULL,
    keys_after  bigint      NOT NULL
);
CREATE INDEX cleanup_stats_ran_at_idx ON cleanup_stats (ran_at);
