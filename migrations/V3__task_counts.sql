-- How many tasks each account holds, kept by a trigger in the same transaction as the
-- change, so an unfiltered list's `total` is one row read instead of a count over every
-- task of the account (docs/PERFORMANCE.md "How the cost grows").

ALTER TABLE users
    ADD COLUMN task_count integer NOT NULL DEFAULT 0,
    ADD CONSTRAINT users_task_count_nonnegative CHECK (task_count >= 0);

UPDATE users u SET task_count = (SELECT count(*) FROM tasks t WHERE t.owner_id = u.id);

-- SECURITY DEFINER: the API's role may not write task_count itself; the function, owned by
-- the schema owner, may. The search path is pinned so it cannot be redirected.
CREATE FUNCTION tasks_keep_count() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE users SET task_count = task_count + 1 WHERE id = NEW.owner_id;
    ELSIF TG_OP = 'DELETE' THEN
        -- When the account itself is being deleted (cascade), its row is gone: no-op.
        UPDATE users SET task_count = task_count - 1 WHERE id = OLD.owner_id;
    ELSIF NEW.owner_id IS DISTINCT FROM OLD.owner_id THEN
        UPDATE users SET task_count = task_count - 1 WHERE id = OLD.owner_id;
        UPDATE users SET task_count = task_count + 1 WHERE id = NEW.owner_id;
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION tasks_keep_count() FROM PUBLIC;

CREATE TRIGGER tasks_keep_count
    AFTER INSERT OR DELETE OR UPDATE OF owner_id ON tasks
    FOR EACH ROW EXECUTE FUNCTION tasks_keep_count();
