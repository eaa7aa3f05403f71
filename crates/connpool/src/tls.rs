//! TLS settings for HTTPS: which servers to trust, which certificate to
//! present, and an identity that keeps connections made with one setting
//! from ever serving a request that asked for another.
//!
//! # The idea
//!
//! A pooled TLS connection carries the decisions made during its
//! handshake: the roots its server's certificate was checked against (or
//! that it was not checked at all), the client certificate it presented,
//! the server name it was verified for. Reusing it for a request that
//! asked for other settings silently skips those checks: curl's
//! connection-reuse CVEs (CVE-2021-22924: CA settings; CVE-2022-27782: TLS
//! options; CVE-2022-22576: credentials) are all this one mistake.
//!
//! So a [`TlsConfig`] is built once, is immutable, and has an *identity*
//! ([`TlsConfig::id`]): a process-unique number given when it is built.
//! The HTTP client's pool key ([`HostKey`](crate::http::HostKey)) holds the
//! scheme, host and port and, for `https`, that identity; the server name
//! sent in SNI and checked against the certificate is the key's host. Two
//! configurations are interchangeable only when they are the *same* built
//! configuration (clones share it): two separately built ones never share
//! a connection, even if their settings are equal. Comparing root stores or
//! keys for equality would be slower and one bug away from a CVE; building
//! a configuration once per client, as intended, loses nothing.
//!
//! # What a `TlsConfig` does
//!
//! * **Verification is on by default.** Server certificates are checked
//!   against Mozilla's roots ([`webpki-roots`](https://docs.rs/webpki-roots))
//!   unless the builder is given other roots: a custom
//!   [`RootCertStore`], and/or the platform's store
//!   ([`TlsConfigBuilder::platform_roots`], read with `rustls-native-certs`:
//!   on Linux the PEM files OpenSSL would read, no C code involved).
//! * **SNI** is the URL's host; none is sent for an IP address (rustls
//!   leaves it out, as RFC 6066 says), and the certificate is then checked
//!   for the IP address.
//! * **ALPN** offers `http/1.1` only: the client speaks HTTP/1.1.
//! * An optional **client certificate** (mutual TLS).
//! * TLS 1.2 and 1.3 with rustls's `ring` provider, chosen explicitly: the
//!   process-wide default provider is neither needed nor installed.
//!
//! ```no_run
//! use connpool::http::Client;
//! use connpool::tls::TlsConfig;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), connpool::Error> {
//! // The default: Mozilla's roots, verification on. `Client::new()` uses
//! // the same for every https URL.
//! let client = Client::builder().tls(TlsConfig::builder().build()?).build();
//! let resp = client.get("https://example.com/").send().await?;
//! println!("{}", resp.status());
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

pub use rustls;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::{Error, ErrorKind};

/// The ALPN protocol id the client offers.
const ALPN_HTTP11: &[u8] = b"http/1.1";

/// The identity of the next configuration built; 0 is the process default.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// TLS settings for `https` requests: trusted roots, an optional client
/// certificate, whether certificates are verified. Cheap to clone: clones
/// share one built configuration and its [identity](TlsConfig::id).
///
/// Give it to a client with [`ClientBuilder::tls`](crate::http::ClientBuilder::tls),
/// or to one request with [`RequestBuilder::tls`](crate::http::RequestBuilder::tls).
/// See the [module docs](self) for why connections are shared only between
/// requests that use the same built configuration.
///
/// ```
/// use connpool::tls::TlsConfig;
///
/// let a = TlsConfig::builder().build()?;
/// let b = TlsConfig::builder().build()?;
/// assert_eq!(a, a.clone());
/// assert_ne!(a, b, "built separately: never interchangeable");
/// assert!(a.verifies_certificates());
/// # Ok::<(), connpool::Error>(())
/// ```
#[derive(Clone)]
pub struct TlsConfig {
    inner: Arc<Inner>,
}

struct Inner {
    id: u64,
    connector: tokio_rustls::TlsConnector,
    verify: bool,
    client_cert: bool,
    roots: String,
}

