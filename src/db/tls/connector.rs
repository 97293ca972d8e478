//! The rustls connector handed to tokio-postgres (the pool and single connections): a
//! `tokio_postgres_rustls::MakeRustlsConnect` with the certificate check the policy asks
//! for, whose handshake failures say why in words (unknown issuer, name mismatch).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{CertificateError, ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::policy::{RootCerts, SslMode, TlsPolicy, Verification};
use super::verifier::{AnyCertificate, ChainOnly};

/// Why the CA certificates to trust could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RootsError {
    #[error("cannot read sslrootcert {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("sslrootcert {0} holds no usable CA certificate (PEM, \"BEGIN CERTIFICATE\")")]
    Empty(String),
    #[error("sslrootcert=system: no CA certificate found in the operating system's store ({0})")]
    NoSystemRoots(String),
}

/// Makes the TLS side of each new connection, as the policy says. Cheap to clone.
#[derive(Clone)]
pub struct TlsConnector {
    inner: MakeRustlsConnect,
}

impl std::fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsConnector")
    }
}

impl TlsConnector {
    /// Reads `sslrootcert` now, so that a missing or empty file stops the start-up.
    pub fn new(policy: &TlsPolicy) -> Result<Self, RootsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports TLS 1.2 and 1.3");
        let builder = match (policy.mode(), policy.verification()) {
            // tokio-postgres never starts a handshake with `disable`; should that change,
            // trusting no root refuses every certificate rather than accepting any.
            (SslMode::Disable, _) => builder.with_root_certificates(RootCertStore::empty()),
            (_, Verification::None) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate::new(provider))),
            (_, Verification::Chain(roots)) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly::new(
                    Arc::new(load_roots(roots)?),
                    provider,
                ))),
            (_, Verification::ChainAndHostName(roots)) => {
                builder.with_root_certificates(load_roots(roots)?)
            }
        };
        let mut config = builder.with_no_client_auth();
        // PostgreSQL 17 requires this ALPN for direct TLS (`sslnegotiation=direct`) and
        // checks it when given otherwise; older servers ignore it.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(Self {
            inner: MakeRustlsConnect::new(config),
        })
    }
}

fn load_roots(roots: &RootCerts) -> Result<RootCertStore, RootsError> {
    let mut store = RootCertStore::empty();
    match roots {
        RootCerts::File(path) => {
            let shown = path.display().to_string();
            let unreadable = |reason: String| RootsError::Unreadable {
                path: shown.clone(),
                reason,
            };
            for certificate in CertificateDer::pem_file_iter(path)
                .map_err(|error| unreadable(pem_reason(error)))?
            {
                let certificate = certificate.map_err(|error| unreadable(pem_reason(error)))?;
                store
                    .add(certificate)
                    .map_err(|error| unreadable(error.to_string()))?;
            }
            if store.is_empty() {
                return Err(RootsError::Empty(shown));
            }
        }
        RootCerts::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
                return Err(RootsError::NoSystemRoots(errors.join("; ")));
            }
        }
    }
    Ok(store)
}

/// A PEM error in words (its `Io` variant's `Display` is just the OS error).
fn pem_reason(error: rustls::pki_types::pem::Error) -> String {
    match error {
        rustls::pki_types::pem::Error::Io(error) => error.to_string(),
        other => format!("not a PEM file: {other}"),
    }
}

impl<S> MakeTlsConnect<S> for TlsConnector
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = <MakeRustlsConnect as MakeTlsConnect<S>>::Stream;
    type TlsConnect = Handshake<<MakeRustlsConnect as MakeTlsConnect<S>>::TlsConnect>;
    type Error = <MakeRustlsConnect as MakeTlsConnect<S>>::Error;

    fn make_tls_connect(&mut self, hostname: &str) -> Result<Self::TlsConnect, Self::Error> {
        MakeTlsConnect::<S>::make_tls_connect(&mut self.inner, hostname).map(Handshake)
    }
}

/// One connection's handshake, its failure explained.
#[derive(Debug)]
pub struct Handshake<T>(T);

impl<S, T> TlsConnect<S> for Handshake<T>
where
    T: TlsConnect<S, Error = io::Error>,
    T::Future: Send + 'static,
{
    type Stream = T::Stream;
    type Error = HandshakeError;
    type Future = Pin<Box<dyn Future<Output = Result<T::Stream, HandshakeError>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        let handshake = self.0.connect(stream);
        Box::pin(async move { handshake.await.map_err(HandshakeError::from) })
    }
}

/// Why a TLS handshake failed. Never falls back to plaintext: the connection fails.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error(
        "unknown issuer: the server's certificate is not signed by a CA that sslrootcert \
         trusts"
    )]
    UnknownIssuer,
    #[error("name mismatch: {0}")]
    NameMismatch(rustls::Error),
    #[error("the server's certificate was refused: {0}")]
    Certificate(rustls::Error),
    #[error("{0}")]
    Other(io::Error),
}

impl From<io::Error> for HandshakeError {
    fn from(error: io::Error) -> Self {
        // tokio-rustls reports rustls's own errors inside an `io::Error`.
        let Some(tls) = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        else {
            return Self::Other(error);
        };
        match tls {
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
                Self::UnknownIssuer
            }
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            ) => Self::NameMismatch(tls.clone()),
            rustls::Error::InvalidCertificate(_) => Self::Certificate(tls.clone()),
            _ => Self::Other(error),
        }
    }
}
