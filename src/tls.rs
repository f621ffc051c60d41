//! rustls configuration, with the aws-lc-rs provider throughout: the server side (TLS 1.2 and
//! 1.3, ALPN h2 and http/1.1, certificate files re-read when they change) and the client side
//! used for key sources and the upstream (web PKI roots plus an optional CA file).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a TLS configuration could not be built; names the file that failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("no certificate in {0}")]
    NoCertificate(PathBuf),
    #[error("unusable certificate in {path}: {source}")]
    Certificate {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("certificate and key do not fit: {0}")]
    KeyMismatch(#[source] rustls::Error),
    #[error("{0}")]
    Protocol(#[from] rustls::Error),
}

/// Why an HTTP client (key sources, the upstream's settings, the revocation check) could not be
/// built.
#[derive(Debug, thiserror::Error)]
pub enum HttpClientError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot build the HTTP client: {}", crate::causes::describe_chain(.0))]
    Build(#[from] reqwest::Error),
}

fn read_error(path: &Path) -> impl FnOnce(rustls::pki_types::pem::Error) -> TlsError + '_ {
    move |source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A client configuration trusting the web PKI roots and, when given, the certificates in `ca_file`.
/// `insecure_skip_verify` accepts any certificate (for test upstreams only; `doctor` warns).
pub fn client_config(
    ca_file: Option<&Path>,
    insecure_skip_verify: bool,
) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let certificates = CertificateDer::pem_file_iter(path).map_err(read_error(path))?;
        for certificate in certificates {
            let certificate = certificate.map_err(read_error(path))?;
            roots
                .add(certificate)
                .map_err(|source| TlsError::Certificate {
                    path: path.to_path_buf(),
                    source,
                })?;
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?;
    let config = if insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider())))
            .with_no_client_auth()
    } else {
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(config)
}

/// Load a server certificate chain and key; TLS 1.2 and 1.3 only; ALPN offers h2 then http/1.1.
pub fn server_config(cert_file: &Path, key_file: &Path) -> Result<rustls::ServerConfig, TlsError> {
    let chain = CertificateDer::pem_file_iter(cert_file)
        .map_err(read_error(cert_file))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_error(cert_file))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert_file.to_path_buf()));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(read_error(key_file))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsError::KeyMismatch)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            certificate,
            signature,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            certificate,
            signature,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The server's TLS configuration, re-read when the certificate or key file changes, so that
/// cert-manager style rotation needs no restart. New handshakes use the new certificate; open
/// connections keep theirs.
pub struct ReloadingTls {
    cert_file: std::path::PathBuf,
    key_file: std::path::PathBuf,
    current: std::sync::RwLock<(tokio_rustls::TlsAcceptor, Option<std::time::SystemTime>)>,
}

impl ReloadingTls {
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Arc<ReloadingTls>, TlsError> {
        let config = server_config(cert_file, key_file)?;
        Ok(Arc::new(ReloadingTls {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            current: std::sync::RwLock::new((
                tokio_rustls::TlsAcceptor::from(Arc::new(config)),
                modified(cert_file, key_file),
            )),
        }))
    }

    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        match self.current.read() {
            Ok(guard) => guard.0.clone(),
            Err(poisoned) => poisoned.into_inner().0.clone(),
        }
    }

    /// Re-read the files if either changed since the last load. A broken new pair is logged and
    /// the old one kept.
    pub fn reload_if_changed(&self) {
        let stamp = modified(&self.cert_file, &self.key_file);
        let unchanged = match self.current.read() {
            Ok(guard) => guard.1 == stamp,
            Err(_) => false,
        };
        if unchanged {
            return;
        }
        match server_config(&self.cert_file, &self.key_file) {
            Ok(config) => {
                if let Ok(mut guard) = self.current.write() {
                    *guard = (tokio_rustls::TlsAcceptor::from(Arc::new(config)), stamp);
                }
                tracing::info!(cert = %self.cert_file.display(), "TLS certificate reloaded");
            }
            Err(error) => {
                tracing::warn!(%error, "TLS files changed but cannot be loaded; keeping the previous certificate")
            }
        }
    }

    /// Watch the files every few seconds for as long as the returned task runs.
    pub fn watch(self: &Arc<Self>, every: std::time::Duration) -> tokio::task::JoinHandle<()> {
        let tls = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match tls.upgrade() {
                    Some(tls) => tls.reload_if_changed(),
                    None => return,
                }
            }
        })
    }
}

fn modified(cert_file: &Path, key_file: &Path) -> Option<std::time::SystemTime> {
    let cert = std::fs::metadata(cert_file)
        .and_then(|m| m.modified())
        .ok()?;
    let key = std::fs::metadata(key_file)
        .and_then(|m| m.modified())
        .ok()?;
    Some(cert.max(key))
}
