//! The TLS options `connpool get` and `connpool bench` share, with curl's
//! names: `--cacert FILE` (the roots to trust, replacing the defaults),
//! `-k`/`--insecure` (no certificate verification), `--cert FILE` and
//! `--key FILE` (a client certificate). They apply to `https` URLs only.
//!
//! The files are read and parsed (PEM, with rustls's `pki_types`) while the
//! arguments are parsed, so a missing or unreadable file is a usage error
//! like any other (exit status 2), before anything is sent.

use std::path::Path;

use clap::Args;
use connpool::tls::TlsConfig;
use connpool::tls::rustls::RootCertStore;
use connpool::tls::rustls::pki_types::pem::PemObject;
use connpool::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The TLS options, flattened into each subcommand's arguments.
#[derive(Debug, Args)]
#[command(next_help_heading = "TLS options (https URLs)")]
pub struct TlsArgs {
    /// Trust the CA certificates in this PEM file instead of the default
    /// roots (Mozilla's), for https URLs.
    #[arg(long, value_name = "FILE", value_parser = read_roots)]
    cacert: Option<Roots>,

    /// Do not verify the server's certificate (https): any certificate is
    /// accepted, for any name. Dangerous: only for tests.
    #[arg(short = 'k', long)]
    insecure: bool,

    /// Present this client certificate (PEM: the chain, leaf first) to
    /// https servers that ask for one. Needs --key.
    #[arg(long, value_name = "FILE", value_parser = read_chain, requires = "key")]
    cert: Option<Chain>,

    /// The private key of --cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", value_parser = read_key, requires = "cert")]
    key: Option<Key>,
}

impl TlsArgs {
    /// The TLS configuration the options ask for, or `None` when none was
    /// given (the client's default: Mozilla's roots, verification on).
    ///
    /// # Errors
    /// What rustls refuses, e.g. a key that does not match the certificate.
    pub fn config(&self) -> Result<Option<TlsConfig>, connpool::Error> {
        if self.cacert.is_none() && !self.insecure && self.cert.is_none() {
            return Ok(None);
        }
        let mut builder = TlsConfig::builder().danger_accept_invalid_certs(self.insecure);
        if let Some(Roots(roots)) = &self.cacert {
            builder = builder.root_store(roots.clone());
        }
        if let (Some(Chain(chain)), Some(Key(key))) = (&self.cert, &self.key) {
            builder = builder.client_cert(chain.clone(), key.clone_key());
        }
        builder.build().map(Some)
    }
}

/// The certificates of `--cacert`.
#[derive(Clone, Debug)]
struct Roots(RootCertStore);

/// The chain of `--cert`.
#[derive(Clone, Debug)]
struct Chain(Vec<CertificateDer<'static>>);

/// The key of `--key`.
#[derive(Debug)]
struct Key(PrivateKeyDer<'static>);

impl Clone for Key {
    fn clone(&self) -> Self {
        Key(self.0.clone_key())
    }
}

/// The certificates of a PEM file: at least one, all parsed.
fn read_certs(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(Path::new(path))
        .map_err(|e| format!("cannot read {path}: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot read {path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{path} holds no PEM certificate"));
    }
    Ok(certs)
}

/// `--cacert`'s value parser.
fn read_roots(path: &str) -> Result<Roots, String> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path)? {
        roots
            .add(cert)
            .map_err(|e| format!("{path}: not a usable CA certificate: {e}"))?;
    }
    Ok(Roots(roots))
}

/// `--cert`'s value parser.
fn read_chain(path: &str) -> Result<Chain, String> {
    read_certs(path).map(Chain)
}

/// `--key`'s value parser: the first private key of the file.
fn read_key(path: &str) -> Result<Key, String> {
    PrivateKeyDer::from_pem_file(Path::new(path))
        .map(Key)
        .map_err(|e| format!("cannot read a private key from {path}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, contents: &str) -> String {
        let path = std::env::temp_dir().join(format!(
            "connpool-cli-tls-args-{}-{name}",
            std::process::id()
        ));
        std::fs::write(&path, contents).expect("write the temp file");
        path.to_string_lossy().into_owned()
    }

    #[test]
    fn no_option_keeps_the_default() {
        let args = TlsArgs {
            cacert: None,
            insecure: false,
            cert: None,
            key: None,
        };
        assert!(args.config().expect("builds").is_none());
        let args = TlsArgs {
            insecure: true,
            ..args
        };
        let config = args.config().expect("builds").expect("a configuration");
        assert!(!config.verifies_certificates());
    }

    #[test]
    fn files_without_pem_certificates_or_keys_are_refused() {
        let path = temp_file("empty.pem", "not pem at all\n");
        let err = read_roots(&path).unwrap_err();
        assert!(err.contains("no PEM certificate"), "{err}");
        assert!(read_key(&path).is_err());
        let _ = std::fs::remove_file(&path);
        assert!(
            read_roots("/nonexistent/ca.pem")
                .unwrap_err()
                .contains("cannot read")
        );
    }
}
