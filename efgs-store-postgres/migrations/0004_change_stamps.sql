-- Change stamps (efgs_core::store::STAMP_LAG, ADR 0030): one counter per kind of data the
-- gateway keeps in memory between requests, bumped by a trigger in the same transaction as the
-- change, so a stamp becomes visible together with what it stands for. Every instance polls this
-- table (one tiny read a few times a second) instead of reading the caller's trust-list row and
-- the batch row on every request. Any write bumps the stamp, also one made by hand with psql.
--
-- The row triggers are deferred to the end of the transaction: the stamp's row lock is the last
-- lock a writer takes, so no writer waits for another lock while holding it (an immediate
-- trigger deadlocked a trust-list upsert, which locks the stamp and then the certificate row,
-- against a revocation, which locks them in the other order).
CREATE TABLE change_stamps (
    name  text   PRIMARY KEY,
    stamp bigint NOT NULL DEFAULT 0
);
INSERT INTO change_stamps (name) VALUES ('certificates'), ('batches');

CREATE FUNCTION bump_change_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE change_stamps SET stamp = stamp + 1 WHERE name = TG_TABLE_NAME;
    RETURN NULL;
END;
$$;

CREATE CONSTRAINT TRIGGER certificates_change_stamp
    AFTER INSERT OR UPDATE OR DELETE ON certificates
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION bump_change_stamp();
CREATE TRIGGER certificates_truncate_stamp
    AFTER TRUNCATE ON certificates
    FOR EACH STATEMENT EXECUTE FUNCTION bump_change_stamp();
CREATE CONSTRAINT TRIGGER batches_change_stamp
    AFTER INSERT OR UPDATE OR DELETE ON batches
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION bump_change_stamp();
CREATE TRIGGER batches_truncate_stamp
    AFTER TRUNCATE ON batches
    FOR EACH STATEMENT EXECUTE FUNCTION bump_change_stamp();
