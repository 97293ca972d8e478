-- The change feed (`GET /changes`) and exactly-once creates (`Idempotency-Key`).

-- Each account's change counter. Every writing transaction takes the next value first (the
-- API's writing session statement, src/store/users.rs; `take_change_seq` below for any other
-- writer), which locks the account's row until the transaction ends: one
-- account's writes therefore commit in counter order, and a reader that sees change n sees
-- every change before it. A sequence or a clock would not be commit-ordered (a reader could
-- see 7 committed before 6). The lock serializes one account's writes only.
ALTER TABLE users ADD COLUMN change_seq bigint NOT NULL DEFAULT 0;

-- The counter value of each task's and project's latest change is kept on its own row. No
-- index covers it, so a PATCH that changes no indexed column stays a HOT update.
ALTER TABLE tasks ADD COLUMN change_seq bigint NOT NULL DEFAULT 0;
ALTER TABLE projects ADD COLUMN change_seq bigint NOT NULL DEFAULT 0;

-- The change log: one row per change, in counter order (its key is the feed's order; ties
-- within one transaction by kind and id), appended by the triggers below. A row is an
-- object's *latest* change when the object's `change_seq` still names it, or when it is a
-- deletion (a tombstone, kept for CHANGES_RETENTION_DAYS); the feed shows only those, so it
-- is coalesced, and the purge removes the superseded ones. Appending costs a write one heap
-- tuple and one index entry; keeping one row per object instead (updated in place) cost a
-- non-HOT update, two index entries and a lookup (measured in docs/PERFORMANCE.md). No
-- foreign key (its check would run on every append): the purge removes the rows of deleted
-- accounts.
CREATE TABLE changes (
    owner_id   uuid        NOT NULL,
    seq        bigint      NOT NULL,
    kind       text        NOT NULL,
    id         uuid        NOT NULL,
    deleted    boolean     NOT NULL DEFAULT false,
    changed_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT changes_pkey PRIMARY KEY (owner_id, seq, kind, id),
    CONSTRAINT changes_kind_valid CHECK (kind IN ('task', 'project')),
    CONSTRAINT changes_seq_nonnegative CHECK (seq >= 0)
);
-- The purge of expired tombstones.
CREATE INDEX changes_tombstones_idx ON changes (changed_at) WHERE deleted;

-- What exists already is in the feed from the beginning.
INSERT INTO changes (owner_id, seq, kind, id) SELECT owner_id, 0, 'task', id FROM tasks;
INSERT INTO changes (owner_id, seq, kind, id) SELECT owner_id, 0, 'project', id FROM projects;