impl TlsConfig {
    /// Starts building a configuration: Mozilla's roots, verification on,
    /// no client certificate.
    ///
    /// ```
    /// let config = connpool::tls::TlsConfig::builder().build()?;
    /// assert!(!config.has_client_cert());
    /// # Ok::<(), connpool::Error>(())
    /// ```
    pub fn builder() -> TlsConfigBuilder {
        TlsConfigBuilder {
            roots: None,
            webpki_roots: true,
            platform_roots: false,
            client_cert: None,
            accept_invalid_certs: false,
        }
    }

    /// The identity of this configuration: unique in the process, shared by
    /// clones. The pool key holds it; 0 is [`TlsConfig::default`].
    ///
    /// ```
    /// use connpool::tls::TlsConfig;
    /// assert_eq!(TlsConfig::default().id(), 0);
    /// assert_ne!(TlsConfig::builder().build()?.id(), 0);
    /// # Ok::<(), connpool::Error>(())
    /// ```
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// False when built with
    /// [`danger_accept_invalid_certs(true)`](TlsConfigBuilder::danger_accept_invalid_certs).
    ///
    /// ```
    /// assert!(connpool::tls::TlsConfig::default().verifies_certificates());
    /// ```
    pub fn verifies_certificates(&self) -> bool {
        self.inner.verify
    }

    /// Whether a client certificate is presented to servers that ask.
    ///
    /// ```
    /// assert!(!connpool::tls::TlsConfig::default().has_client_cert());
    /// ```
    pub fn has_client_cert(&self) -> bool {
        self.inner.client_cert
    }

    /// The rustls configuration connections are made with.
    ///
    /// ```
    /// let config = connpool::tls::TlsConfig::default();
    /// assert_eq!(config.rustls_config().alpn_protocols, vec![b"http/1.1".to_vec()]);
    /// ```
    pub fn rustls_config(&self) -> &Arc<rustls::ClientConfig> {
        self.inner.connector.config()
    }

    pub(crate) fn connector(&self) -> &tokio_rustls::TlsConnector {
        &self.inner.connector
    }
}

impl Default for TlsConfig {
    /// The configuration `https` URLs get when none was given: Mozilla's
    /// roots, verification on, no client certificate. Built once per
    /// process (on first use), identity 0.
    fn default() -> Self {
        static DEFAULT: OnceLock<TlsConfig> = OnceLock::new();
        DEFAULT
            .get_or_init(|| {
                TlsConfig::builder()
                    .build_with_id(0)
                    .expect("the default TLS configuration builds")
            })
            .clone()
    }
}

impl PartialEq for TlsConfig {
    /// Equal when they are the same built configuration (the same
    /// [`id`](TlsConfig::id)).
    fn eq(&self, other: &Self) -> bool {
        self.inner.id == other.inner.id
    }
}

impl Eq for TlsConfig {}

impl std::hash::Hash for TlsConfig {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.inner.id.hash(state);
    }
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("id", &self.inner.id)
            .field("roots", &self.inner.roots)
            .field("verify", &self.inner.verify)
            .field("client_cert", &self.inner.client_cert)
            .finish()
    }
}

/// Builds a [`TlsConfig`]; from [`TlsConfig::builder`].
///
/// ```
/// use connpool::tls::TlsConfig;
/// use connpool::tls::rustls::RootCertStore;
///
/// # fn ca_der() -> connpool::tls::rustls::pki_types::CertificateDer<'static> { unimplemented!() }
/// # fn f() -> Result<(), connpool::Error> {
/// let mut roots = RootCertStore::empty();
/// roots.add(ca_der()).unwrap();
/// // Trust only this CA (and not Mozilla's roots).
/// let config = TlsConfig::builder().root_store(roots).build()?;
/// # Ok(()) }
/// ```
pub struct TlsConfigBuilder {
    roots: Option<RootCertStore>,
    webpki_roots: bool,
    platform_roots: bool,
    client_cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    accept_invalid_certs: bool,
}

impl fmt::Debug for TlsConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfigBuilder")
            .field("roots", &self.roots.as_ref().map(RootCertStore::len))
            .field("webpki_roots", &self.webpki_roots)
            .field("platform_roots", &self.platform_roots)
            .field("client_cert", &self.client_cert.is_some())
            .field("accept_invalid_certs", &self.accept_invalid_certs)
            .finish()
    }
}

