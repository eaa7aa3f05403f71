//! TLS for tests: certificates made at test time, and the settings of the
//! [`HttpServer`](crate::http::HttpServer)'s HTTPS mode.
//!
//! No certificate is checked in: each test makes its own with `rcgen`, so
//! none can expire in the repository, and each failure mode (wrong name,
//! expired, unknown CA, missing client certificate) is one call away.
//!
//! * [`TestCa`] is a self-signed certificate authority. Trust it on the
//!   client ([`TestCa::cert_der`], [`TestCa::root_store`]) and let it issue
//!   server certificates ([`TestCa::server_cert`], with a [`Validity`]) and
//!   client certificates ([`TestCa::client_cert`]). A second `TestCa` is the
//!   "unknown CA": nothing it issues verifies against the first.
//! * [`IssuedCert`] is a certificate with its private key.
//! * [`ServerTls`] turns one into the server side of TLS: the certificate
//!   chain, optionally a CA whose client certificates are required (or
//!   accepted), the ALPN protocols offered (`http/1.1`), and how the server
//!   ends a TLS session when it closes a connection with a FIN
//!   ([`TlsClose`]). Start a server with it through
//!   [`HttpServerBuilder::start_tls`](crate::http::HttpServerBuilder::start_tls).
//! * [`TlsSession`] and [`TlsFailure`] are what the server records about
//!   each handshake: the SNI name the client sent, the ALPN protocol agreed,
//!   the client certificate, or why the handshake failed.
//!
//! Everything uses rustls's `ring` provider ([`crypto_provider`]).
//!
//! # Example
//!
//! ```
//! use connpool_testkit::tls::{TestCa, Validity};
//!
//! let ca = TestCa::new("connpool test CA");
//! let valid = ca.server_cert(&["localhost", "127.0.0.1"]);
//! let expired = ca.server_cert_with(&["localhost"], Validity::expired());
//! let client = ca.client_cert("client-1");
//! let unknown_ca = TestCa::new("someone else");
//!
//! assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
//! assert_eq!(valid.chain(), vec![valid.cert_der()]);
//! assert_ne!(expired.cert_der(), valid.cert_der());
//! assert_ne!(client.cert_der(), unknown_ca.cert_der());
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ProtocolVersion, RootCertStore, ServerConfig};

/// The ALPN protocol id of HTTP/1.1, which [`ServerTls`] offers by default.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// One day: the margin of [`Validity::current`] and [`Validity::expired`].
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// rustls's `ring` crypto provider, which everything in this module uses
/// (the process-wide default provider is neither needed nor installed).
///
/// Build client configurations with it too, e.g.
/// `rustls::ClientConfig::builder_with_provider(crypto_provider())`.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// When a certificate is valid: from `not_before` to `not_after`. Times are
/// truncated to whole seconds (certificates carry no more).
///
/// ```
/// use std::time::SystemTime;
/// use connpool_testkit::tls::Validity;
///
/// let now = SystemTime::now();
/// assert!(Validity::current().not_before < now && now < Validity::current().not_after);
/// assert!(Validity::expired().not_after < now);
/// assert!(Validity::not_yet_valid().not_before > now);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// The first moment the certificate is valid.
    pub not_before: SystemTime,
    /// The last moment the certificate is valid.
    pub not_after: SystemTime,
}

impl Validity {
    /// Valid from a day ago until a year from now.
    pub fn current() -> Validity {
        let now = SystemTime::now();
        Validity {
            not_before: now - DAY,
            not_after: now + 365 * DAY,
        }
    }

    /// Valid from 30 days ago until yesterday: expired.
    pub fn expired() -> Validity {
        let now = SystemTime::now();
        Validity {
            not_before: now - 30 * DAY,
            not_after: now - DAY,
        }
    }

    /// Valid from tomorrow for 30 days: not valid yet.
    pub fn not_yet_valid() -> Validity {
        let now = SystemTime::now();
        Validity {
            not_before: now + DAY,
            not_after: now + 30 * DAY,
        }
    }

    /// Sets the validity of `params`.
    fn apply(self, params: &mut CertificateParams) {
        params.not_before = to_offset_date_time(self.not_before);
        params.not_after = to_offset_date_time(self.not_after);
    }
}

/// `time` is whole seconds since the epoch, for rcgen.
fn to_offset_date_time(time: SystemTime) -> time::OffsetDateTime {
    let seconds = match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_secs()).map_or(i64::MIN, |secs| -secs),
    };
    time::OffsetDateTime::from_unix_timestamp(seconds).expect("certificate time within year ±9999")
}

