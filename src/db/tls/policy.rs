//! What libpq's `sslmode` and `sslrootcert` ask for, parsed once into a `TlsPolicy` that
//! can only hold a combination libpq would accept.

use std::fmt;
use std::path::PathBuf;

/// libpq's `sslmode` values (all but `allow`, which tries plaintext first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plaintext only.
    Disable,
    /// TLS when the server offers it, plaintext when it refuses (libpq's default).
    Prefer,
    /// TLS or nothing.
    Require,
    /// TLS, and the certificate chain must verify against `sslrootcert`.
    VerifyCa,
    /// As `VerifyCa`, and the certificate must name the host connected to.
    VerifyFull,
}

impl SslMode {
    const ALL: [Self; 5] = [
        Self::Disable,
        Self::Prefer,
        Self::Require,
        Self::VerifyCa,
        Self::VerifyFull,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    fn parse(value: &str) -> Result<Self, TlsConfigError> {
        Self::ALL
            .into_iter()
            .find(|mode| mode.as_str() == value)
            .ok_or_else(|| TlsConfigError::UnknownSslMode(value.to_owned()))
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The certificate authorities to trust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCerts {
    /// A PEM file of CA certificates (`sslrootcert=/path/ca.pem`).
    File(PathBuf),
    /// The operating system's trust store (`sslrootcert=system`, as in libpq 16).
    System,
}

impl fmt::Display for RootCerts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::System => f.write_str("system"),
        }
    }
}

/// What is checked of the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification<'a> {
    /// Nothing but the handshake's signature (the server holds the key of the certificate
    /// it shows): encryption against eavesdroppers, no defence against an impostor.
    None,
    /// The chain must lead to one of these roots; the host name is not checked.
    Chain(&'a RootCerts),
    /// The chain, and the certificate must name the host.
    ChainAndHostName(&'a RootCerts),
}

/// A valid combination of `sslmode` and `sslrootcert`, with libpq's meanings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPolicy {
    mode: SslMode,
    /// Never set with `Disable` (libpq ignores `sslrootcert` then); always with `Verify*`.
    roots: Option<RootCerts>,
}

/// An `sslmode` / `sslrootcert` combination that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsConfigError {
    #[error(
        "sslmode={0:?} is not supported: use disable, prefer (the default), require, \
         verify-ca or verify-full"
    )]
    UnknownSslMode(String),
    #[error(
        "sslmode={0} needs sslrootcert: the path of a PEM file holding the CA certificates \
         to trust (or sslrootcert=system for the operating system's)"
    )]
    MissingRootCert(SslMode),
    #[error(
        "sslrootcert=system trusts every public CA, which will certify any host name for \
         anyone, so it needs sslmode=verify-full (its default), not sslmode={0}"
    )]
    WeakModeWithSystemRoots(SslMode),
}

impl TlsPolicy {
    /// Plaintext: the private server's Unix socket.
    pub const DISABLED: Self = Self {
        mode: SslMode::Disable,
        roots: None,
    };

    /// From the values of `sslmode` and `sslrootcert` (absent or empty: not given).
    /// Without `sslmode` the mode is `prefer`, or `verify-full` with `sslrootcert=system`,
    /// as in libpq.
    pub fn parse(sslmode: Option<&str>, sslrootcert: Option<&str>) -> Result<Self, TlsConfigError> {
        let roots = sslrootcert
            .filter(|value| !value.is_empty())
            .map(|value| match value {
                "system" => RootCerts::System,
                path => RootCerts::File(PathBuf::from(path)),
            });
        let mode = match sslmode.filter(|value| !value.is_empty()) {
            Some(value) => SslMode::parse(value)?,
            None if roots == Some(RootCerts::System) => SslMode::VerifyFull,
            None => SslMode::Prefer,
        };
        match (mode, &roots) {
            (SslMode::Disable, _) => Ok(Self::DISABLED),
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
                Err(TlsConfigError::MissingRootCert(mode))
            }
            (mode, Some(RootCerts::System)) if mode != SslMode::VerifyFull => {
                Err(TlsConfigError::WeakModeWithSystemRoots(mode))
            }
            _ => Ok(Self { mode, roots }),
        }
    }

    /// Like a libpq connection string with this `sslmode` and no `sslrootcert`.
    pub fn from_driver_mode(mode: tokio_postgres::config::SslMode) -> Self {
        let mode = match mode {
            tokio_postgres::config::SslMode::Disable => SslMode::Disable,
            tokio_postgres::config::SslMode::Require => SslMode::Require,
            _ => SslMode::Prefer,
        };
        Self { mode, roots: None }
    }

    pub fn mode(&self) -> SslMode {
        self.mode
    }

    pub fn roots(&self) -> Option<&RootCerts> {
        self.roots.as_ref()
    }

    /// What the certificate must satisfy. As in libpq, a given `sslrootcert` is checked
    /// with `prefer` and `require` too (they then behave as `verify-ca`).
    pub fn verification(&self) -> Verification<'_> {
        match (self.mode, &self.roots) {
            (SslMode::VerifyFull, Some(roots)) => Verification::ChainAndHostName(roots),
            (_, Some(roots)) => Verification::Chain(roots),
            (_, None) => Verification::None,
        }
    }

    /// The mode tokio-postgres knows: whether to ask for TLS, and whether to go on in
    /// plaintext when the server refuses it. Verification is the connector's job.
    pub fn driver_mode(&self) -> tokio_postgres::config::SslMode {
        match self.mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        }
    }
}

