//! TLS to PostgreSQL over rustls, with libpq's meanings of `sslmode` (`disable`, `prefer`,
//! `require`, `verify-ca`, `verify-full`) and `sslrootcert`. tokio-postgres knows only
//! the first three modes and no `sslrootcert`: `params` takes them out of the connection
//! string, `policy` says what they mean, `connector` and `verifier` do it.

mod connector;
mod params;
mod policy;
mod verifier;

pub use connector::{HandshakeError, RootsError, TlsConnector};
pub use params::{BadEncoding, TlsParams, split};
pub use policy::{RootCerts, SslMode, TlsConfigError, TlsPolicy, Verification};
