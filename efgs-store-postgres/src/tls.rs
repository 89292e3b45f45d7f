//! The rustls client configuration for [`PgTls`].

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::PgTls;
use crate::error::PgError;

/// The client configuration for `tls`, `None` for [`PgTls::Disable`].
pub(crate) fn client_config(tls: &PgTls) -> Result<Option<ClientConfig>, PgError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| PgError::Config(format!("TLS: {e}")))?;
    Ok(match tls {
        PgTls::Disable => None,
        PgTls::Require => Some(
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(EncryptOnly { provider }))
                .with_no_client_auth(),
        ),
        PgTls::VerifyFull { roots } => {
            let mut store = RootCertStore::empty();
            for der in roots {
                store
                    .add(CertificateDer::from(der.clone()))
                    .map_err(|e| PgError::Config(format!("TLS CA certificate: {e}")))?;
            }
            if store.is_empty() {
                return Err(PgError::Config(
                    "TLS verify-full needs at least one CA certificate".to_owned(),
                ));
            }
            Some(builder.with_root_certificates(store).with_no_client_auth())
        }
    })
}

/// `sslmode=require`: any server certificate; the handshake signature is still checked.
#[derive(Debug)]
struct EncryptOnly {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for EncryptOnly {
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
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
