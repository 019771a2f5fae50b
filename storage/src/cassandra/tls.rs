//! TLS to the nodes with rustls: the trusted authorities from a PEM file, optional client
//! authentication, and an optional fixed name to check the nodes' certificates against.
//!
//! The driver names each node by its IP address in the handshake, so without `server_name`
//! a node's certificate must list that address; with it, every node's certificate is checked
//! against that one name instead.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::CassandraTls;
use crate::{Result, StorageError};

fn config_err(what: &str, path: &Path, e: impl fmt::Display) -> StorageError {
    StorageError::Config(format!("cassandra TLS {what} {}: {e}", path.display()))
}

/// The rustls client config of `tls`.
pub(super) fn client_config(tls: &CassandraTls) -> Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    let cas = CertificateDer::pem_file_iter(&tls.ca_file)
        .map_err(|e| config_err("ca_file", &tls.ca_file, e))?;
    for ca in cas {
        let ca = ca.map_err(|e| config_err("ca_file", &tls.ca_file, e))?;
        roots
            .add(ca)
            .map_err(|e| config_err("ca_file", &tls.ca_file, e))?;
    }
    if roots.is_empty() {
        return Err(config_err(
            "ca_file",
            &tls.ca_file,
            "holds no PEM certificate",
        ));
    }
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| StorageError::Config(format!("cassandra TLS: {e}")))?;
    let builder = match &tls.server_name {
        None => builder.with_root_certificates(roots),
        Some(name) => {
            let name = ServerName::try_from(name.clone()).map_err(|e| {
                StorageError::Config(format!("cassandra TLS server_name {name:?}: {e}"))
            })?;
            let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| StorageError::Config(format!("cassandra TLS: {e}")))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NamedVerifier { inner, name }))
        }
    };
    let config = match (&tls.cert_file, &tls.key_file) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|e| config_err("cert_file", cert, e))?
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| config_err("cert_file", cert, e))?;
            let key_der =
                PrivateKeyDer::from_pem_file(key).map_err(|e| config_err("key_file", key, e))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| config_err("cert_file", cert, e))?
        }
        _ => {
            return Err(StorageError::Config(
                "cassandra TLS: cert_file and key_file go together".into(),
            ))
        }
    };
    Ok(Arc::new(config))
}

/// Checks certificates as webpki does, against a fixed name instead of the node's address.
struct NamedVerifier {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl fmt::Debug for NamedVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NamedVerifier")
            .field("name", &self.name)
            .finish()
    }
}

impl ServerCertVerifier for NamedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _address: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
