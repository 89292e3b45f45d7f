//! TLS: the mTLS server configuration (rustls, ring provider).

use super::*;

// TLS
// ---------------------------------------------------------------------------------------------

/// Why the TLS configuration could not be built. Messages name the setting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsSetupError {
    /// A PEM file could not be read or parsed.
    #[error("{path}: {reason}")]
    Pem {
        /// The setting naming the file.
        setting: &'static str,
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the material (e.g. key does not match the certificate).
    #[error("{reason}")]
    Rustls {
        /// The setting concerned.
        setting: &'static str,
        /// rustls' message.
        reason: String,
    },
}

impl TlsSetupError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            TlsSetupError::Pem { .. } => "tls-pem",
            TlsSetupError::Rustls { .. } => "tls-rustls",
        }
    }

    /// The configuration setting the error is about.
    pub fn setting(&self) -> &'static str {
        match self {
            TlsSetupError::Pem { setting, .. } | TlsSetupError::Rustls { setting, .. } => setting,
        }
    }
}

fn read_certs(
    setting: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    use rustls::pki_types::pem::PemObject as _;
    let pem_err = |reason: String| TlsSetupError::Pem {
        setting,
        path: path.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_err("no PEM CERTIFICATE found".to_owned()));
    }
    Ok(certs)
}

/// Builds the mTLS server configuration from PEM files: `cert` (chain, leaf first), `key`, and
/// optionally `client_ca` (see [`server_tls_config_from_der`]).
pub(crate) fn server_tls_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsSetupError> {
    use rustls::pki_types::pem::PemObject as _;
    let chain = read_certs("auth.tls_cert", cert)?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsSetupError::Pem {
        setting: "auth.tls_key",
        path: key.display().to_string(),
        reason: e.to_string(),
    })?;
    let roots = client_ca
        .map(|p| read_certs("auth.client_ca", p))
        .transpose()?;
    server_tls_config_from_der(chain, key_der, roots)
}

/// Builds the mTLS server configuration (ring provider, TLS 1.2 and 1.3, ALPN `h2` and
/// `http/1.1`). A client certificate is always required. With `client_roots`, it must chain to
/// one of them; without, any certificate (self-signed included) is accepted and only the
/// handshake signature (CertificateVerify) is checked, leaving authorisation to the thumbprint
/// lookup of the authentication filter.
pub(crate) fn server_tls_config_from_der(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_roots: Option<Vec<CertificateDer<'static>>>,
) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ClientCertVerifier> = match client_roots {
        None => Arc::new(AcceptAnyClientCert {
            algorithms: provider.signature_verification_algorithms,
        }),
        Some(roots) => {
            let mut store = rustls::RootCertStore::empty();
            for root in roots {
                store.add(root).map_err(|e| TlsSetupError::Rustls {
                    setting: "auth.client_ca",
                    reason: e.to_string(),
                })?;
            }
            rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(store),
                Arc::clone(&provider),
            )
            .build()
            .map_err(|e| TlsSetupError::Rustls {
                setting: "auth.client_ca",
                reason: e.to_string(),
            })?
        }
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::Rustls {
            setting: "auth.tls_cert",
            reason: e.to_string(),
        })?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| TlsSetupError::Rustls {
            setting: "auth.tls_key",
            reason: e.to_string(),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Requires a client certificate and accepts any that parses as X.509 (self-signed included),
/// but verifies the handshake signature with the certificate's key.
#[derive(Debug)]
struct AcceptAnyClientCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AcceptAnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        use x509_cert::der::Decode as _;
        x509_cert::Certificate::from_der(end_entity.as_ref()).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