impl fmt::Display for TlsPolicy {
    /// `sslmode=verify-full sslrootcert=/etc/ca.pem`: for messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sslmode={}", self.mode)?;
        if let Some(roots) = &self.roots {
            write!(f, " sslrootcert={roots}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(sslmode: Option<&str>, sslrootcert: Option<&str>) -> TlsPolicy {
        TlsPolicy::parse(sslmode, sslrootcert).unwrap()
    }

    #[test]
    fn prefer_is_the_default_as_in_libpq() {
        let default = policy(None, None);
        assert_eq!(default.mode(), SslMode::Prefer);
        assert_eq!(default.verification(), Verification::None);
        assert_eq!(
            default.driver_mode(),
            tokio_postgres::config::SslMode::Prefer
        );
        assert_eq!(policy(Some(""), None), default);
    }

    #[test]
    fn each_mode_maps_to_what_the_driver_and_the_verifier_must_do() {
        let ca = RootCerts::File("/x/ca.pem".into());
        let cases = [
            (
                "disable",
                None,
                tokio_postgres::config::SslMode::Disable,
                Verification::None,
            ),
            (
                "require",
                None,
                tokio_postgres::config::SslMode::Require,
                Verification::None,
            ),
            (
                "require",
                Some("/x/ca.pem"),
                tokio_postgres::config::SslMode::Require,
                Verification::Chain(&ca),
            ),
            (
                "prefer",
                Some("/x/ca.pem"),
                tokio_postgres::config::SslMode::Prefer,
                Verification::Chain(&ca),
            ),
            (
                "verify-ca",
                Some("/x/ca.pem"),
                tokio_postgres::config::SslMode::Require,
                Verification::Chain(&ca),
            ),
            (
                "verify-full",
                Some("/x/ca.pem"),
                tokio_postgres::config::SslMode::Require,
                Verification::ChainAndHostName(&ca),
            ),
        ];
        for (mode, roots, driver, verification) in cases {
            let parsed = policy(Some(mode), roots);
            assert_eq!(parsed.mode().as_str(), mode);
            assert_eq!(parsed.driver_mode(), driver, "{mode}");
            assert_eq!(parsed.verification(), verification, "{mode}");
        }
    }

    #[test]
    fn disable_ignores_sslrootcert_as_libpq_does() {
        assert_eq!(
            policy(Some("disable"), Some("/x/ca.pem")),
            TlsPolicy::DISABLED
        );
    }

    #[test]
    fn an_unknown_sslmode_is_refused_with_the_accepted_values() {
        for value in ["verify_full", "allow", "on", "REQUIRE"] {
            let error = TlsPolicy::parse(Some(value), None).unwrap_err();
            assert_eq!(error, TlsConfigError::UnknownSslMode(value.to_owned()));
            let text = error.to_string();
            assert!(text.contains(&format!("sslmode={value:?}")), "{text}");
            assert!(text.contains("verify-full"), "{text}");
        }
    }

    #[test]
    fn verification_without_roots_is_refused() {
        for mode in [SslMode::VerifyCa, SslMode::VerifyFull] {
            let error = TlsPolicy::parse(Some(mode.as_str()), None).unwrap_err();
            assert_eq!(error, TlsConfigError::MissingRootCert(mode));
            assert!(error.to_string().contains("needs sslrootcert"));
        }
    }

    #[test]
    fn system_roots_mean_verify_full() {
        let system = policy(None, Some("system"));
        assert_eq!(system.mode(), SslMode::VerifyFull);
        assert_eq!(
            system.verification(),
            Verification::ChainAndHostName(&RootCerts::System)
        );
        assert_eq!(policy(Some("verify-full"), Some("system")), system);
        for weak in ["prefer", "require", "verify-ca"] {
            assert!(matches!(
                TlsPolicy::parse(Some(weak), Some("system")),
                Err(TlsConfigError::WeakModeWithSystemRoots(_))
            ));
        }
    }

    #[test]
    fn a_policy_describes_itself_for_messages() {
        assert_eq!(
            policy(Some("verify-ca"), Some("/x/ca.pem")).to_string(),
            "sslmode=verify-ca sslrootcert=/x/ca.pem"
        );
        assert_eq!(policy(None, None).to_string(), "sslmode=prefer");
    }
}
