-- Account lifecycle, login throttling, and row-level security (API.md "Account security").
-- Runs as the owner role; the API connects as `taskapi_app`, which owns nothing, is not a
-- superuser and cannot bypass row-level security.

-- Bumped by logout-all and password changes; tokens carry the version they were issued at.
ALTER TABLE users
    ADD COLUMN token_version integer NOT NULL DEFAULT 1,
    ADD CONSTRAINT users_token_version_positive CHECK (token_version >= 1);

-- Tokens logged out one by one, kept until they would have expired anyway.
CREATE TABLE revoked_tokens (
    jti        uuid        PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE INDEX revoked_tokens_expires_idx ON revoked_tokens (expires_at);

-- Failed logins per (normalised) address, counted in the database so the limit holds
-- across API instances. Unknown addresses are counted too: a lock-out must not reveal
-- whether an account exists.
CREATE TABLE login_failures (
    email             text        PRIMARY KEY,
    failures          integer     NOT NULL,
    window_started_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT login_failures_positive CHECK (failures >= 1)
);
CREATE INDEX login_failures_window_idx ON login_failures (window_started_at);

-- The second wall: even a statement that forgot its owner filter sees only the caller's
-- tasks. The caller's id is a transaction-local setting (set_config(..., true)); outside a
-- request it is unset or '' and matches no row. FORCE applies the policy to the owner too.
ALTER TABLE tasks ENABLE ROW LEVEL SECURITY;
ALTER TABLE tasks FORCE ROW LEVEL SECURITY;
CREATE POLICY tasks_owner_only ON tasks
    USING (owner_id = nullif(current_setting('taskapi.user_id', true), '')::uuid)
    WITH CHECK (owner_id = nullif(current_setting('taskapi.user_id', true), '')::uuid);

-- The API's role: created by the private-server set-up, or by the DBA beforehand
-- (see README "In production"); created here only if the migrating role may.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'taskapi_app') THEN
        CREATE ROLE taskapi_app NOLOGIN;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO taskapi_app;
GRANT SELECT, INSERT, DELETE ON users TO taskapi_app;
GRANT UPDATE (password_hash, token_version) ON users TO taskapi_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON tasks TO taskapi_app;
GRANT SELECT, INSERT, DELETE ON revoked_tokens TO taskapi_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON login_failures TO taskapi_app;
GRANT SELECT ON refinery_schema_history TO taskapi_app;