-- The account's counter value for the current transaction: taken (incremented, the row
-- locked) on the first call, then remembered in a transaction-local setting, so a statement
-- that writes many rows (a label rename, a project's cascade) stamps them all with one
-- value. NULL when the account row is gone (the account itself is being deleted). The API
-- takes it in its session statement already; this is for any other writer (and a safety
-- net). SECURITY DEFINER, search path pinned, like the count triggers.
CREATE FUNCTION take_change_seq(owner uuid) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
    taken text := current_setting('taskapi.change_seq', true);
    seq   bigint;
BEGIN
    IF taken LIKE owner::text || '/%' THEN
        RETURN split_part(taken, '/', 2)::bigint;
    END IF;
    UPDATE users SET change_seq = change_seq + 1 WHERE id = owner RETURNING change_seq INTO seq;
    IF seq IS NOT NULL THEN
        PERFORM set_config('taskapi.change_seq', owner::text || '/' || seq, true);
    END IF;
    RETURN seq;
END
$$;
REVOKE ALL ON FUNCTION take_change_seq(uuid) FROM PUBLIC;

-- Stamps a task or project (TG_ARGV[0]: its kind) with the transaction's counter value and
-- appends the change to the log, before the row is written. A row written twice in one
-- transaction is logged once.
CREATE FUNCTION stamp_change() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
    taken text := current_setting('taskapi.change_seq', true);
    stamp bigint;
BEGIN
    -- The value the session statement took, read here rather than through take_change_seq:
    -- one function call (and its search-path switch) fewer on every write.
    IF taken LIKE NEW.owner_id::text || '/%' THEN
        stamp := split_part(taken, '/', 2)::bigint;
    ELSE
        stamp := take_change_seq(NEW.owner_id);
    END IF;
    IF stamp IS NULL OR (TG_OP = 'UPDATE' AND OLD.change_seq = stamp) THEN
        RETURN NEW;
    END IF;
    NEW.change_seq := stamp;
    INSERT INTO changes (owner_id, seq, kind, id) VALUES (NEW.owner_id, stamp, TG_ARGV[0], NEW.id);
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION stamp_change() FROM PUBLIC;

-- Appends a deletion (a tombstone). A project's deletion cascades to its tasks, whose own
-- triggers append theirs in the same transaction. An object changed earlier in the same
-- transaction already has a row at this value: it becomes the tombstone. Nothing when the
-- account itself is being deleted.
CREATE FUNCTION record_deletion() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
    stamp bigint := take_change_seq(OLD.owner_id);
BEGIN
    IF stamp IS NOT NULL THEN
        INSERT INTO changes AS c (owner_id, seq, kind, id, deleted)
            VALUES (OLD.owner_id, stamp, TG_ARGV[0], OLD.id, true)
        ON CONFLICT (owner_id, seq, kind, id) DO UPDATE SET deleted = true;
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION record_deletion() FROM PUBLIC;

-- Every change the API makes to a task or project bumps its version (label renames
-- included), so an UPDATE that leaves the version alone (the trigger-kept
-- `projects.task_count`, which no response shows) is not a change to report.
CREATE TRIGGER tasks_stamp_change_insert BEFORE INSERT ON tasks
    FOR EACH ROW EXECUTE FUNCTION stamp_change('task');
CREATE TRIGGER tasks_stamp_change_update BEFORE UPDATE ON tasks
    FOR EACH ROW WHEN (OLD.version IS DISTINCT FROM NEW.version)
    EXECUTE FUNCTION stamp_change('task');
CREATE TRIGGER tasks_record_deletion AFTER DELETE ON tasks
    FOR EACH ROW EXECUTE FUNCTION record_deletion('task');
CREATE TRIGGER projects_stamp_change_insert BEFORE INSERT ON projects
    FOR EACH ROW EXECUTE FUNCTION stamp_change('project');
CREATE TRIGGER projects_stamp_change_update BEFORE UPDATE ON projects
    FOR EACH ROW WHEN (OLD.version IS DISTINCT FROM NEW.version)
    EXECUTE FUNCTION stamp_change('project');
CREATE TRIGGER projects_record_deletion AFTER DELETE ON projects
    FOR EACH ROW EXECUTE FUNCTION record_deletion('project');

-- Exactly-once creates: a key, claimed in the same transaction as the resource it creates,
-- remembers the request's digest and the resource as first created (`response`, the row as
-- JSON) for 24 hours. A failed create rolls its claim back with it.
CREATE TABLE idempotency_keys (
    owner_id       uuid        NOT NULL,
    route          text        NOT NULL,
    key            text        NOT NULL,
    request_digest bytea       NOT NULL,
    -- Which request holds the claim: the statements after the claim act only on their own.
    claim          uuid        NOT NULL,
    response       jsonb,
    claimed_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (owner_id, route, key),
    CONSTRAINT idempotency_keys_owner_id_fkey FOREIGN KEY (owner_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT idempotency_keys_route_valid CHECK (route IN ('tasks', 'projects')),
    -- 1 to 255 visible ASCII characters.
    CONSTRAINT idempotency_keys_key_valid CHECK (key ~ '^[!-~]{1,255}$'),
    CONSTRAINT idempotency_keys_digest_valid CHECK (length(request_digest) = 32)
);
CREATE INDEX idempotency_keys_claimed_idx ON idempotency_keys (claimed_at);

-- The second wall, as on tasks. The purge (a background task of the API, with no caller)
-- sees and deletes only what has expired, and only while it says it is purging.
ALTER TABLE changes ENABLE ROW LEVEL SECURITY;
ALTER TABLE changes FORCE ROW LEVEL SECURITY;
CREATE POLICY changes_owner_only ON changes
    USING (owner_id = nullif(current_setting('taskapi.user_id', true), '')::uuid)
    WITH CHECK (owner_id = nullif(current_setting('taskapi.user_id', true), '')::uuid);
-- The purge compares log rows of every account with each other (which is superseded) and
-- with `users` (whose account is gone): it sees the log's keys, never a task's content.
CREATE POLICY changes_purge_select ON changes FOR SELECT
    USING (current_setting('taskapi.purging', true) = 'on');
CREATE POLICY changes_purge_delete ON changes FOR DELETE
    USING (current_setting('taskapi.purging', true) = 'on');

ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY idempotency_keys_owner_only ON idempotency_keys
    USING (owner_id = nullif(current_setting('taskapi.user_id', true), '')::uuid)
    WITH CHECK (owner_id = nullif(current_setting('taskapi.user_id', true), '')::uuid);
CREATE POLICY idempotency_keys_purge_select ON idempotency_keys FOR SELECT
    USING (current_setting('taskapi.purging', true) = 'on'
           AND claimed_at < now() - interval '24 hours');
CREATE POLICY idempotency_keys_purge_delete ON idempotency_keys FOR DELETE
    USING (current_setting('taskapi.purging', true) = 'on'
           AND claimed_at < now() - interval '24 hours');

GRANT SELECT, DELETE ON changes TO taskapi_app;
-- The writing session statement takes the counter itself (one statement fewer per write).
GRANT UPDATE (change_seq) ON users TO taskapi_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys TO taskapi_app;