impl TlsConfigBuilder {
    /// Trusts the roots of `store`, *instead of* Mozilla's (call
    /// [`webpki_roots(true)`](Self::webpki_roots) afterwards to trust both).
    ///
    /// ```
    /// use connpool::tls::{TlsConfig, rustls::RootCertStore};
    /// // An empty store trusts nothing: refused when built.
    /// let err = TlsConfig::builder().root_store(RootCertStore::empty()).build().unwrap_err();
    /// assert_eq!(err.kind(), connpool::ErrorKind::TlsConfig);
    /// ```
    pub fn root_store(mut self, store: RootCertStore) -> Self {
        self.roots = Some(store);
        self.webpki_roots = false;
        self
    }

    /// Whether Mozilla's roots (the `webpki-roots` crate, compiled in) are
    /// trusted. Default true, until [`root_store`](Self::root_store).
    ///
    /// ```
    /// let builder = connpool::tls::TlsConfig::builder().webpki_roots(true);
    /// # drop(builder);
    /// ```
    pub fn webpki_roots(mut self, on: bool) -> Self {
        self.webpki_roots = on;
        self
    }

    /// Also trusts the platform's certificate store, read when the
    /// configuration is built (`rustls-native-certs`: on Linux the files
    /// named by `SSL_CERT_FILE`/`SSL_CERT_DIR` or the distribution's
    /// bundle). Default false. Certificates that do not parse are skipped.
    ///
    /// ```no_run
    /// let config = connpool::tls::TlsConfig::builder()
    ///     .webpki_roots(false)
    ///     .platform_roots(true)
    ///     .build()?;
    /// # Ok::<(), connpool::Error>(())
    /// ```
    pub fn platform_roots(mut self, on: bool) -> Self {
        self.platform_roots = on;
        self
    }

