//! taskapi: a REST API where people register, log in with a short-lived JWT, and manage
//! their own tasks, with PostgreSQL as the single source of truth.
//!
//! Layers: `http` (routing, DTOs) → `domain` (rules) and `store` (SQL) → `db` (pool,
//! migrations, private server). `app` wires them; `config` reads the settings.

pub mod app;
pub mod auth;
pub mod config;
pub mod db;
pub mod domain;

pub mod http;
pub mod listener;
pub mod metrics;
pub mod state;
pub mod store;
pub mod telemetry;