/// A self-signed certificate authority made at test time, which issues
/// server and client certificates.
///
/// Clients that should trust it get [`TestCa::cert_der`] (or
/// [`TestCa::root_store`]); a server that requires client certificates
/// issued by it gets it through [`ServerTls::require_client_cert`]. Two
/// `TestCa`s are unrelated: each has its own key. Give the "unknown CA" its
/// own name, though: a chain whose issuer *name* matches a trusted root is
/// checked against that root's key, and fails with
/// [`CertificateError::BadSignature`](rustls::CertificateError::BadSignature)
/// instead of
/// [`CertificateError::UnknownIssuer`](rustls::CertificateError::UnknownIssuer).
///
/// Generating a key takes well under a millisecond (ECDSA P-256).
///
/// # Panics
///
/// The constructors and issuing methods panic if rcgen fails, which happens
/// only for names that are not ASCII or if the system's random number
/// generator fails. That is a broken test, not a case to handle.
///
/// ```
/// use connpool_testkit::tls::TestCa;
///
/// let ca = TestCa::new("test CA");
/// let roots = ca.root_store();
/// assert_eq!(roots.len(), 1);
/// ```
pub struct TestCa {
    /// The CA certificate (DER).
    cert: CertificateDer<'static>,
    /// The CA certificate (PEM).
    pem: String,
    /// The CA's name and key, for signing.
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for TestCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCa").field("pem", &self.pem).finish()
    }
}

impl TestCa {
    /// A new CA with common name `name`, valid from a day ago for ten years.
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("generate the CA key");
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = SystemTime::now();
        Validity {
            not_before: now - DAY,
            not_after: now + 3650 * DAY,
        }
        .apply(&mut params);
        let cert = params.self_signed(&key).expect("self-sign the CA");
        TestCa {
            cert: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA certificate, DER-encoded: what a client adds to its roots.
    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.cert.clone()
    }

    /// The CA certificate, PEM-encoded (`-----BEGIN CERTIFICATE-----`…).
    pub fn cert_pem(&self) -> String {
        self.pem.clone()
    }

    /// A root store that trusts this CA only.
    pub fn root_store(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots
            .add(self.cert_der())
            .expect("a CA certificate rcgen made parses");
        roots
    }

    /// A server certificate for `names`, valid now ([`Validity::current`]).
    /// Each name that parses as an IP address becomes an IP address
    /// subject-alternative name, any other a DNS name; the first name is
    /// also the common name.
    ///
    /// ```
    /// use connpool_testkit::tls::TestCa;
    ///
    /// let ca = TestCa::new("test CA");
    /// let cert = ca.server_cert(&["localhost", "127.0.0.1", "::1"]);
    /// assert!(cert.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    /// assert!(cert.key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
    /// ```
    pub fn server_cert(&self, names: &[&str]) -> IssuedCert {
        self.server_cert_with(names, Validity::current())
    }

    /// A server certificate for `names` (as [`TestCa::server_cert`]) valid
    /// during `validity`, e.g. [`Validity::expired`].
    pub fn server_cert_with(&self, names: &[&str], validity: Validity) -> IssuedCert {
        let names: Vec<String> = names.iter().map(|&name| name.to_owned()).collect();
        let mut params =
            CertificateParams::new(names.clone()).expect("server names are ASCII DNS names or IPs");
        if let Some(first) = names.first() {
            params.distinguished_name.push(DnType::CommonName, first);
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        validity.apply(&mut params);
        self.issue(&params)
    }

    /// A client certificate (for mutual TLS) with common name `name`, valid
    /// now. Present it with `rustls::ClientConfig`'s
    /// `with_client_auth_cert(cert.chain(), cert.key_der())`.
    pub fn client_cert(&self, name: &str) -> IssuedCert {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        Validity::current().apply(&mut params);
        self.issue(&params)
    }

    /// Signs `params` with a fresh key.
    fn issue(&self, params: &CertificateParams) -> IssuedCert {
        let key = KeyPair::generate().expect("generate a key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign a certificate");
        IssuedCert {
            cert: cert.der().clone(),
            pem: cert.pem(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
            key_pem: key.serialize_pem(),
            issuer: self.cert_der(),
        }
    }
}

/// A certificate a [`TestCa`] issued, with its private key.
pub struct IssuedCert {
    cert: CertificateDer<'static>,
    pem: String,
    key: PrivatePkcs8KeyDer<'static>,
    key_pem: String,
    issuer: CertificateDer<'static>,
}

impl fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the key.
        f.debug_struct("IssuedCert")
            .field("pem", &self.pem)
            .finish_non_exhaustive()
    }
}

