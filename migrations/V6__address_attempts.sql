-- Attempts per client address (failed logins, registrations), counted in the database so
-- that the per-address limits hold across API instances, like the per-account count in
-- login_failures. An attempt is counted before it is made, atomically with the check of the
-- limit, and given back when it turns out not to count (a right password, an error).
-- No user data here (an address and a count), so no row-level security, as login_failures.
CREATE TABLE address_attempts (
    kind              text        NOT NULL,
    address           inet        NOT NULL,
    attempts          integer     NOT NULL,
    window_started_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, address),
    CONSTRAINT address_attempts_kind CHECK (kind IN ('login', 'registration')),
    CONSTRAINT address_attempts_not_negative CHECK (attempts >= 0)
);
-- The background purge deletes the rows whose window has passed.
CREATE INDEX address_attempts_window_idx ON address_attempts (window_started_at);

GRANT SELECT, INSERT, UPDATE, DELETE ON address_attempts TO taskapi_app;