    /// Presents this certificate chain (leaf first) and private key to
    /// servers that ask for a client certificate (mutual TLS).
    ///
    /// ```no_run
    /// # fn load() -> (Vec<connpool::tls::rustls::pki_types::CertificateDer<'static>>,
    /// #     connpool::tls::rustls::pki_types::PrivateKeyDer<'static>) { unimplemented!() }
    /// let (chain, key) = load();
    /// let config = connpool::tls::TlsConfig::builder().client_cert(chain, key).build()?;
    /// assert!(config.has_client_cert());
    /// # Ok::<(), connpool::Error>(())
    /// ```
    pub fn client_cert(
        mut self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Self {
        self.client_cert = Some((chain, key));
        self
    }

    /// **Dangerous.** With `true`, the server's certificate is not
    /// verified at all: any certificate, for any name, from any issuer,
    /// expired or not, is accepted, and a man in the middle can read and
    /// change everything. Only for tests and for servers reached over a
    /// path you trust otherwise. Default false. (The handshake signatures
    /// are still checked, which proves only that the server holds the key
    /// of the certificate it showed.) Connections made with it are never
    /// shared with verifying configurations: it is a separate
    /// configuration with its own identity.
    ///
    /// ```
    /// let config = connpool::tls::TlsConfig::builder()
    ///     .danger_accept_invalid_certs(true)
    ///     .build()?;
    /// assert!(!config.verifies_certificates());
    /// # Ok::<(), connpool::Error>(())
    /// ```
    pub fn danger_accept_invalid_certs(mut self, accept: bool) -> Self {
        self.accept_invalid_certs = accept;
        self
    }

    /// Builds the configuration, with a new identity.
    ///
    /// # Errors
    /// [`ErrorKind::TlsConfig`]: no root to trust while verification is on,
    /// or a client certificate or key rustls refuses.
    ///
    /// ```
    /// let config = connpool::tls::TlsConfig::builder().build()?;
    /// assert!(config.id() > 0);
    /// # Ok::<(), connpool::Error>(())
    /// ```
    pub fn build(self) -> Result<TlsConfig, Error> {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        self.build_with_id(id)
    }

    fn build_with_id(self, id: u64) -> Result<TlsConfig, Error> {
        let invalid = |what: String| Error::new(ErrorKind::TlsConfig, what);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(format!("protocol versions: {e}")))?;
        let verify = !self.accept_invalid_certs;
        let mut names = Vec::new();
        let builder = if verify {
            let mut roots = self.roots.unwrap_or_else(RootCertStore::empty);
            if !roots.is_empty() {
                names.push(format!("custom({})", roots.len()));
            }
            if self.webpki_roots {
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                names.push("webpki".to_owned());
            }
            // Why the platform's store gave nothing, if it did not load.
            let mut platform_error = None;
            if self.platform_roots {
                let found = rustls_native_certs::load_native_certs();
                let (added, _skipped) = roots.add_parsable_certificates(found.certs);
                names.push(format!("platform({added})"));
                platform_error = found.errors.into_iter().next();
            }
            if roots.is_empty() {
                let mut why =
                    "no root certificates to trust: every server would be refused".to_owned();
                if let Some(e) = platform_error {
                    why.push_str(&format!(" (reading the platform's store: {e})"));
                }
                return Err(invalid(why));
            }
            builder.with_root_certificates(roots)
        } else {
            names.push("none: certificates are not verified".to_owned());
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
        };
        let client_cert = self.client_cert.is_some();
        let mut config = match self.client_cert {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| invalid(format!("the client certificate: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
        Ok(TlsConfig {
            inner: Arc::new(Inner {
                id,
                connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
                verify,
                client_cert,
                roots: names.join("+"),
            }),
        })
    }
}

/// The verifier of [`TlsConfigBuilder::danger_accept_invalid_certs`]:
/// accepts every certificate, still checks the handshake's signatures.
#[derive(Debug)]
struct AcceptAnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The TLS server name of a URL host: a DNS name, or an IP address (an
/// IPv6 address loses its brackets), for which rustls sends no SNI.
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, Error> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    ServerName::try_from(bare.to_owned()).map_err(|e| {
        Error::new(
            ErrorKind::InvalidUrl,
            format!("{host:?} is not a valid TLS server name: {e}"),
        )
    })
}

/// The kind of a TLS failure, from the rustls error inside an I/O error.
/// `handshake`: the failure happened while connecting (or is the server's
/// late refusal of the handshake, see [`is_handshake_alert`]).
pub(crate) fn classify(err: &rustls::Error, handshake: bool) -> ErrorKind {
    match err {
        rustls::Error::InvalidCertificate(_) => ErrorKind::TlsCertificate,
        rustls::Error::AlertReceived(alert) if is_handshake_alert(*alert) => {
            ErrorKind::TlsHandshake
        }
        _ if handshake => ErrorKind::TlsHandshake,
        _ => ErrorKind::TlsProtocol,
    }
}

/// The rustls error an I/O error carries, if any.
pub(crate) fn rustls_error(err: &std::io::Error) -> Option<&rustls::Error> {
    err.get_ref()?.downcast_ref::<rustls::Error>()
}

/// Alerts with which a server refuses a handshake over the client's
/// certificate. Under TLS 1.3 the client's handshake ends before the
/// server has checked the client's certificate, so the refusal arrives at
/// the client's first read, after the request was written. The server
/// cannot have processed that request: it reads application data only
/// after the client's handshake is verified (and this client sends no
/// 0-RTT early data).
pub(crate) fn is_handshake_alert(alert: rustls::AlertDescription) -> bool {
    use rustls::AlertDescription as A;
    matches!(
        alert,
        A::CertificateRequired
            | A::BadCertificate
            | A::UnsupportedCertificate
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::CertificateUnknown
            | A::UnknownCA
            | A::HandshakeFailure
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_shared_by_clones() {
        let a = TlsConfig::builder().build().unwrap();
        let b = TlsConfig::builder().build().unwrap();
        assert_ne!(a.id(), b.id());
        assert_eq!(a.clone().id(), a.id());
        assert_eq!(TlsConfig::default(), TlsConfig::default());
        assert_eq!(TlsConfig::default().id(), 0);
    }

    #[test]
    fn server_names() {
        assert!(matches!(
            server_name("localhost").unwrap(),
            ServerName::DnsName(_)
        ));
        assert!(matches!(
            server_name("127.0.0.1").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("[::1]").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(server_name("bad name").is_err());
    }

    #[test]
    fn classification() {
        let cert = rustls::Error::InvalidCertificate(rustls::CertificateError::Expired);
        assert_eq!(classify(&cert, true), ErrorKind::TlsCertificate);
        let required = rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired);
        assert_eq!(classify(&required, false), ErrorKind::TlsHandshake);
        let bad = rustls::Error::DecryptError;
        assert_eq!(classify(&bad, true), ErrorKind::TlsHandshake);
        assert_eq!(classify(&bad, false), ErrorKind::TlsProtocol);
    }
}