impl Clone for IssuedCert {
    fn clone(&self) -> Self {
        IssuedCert {
            cert: self.cert.clone(),
            pem: self.pem.clone(),
            key: self.key.clone_key(),
            key_pem: self.key_pem.clone(),
            issuer: self.issuer.clone(),
        }
    }
}

impl IssuedCert {
    /// The certificate, DER-encoded.
    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.cert.clone()
    }

    /// The certificate, PEM-encoded.
    pub fn cert_pem(&self) -> String {
        self.pem.clone()
    }

    /// The chain to present: this certificate alone (the CA that issued it
    /// is the root the peer trusts, and is not sent).
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.cert_der()]
    }

    /// The private key (PKCS#8, DER-encoded).
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }

    /// The private key, PEM-encoded (`-----BEGIN PRIVATE KEY-----`…).
    pub fn key_pem(&self) -> String {
        self.key_pem.clone()
    }

    /// The certificate of the CA that issued this one, DER-encoded.
    pub fn issuer_der(&self) -> CertificateDer<'static> {
        self.issuer.clone()
    }
}

/// How the server ends a TLS session when it closes a connection with a FIN
/// ([`CloseMode::Fin`](crate::CloseMode::Fin)): idle closes, `close_after`,
/// `Connection: close`, fault routes, all alike. An RST close
/// ([`CloseMode::Rst`](crate::CloseMode::Rst)) sends no alert in either
/// case.
///
/// A pool must treat an idle connection as stale in both cases.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsClose {
    /// A `close_notify` alert, then the FIN: an orderly TLS close, what
    /// well-behaved servers do. A client reads the end of the TLS stream
    /// (rustls: `Ok(0)`), then end-of-file on the socket.
    #[default]
    CloseNotify,
    /// The FIN without a `close_notify` alert: a truncated session, as from
    /// servers or middleboxes that close the socket under the TLS layer.
    /// rustls reports [`std::io::ErrorKind::UnexpectedEof`].
    BareFin,
}

