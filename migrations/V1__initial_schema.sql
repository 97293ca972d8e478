-- The schema is the last line of defence: every rule of API.md that can be stated as a
-- constraint is one, so even a buggy client of the database cannot store bad data.
-- Constraint names are matched by the application (see src/db/error.rs); keep them stable.

CREATE TYPE task_status AS ENUM ('todo', 'in_progress', 'done');
-- Declaration order is the rank: ORDER BY priority sorts low < medium < high < urgent.
CREATE TYPE task_priority AS ENUM ('low', 'medium', 'high', 'urgent');

CREATE TABLE users (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    email         text        NOT NULL,
    password_hash text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- Stored normalised (trimmed, lower case), so uniqueness is case-insensitive.
    CONSTRAINT users_email_normalized CHECK (email = lower(btrim(email))),
    CONSTRAINT users_email_length CHECK (char_length(email) BETWEEN 3 AND 254),
    CONSTRAINT users_email_has_at CHECK (position('@' IN email) > 1),
    CONSTRAINT users_password_hash_argon2id CHECK (password_hash LIKE '$argon2id$%')
);
-- A unique index on lower(email) keeps addresses unique whatever their case, even if the
-- normalisation check above were ever dropped. Matched by name for the 409.
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE tasks (
    id           uuid          PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id     uuid          NOT NULL,
    title        text          NOT NULL,
    description  text,
    status       task_status   NOT NULL DEFAULT 'todo',
    priority     task_priority NOT NULL DEFAULT 'medium',
    due_at       timestamptz,
    completed_at timestamptz,
    -- Bumped on every change; the ETag is derived from it.
    version      integer       NOT NULL DEFAULT 1,
    created_at   timestamptz   NOT NULL DEFAULT now(),
    updated_at   timestamptz   NOT NULL DEFAULT now(),
    -- Word search for `q`: 'simple' lower-cases without stemming, in any language.
    search       tsvector      GENERATED ALWAYS AS
                     (to_tsvector('simple', title || ' ' || coalesce(description, ''))) STORED,
    CONSTRAINT tasks_owner_id_fkey FOREIGN KEY (owner_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT tasks_title_length CHECK (char_length(title) BETWEEN 1 AND 200),
    CONSTRAINT tasks_title_trimmed CHECK (title = btrim(title, E' \t\n\r')),
    CONSTRAINT tasks_description_length CHECK (char_length(description) <= 10000),
    CONSTRAINT tasks_completed_iff_done CHECK ((status = 'done') = (completed_at IS NOT NULL)),
    CONSTRAINT tasks_version_positive CHECK (version >= 1)
);

-- Serves the default list order (-created_at) of one owner, and every owner-scoped lookup.
CREATE INDEX tasks_owner_created_idx ON tasks (owner_id, created_at DESC, id DESC);
CREATE INDEX tasks_search_idx ON tasks USING gin (search);
