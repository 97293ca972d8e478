-- Projects and labels (API.md "Projects", "Labels", and the task fields `project_id` and
-- `labels`). Existing tasks stay valid: in no project, with no labels.

CREATE TABLE projects (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id   uuid        NOT NULL,
    name       text        NOT NULL,
    -- Bumped on every change; the ETag is derived from it.
    version    integer     NOT NULL DEFAULT 1,
    -- How many tasks the project holds, kept by a trigger (as users.task_count is), so that
    -- a list filtered by project alone reads its `total` from one row.
    task_count integer     NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT projects_owner_id_fkey FOREIGN KEY (owner_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT projects_name_length CHECK (char_length(name) BETWEEN 1 AND 100),
    CONSTRAINT projects_name_trimmed CHECK (name = btrim(name, E' \t\n\r')),
    CONSTRAINT projects_version_positive CHECK (version >= 1),
    CONSTRAINT projects_task_count_nonnegative CHECK (task_count >= 0),
    -- The target of the tasks' composite foreign key: a task and its project share an owner.
    CONSTRAINT projects_owner_id_id_key UNIQUE (owner_id, id)
);
-- One name per owner, whatever its case (matched by name for the 409). The "C" collation
-- changes nothing for uniqueness and lets the index serve the list order (lower-cased name,
-- code points; unique per owner, so the tie-break by id never has to decide).
CREATE UNIQUE INDEX projects_owner_name_key ON projects (owner_id, (lower(name) COLLATE "C"));

-- The rules of a label list: 0 to 20 labels, each 1 to 50 characters and trimmed, no two equal.
CREATE FUNCTION labels_are_valid(labels text[]) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_ndims(labels), 1) = 1
       AND cardinality(labels) <= 20
       AND NOT EXISTS (
           SELECT 1 FROM unnest(labels) AS l(label)
           WHERE label IS NULL
              OR char_length(label) NOT BETWEEN 1 AND 50
              OR label <> btrim(label, E' \t\n\r'))
       AND (SELECT count(DISTINCT label) FROM unnest(labels) AS l(label)) = cardinality(labels)
$$;

ALTER TABLE tasks
    ADD COLUMN project_id uuid,
    ADD COLUMN labels text[] NOT NULL DEFAULT '{}',
    -- Composite: the project must belong to the task's own owner, whatever a statement says.
    ADD CONSTRAINT tasks_project_fkey FOREIGN KEY (owner_id, project_id)
        REFERENCES projects (owner_id, id) ON DELETE CASCADE,
    ADD CONSTRAINT tasks_labels_valid CHECK (labels_are_valid(labels));

-- Serves `project_id=…` in the default order, and the foreign key's cascade.
CREATE INDEX tasks_owner_project_created_idx
    ON tasks (owner_id, project_id, created_at DESC, id DESC);
-- Serves `label=…` (labels @> …).
CREATE INDEX tasks_labels_idx ON tasks USING gin (labels);