/// Whether and how the server asks for client certificates.
#[derive(Clone, Debug)]
enum ClientAuth {
    None,
    /// Client certificates issued by these CAs are required.
    Required(Vec<CertificateDer<'static>>),
    /// Client certificates issued by these CAs are accepted, not required.
    Optional(Vec<CertificateDer<'static>>),
}

/// The server side of TLS for [`HttpServer`](crate::http::HttpServer): the
/// certificate chain and key, the client-certificate policy, the ALPN
/// protocols offered, and [`TlsClose`]. TLS 1.2 and 1.3, `ring` provider.
///
/// Pass it to
/// [`HttpServerBuilder::start_tls`](crate::http::HttpServerBuilder::start_tls).
///
/// ```
/// use connpool_testkit::CloseMode;
/// use connpool_testkit::http::HttpServer;
/// use connpool_testkit::tls::{ServerTls, TestCa, TlsClose};
///
/// let ca = TestCa::new("test CA");
/// let server_cert = ca.server_cert(&["localhost", "127.0.0.1"]);
/// let tls = ServerTls::from_cert(&server_cert)
///     .require_client_cert(ca.cert_der())
///     .close(TlsClose::BareFin);
/// let server = HttpServer::builder().close_after(1, CloseMode::Fin).start_tls(tls)?;
/// assert!(server.url("/").starts_with("https://127.0.0.1:"));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct ServerTls {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_auth: ClientAuth,
    alpn: Vec<Vec<u8>>,
    pub(crate) close: TlsClose,
}

impl Clone for ServerTls {
    fn clone(&self) -> Self {
        ServerTls {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            client_auth: self.client_auth.clone(),
            alpn: self.alpn.clone(),
            close: self.close,
        }
    }
}

impl ServerTls {
    /// Presents `chain` (leaf first) with private `key`; no client
    /// certificates; offers ALPN `http/1.1`; [`TlsClose::CloseNotify`].
    pub fn new(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> ServerTls {
        ServerTls {
            chain,
            key,
            client_auth: ClientAuth::None,
            alpn: vec![ALPN_HTTP11.to_vec()],
            close: TlsClose::default(),
        }
    }

    /// [`ServerTls::new`] with `cert`'s chain and key.
    pub fn from_cert(cert: &IssuedCert) -> ServerTls {
        ServerTls::new(cert.chain(), cert.key_der())
    }

    /// Requires a client certificate issued by `ca` (mutual TLS): a client
    /// without one, or with one from another CA, fails the handshake
    /// (recorded as a [`TlsFailure`]).
    #[must_use]
    pub fn require_client_cert(mut self, ca: CertificateDer<'static>) -> ServerTls {
        self.client_auth = ClientAuth::Required(vec![ca]);
        self
    }

    /// Asks for a client certificate issued by `ca` but also accepts clients
    /// without one (a certificate from another CA still fails).
    #[must_use]
    pub fn request_client_cert(mut self, ca: CertificateDer<'static>) -> ServerTls {
        self.client_auth = ClientAuth::Optional(vec![ca]);
        self
    }

    /// The ALPN protocols offered, in order of preference (default:
    /// `http/1.1` alone). Empty: no ALPN. A client that offers ALPN
    /// protocols none of which the server offers fails the handshake.
    #[must_use]
    pub fn alpn(mut self, protocols: &[&[u8]]) -> ServerTls {
        self.alpn = protocols.iter().map(|protocol| protocol.to_vec()).collect();
        self
    }

    /// How a FIN close ends the TLS session (default
    /// [`TlsClose::CloseNotify`]).
    #[must_use]
    pub fn close(mut self, close: TlsClose) -> ServerTls {
        self.close = close;
        self
    }

    /// The rustls configuration.
    pub(crate) fn server_config(&self) -> Result<Arc<ServerConfig>, rustls::Error> {
        let provider = crypto_provider();
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()?;
        let roots_of = |cas: &[CertificateDer<'static>]| -> Result<_, rustls::Error> {
            let mut roots = RootCertStore::empty();
            for ca in cas {
                roots.add(ca.clone())?;
            }
            Ok(Arc::new(roots))
        };
        let verifier_error = |error| rustls::Error::General(format!("client verifier: {error}"));
        let builder = match &self.client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Required(cas) => builder.with_client_cert_verifier(
                WebPkiClientVerifier::builder_with_provider(roots_of(cas)?, Arc::clone(&provider))
                    .build()
                    .map_err(verifier_error)?,
            ),
            ClientAuth::Optional(cas) => builder.with_client_cert_verifier(
                WebPkiClientVerifier::builder_with_provider(roots_of(cas)?, Arc::clone(&provider))
                    .allow_unauthenticated()
                    .build()
                    .map_err(verifier_error)?,
            ),
        };
        let mut config = builder.with_single_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = self.alpn.clone();
        Ok(Arc::new(config))
    }
}

/// A TLS handshake the server completed, as recorded by
/// [`HttpServer::tls_sessions`](crate::http::HttpServer::tls_sessions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSession {
    /// The client's address.
    pub peer: SocketAddr,
    /// The SNI name the client sent, if any (clients send none for an IP
    /// address).
    pub server_name: Option<String>,
    /// The ALPN protocol agreed on, if any (e.g. `b"http/1.1"`).
    pub alpn: Option<Vec<u8>>,
    /// The client's certificate (the leaf of the chain it presented), if
    /// any.
    pub client_cert: Option<CertificateDer<'static>>,
    /// The TLS version agreed on.
    pub version: Option<ProtocolVersion>,
}

/// A TLS handshake that failed on the server, as recorded by
/// [`HttpServer::tls_failures`](crate::http::HttpServer::tls_failures).
#[derive(Clone, Debug, PartialEq)]
pub struct TlsFailure {
    /// The client's address.
    pub peer: SocketAddr,
    /// The rustls error, if the failure was a TLS one: e.g.
    /// [`rustls::Error::NoCertificatesPresented`] when a required client
    /// certificate was missing, or [`rustls::Error::AlertReceived`] when the
    /// client rejected the server's certificate. `None` for socket errors
    /// (including the client closing mid-handshake).
    pub error: Option<rustls::Error>,
    /// The error as text.
    pub message: String,
}

impl TlsFailure {
    /// Describes the failure of the handshake with `peer`.
    pub(crate) fn new(peer: SocketAddr, error: &std::io::Error) -> TlsFailure {
        TlsFailure {
            peer,
            error: error
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .cloned(),
            message: error.to_string(),
        }
    }
}
