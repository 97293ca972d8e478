//! Logging set-up. Whatever `RUST_LOG` asks for, the database driver never logs at debug
//! level: there it prints statement parameters, which hold emails and password hashes.
//! Lines go to standard output, as text (coloured only when that is a terminal) or as one
//! JSON object per line (`LOG_FORMAT=json`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber (once, at start-up), and a panic hook that reports a panic
/// through it (with its location, inside the request's span: the request id) instead of as a
/// bare line on standard error that a JSON log shipper could not read.
pub fn init(format: LogFormat, spec: Option<&str>) {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map_or_else(String::new, |l| format!("{}:{}", l.file(), l.line()));
        let message = panic_message(info.payload());
        tracing::error!(target: "taskapi::panic", %location, %message, "panicked");
    }));
    let builder = tracing_subscriber::fmt().with_env_filter(env_filter(spec));
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stdout().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

const DEFAULT: &str = "info,tower_http=warn";
/// Appended last, so it wins over any `RUST_LOG` directive for these targets.
const ALWAYS: [&str; 2] = ["tokio_postgres=info", "postgres_protocol=info"];

/// The filter for `spec` (the value of `RUST_LOG`, if any).
pub fn env_filter(spec: Option<&str>) -> EnvFilter {
    let spec = spec.filter(|s| !s.trim().is_empty()).unwrap_or(DEFAULT);
    let mut filter = EnvFilter::try_new(spec).unwrap_or_else(|_| EnvFilter::new(DEFAULT));
    for directive in ALWAYS {
        if let Ok(directive) = directive.parse() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

/// The text a panic was raised with (`panic!("…")` carries a `&str` or a `String`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}
