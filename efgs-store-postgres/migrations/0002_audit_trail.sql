-- The operator's audit trail (ADR 0017-0019): hash-chained events, the chain head, and the
-- delivery cursor and lease of each push sink.

-- One row: the last record ever appended. Appends lock it (SELECT ... FOR UPDATE), so the
-- chain stays linear with any number of instances, and numbering continues after retention
-- removed every record.
CREATE TABLE audit_chain_head (
    id   smallint PRIMARY KEY CHECK (id = 1),
    seq  bigint   NOT NULL,
    hash bytea    NOT NULL
);
INSERT INTO audit_chain_head (id, seq, hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'));

CREATE TABLE audit_events (
    seq       bigint      PRIMARY KEY,
    at        timestamptz NOT NULL,
    line      text        NOT NULL,
    prev_hash bytea       NOT NULL,
    hash      bytea       NOT NULL
);
CREATE INDEX audit_events_at_idx ON audit_events (at);

CREATE TABLE audit_push (
    sink        text        PRIMARY KEY,
    acked_seq   bigint      NOT NULL,
    owner       text        NOT NULL,
    lease_until timestamptz NOT NULL
);
