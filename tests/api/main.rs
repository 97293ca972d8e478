//! The API test suite: real HTTP against the real router, on a real PostgreSQL.

mod helpers;

mod account;
mod auth;
mod changes;
mod concurrency;
mod conditional_reads;
mod conventions;
mod counts;
mod hardening;
mod hygiene;
mod idempotency;
mod labels;
mod logs;
mod metrics;
mod openapi;
mod outage;
mod pipeline;
mod pooler;
mod private_postgres;
mod projects;
mod refusals;
mod rls;
mod shutdown;
mod sync_internals;
mod task_projects;
mod tasks_crud;
mod tasks_cursor;
mod tasks_list;
mod tls;
mod tokens;