-- How many of an owner's tasks carry each label, kept by a trigger: `GET /labels` and a list
-- filtered by one label read it instead of counting tasks.
CREATE TABLE label_counts (
    owner_id   uuid    NOT NULL,
    label      text    NOT NULL,
    task_count integer NOT NULL,
    CONSTRAINT label_counts_pkey PRIMARY KEY (owner_id, label),
    CONSTRAINT label_counts_owner_id_fkey FOREIGN KEY (owner_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT label_counts_positive CHECK (task_count >= 1)
);

-- SECURITY DEFINER, search path pinned: the API's role may read the counts, not write them.
-- Each fires only when its column changes (WHEN clauses below), so a task write that leaves
-- project and labels alone pays nothing but the clause.
CREATE FUNCTION tasks_keep_project_count() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.project_id IS NOT NULL THEN
        UPDATE projects SET task_count = task_count - 1
        WHERE owner_id = OLD.owner_id AND id = OLD.project_id;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') AND NEW.project_id IS NOT NULL THEN
        UPDATE projects SET task_count = task_count + 1
        WHERE owner_id = NEW.owner_id AND id = NEW.project_id;
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION tasks_keep_project_count() FROM PUBLIC;

CREATE FUNCTION tasks_keep_label_counts() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
    removed text[] := '{}';
    added   text[] := '{}';
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        removed := OLD.labels;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        added := NEW.labels;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        -- Only what changed: a label kept is neither removed nor added.
        SELECT coalesce(array_agg(l), '{}') INTO removed FROM unnest(OLD.labels) l
            WHERE NOT l = ANY (NEW.labels);
        SELECT coalesce(array_agg(l), '{}') INTO added FROM unnest(NEW.labels) l
            WHERE NOT l = ANY (OLD.labels);
    END IF;
    IF cardinality(removed) > 0 THEN
        -- The last task with a label takes its row; the others decrement (in this order, so
        -- that a row just decremented to 1 is not taken too).
        DELETE FROM label_counts
        WHERE owner_id = OLD.owner_id AND label = ANY (removed) AND task_count = 1;
        UPDATE label_counts SET task_count = task_count - 1
        WHERE owner_id = OLD.owner_id AND label = ANY (removed);
    END IF;
    IF cardinality(added) > 0 THEN
        -- In label order, as the UPDATE and DELETE above lock them (index order): two tasks
        -- gaining the same labels in different orders never wait on each other crosswise.
        INSERT INTO label_counts AS c (owner_id, label, task_count)
            SELECT NEW.owner_id, l, 1 FROM unnest(added) l ORDER BY l
        ON CONFLICT (owner_id, label) DO UPDATE SET task_count = c.task_count + 1;
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION tasks_keep_label_counts() FROM PUBLIC;

CREATE TRIGGER tasks_keep_project_count_insert AFTER INSERT ON tasks
    FOR EACH ROW WHEN (NEW.project_id IS NOT NULL)
    EXECUTE FUNCTION tasks_keep_project_count();
CREATE TRIGGER tasks_keep_project_count_delete AFTER DELETE ON tasks
    FOR EACH ROW WHEN (OLD.project_id IS NOT NULL)
    EXECUTE FUNCTION tasks_keep_project_count();
CREATE TRIGGER tasks_keep_project_count_update AFTER UPDATE OF project_id ON tasks
    FOR EACH ROW WHEN (OLD.project_id IS DISTINCT FROM NEW.project_id)
    EXECUTE FUNCTION tasks_keep_project_count();
CREATE TRIGGER tasks_keep_label_counts_insert AFTER INSERT ON tasks
    FOR EACH ROW WHEN (cardinality(NEW.labels) > 0)
    EXECUTE FUNCTION tasks_keep_label_counts();
CREATE TRIGGER tasks_keep_label_counts_delete AFTER DELETE ON tasks
    FOR EACH ROW WHEN (cardinality(OLD.labels) > 0)
    EXECUTE FUNCTION tasks_keep_label_counts();
CREATE TRIGGER tasks_keep_label_counts_update AFTER UPDATE OF labels ON tasks
    FOR EACH ROW WHEN (OLD.labels IS DISTINCT FROM NEW.labels)
    EXECUTE FUNCTION tasks_keep_label_counts();

-- The second wall, as on tasks: each request sees only its caller's projects and counts.
ALTER TABLE projects ENABLE ROW LEVEL SECURITY;
ALTER TABLE projects FORCE ROW LEVEL SECURITY;
CREATE POLICY projects_owner_only ON projects
    USING (owner_id = nullif(current_setting('taskapi.user_id', true), '')::uuid)
    WITH CHECK (owner_id = nullif(current_setting('taskapi.user_id', true), '')::uuid);
ALTER TABLE label_counts ENABLE ROW LEVEL SECURITY;
ALTER TABLE label_counts FORCE ROW LEVEL SECURITY;
CREATE POLICY label_counts_owner_only ON label_counts
    USING (owner_id = nullif(current_setting('taskapi.user_id', true), '')::uuid)
    WITH CHECK (owner_id = nullif(current_setting('taskapi.user_id', true), '')::uuid);

GRANT SELECT, DELETE ON projects TO taskapi_app;
GRANT INSERT (owner_id, name) ON projects TO taskapi_app;
GRANT UPDATE (name, version, updated_at) ON projects TO taskapi_app;
GRANT SELECT ON label_counts TO taskapi_app;
