//! Mutual TLS 1.3 between the devices of a site, each side authenticated by
//! its device's Ed25519 key as a raw public key (RFC 7250): no certificate
//! authority, no X.509 to issue or expire. A device accepts a key only if it
//! belongs to a device of the site (the catalog, gated.toml) and is not
//! revoked; a client accepts only the key of the peer it dialled.
//!
//! TLS 1.3 gives the rest: a fresh handshake per connection (a recorded
//! session replayed to a device fails its handshake), authenticated
//! encryption of every record (a changed byte fails the connection). 0-RTT
//! and resumption are off, so every connection proves its key again.

use std::sync::{Arc, RwLock};

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{
    CertificateDer, PrivatePkcs8KeyDer, ServerName, SubjectPublicKeyInfoDer, UnixTime,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

use super::PeerSet;

/// The Ed25519 key in a raw-public-key "certificate" (an SPKI, RFC 8410):
/// the only kind of key a device has.
pub fn ed25519_key(spki: &[u8]) -> Option<[u8; 32]> {
    ed25519_dalek::VerifyingKey::from_public_key_der(spki)
        .ok()
        .map(|k| k.to_bytes())
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn algorithms() -> WebPkiSupportedAlgorithms {
    rustls::crypto::ring::default_provider().signature_verification_algorithms
}

/// The device's key as TLS presents it.
pub fn certified_key(key: &SigningKey) -> Result<Arc<CertifiedKey>, String> {
    let pkcs8 = key.to_pkcs8_der().map_err(|e| e.to_string())?;
    let spki = key
        .verifying_key()
        .to_public_key_der()
        .map_err(|e| e.to_string())?;
    let der = PrivatePkcs8KeyDer::from(pkcs8.as_bytes().to_vec());
    let signer = rustls::crypto::ring::sign::any_eddsa_type(&der).map_err(|e| e.to_string())?;
    Ok(Arc::new(CertifiedKey::new(
        vec![CertificateDer::from(spki.as_bytes().to_vec())],
        signer,
    )))
}

/// The listening side: a client must present the key of a device of the site.
pub fn server_config(
    key: Arc<CertifiedKey>,
    peers: Arc<RwLock<PeerSet>>,
) -> Result<rustls::ServerConfig, String> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(Arc::new(SiteClients {
            peers,
            algorithms: algorithms(),
        }))
        .with_cert_resolver(Arc::new(
            rustls::server::AlwaysResolvesServerRawPublicKeys::new(key),
        ));
    // Every connection proves its key again (a revoked device cannot resume).
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(config)
}

/// The dialling side: the server must present `expected`, the key of the
/// peer dialled.
pub fn client_config(
    key: Arc<CertifiedKey>,
    expected: [u8; 32],
) -> Result<rustls::ClientConfig, String> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ThePeer {
            expected,
            algorithms: algorithms(),
        }))
        .with_client_cert_resolver(Arc::new(
            rustls::client::AlwaysResolvesClientRawPublicKeys::new(key),
        ));
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}

/// The name a client gives: peers are told apart by key, not by name.
pub fn server_name() -> ServerName<'static> {
    ServerName::try_from("peer.scenic-site.invalid").expect("a DNS name")
}

fn refuse() -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
}

fn verify_raw(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
    algorithms: &WebPkiSupportedAlgorithms,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    rustls::crypto::verify_tls13_signature_with_raw_key(
        message,
        &SubjectPublicKeyInfoDer::from(cert.as_ref()),
        dss,
        algorithms,
    )
}

#[derive(Debug)]
struct SiteClients {
    peers: Arc<RwLock<PeerSet>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for SiteClients {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let Some(key) = ed25519_key(end_entity.as_ref()) else {
            tracing::warn!("peer refused: its key is not an Ed25519 key");
            return Err(refuse());
        };
        let peers = self.peers.read().expect("peer set");
        if let Some(id) = peers.revoked_key(&key) {
            tracing::warn!(device = id, "peer refused: device {id} is revoked");
            return Err(refuse());
        }
        if peers.by_key(&key).is_none() {
            tracing::warn!(
                key = hex::encode(&key[..8]),
                "peer refused: key {}… is no device of this site",
                hex::encode(&key[..8])
            );
            return Err(refuse());
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("peers speak TLS 1.3 only".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_raw(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }

    fn requires_raw_public_keys(&self) -> bool {
        true
    }
}

#[derive(Debug)]
struct ThePeer {
    expected: [u8; 32],
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for ThePeer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match ed25519_key(end_entity.as_ref()) {
            Some(key) if key == self.expected => Ok(ServerCertVerified::assertion()),
            _ => Err(refuse()),
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("peers speak TLS 1.3 only".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_raw(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }

    fn requires_raw_public_keys(&self) -> bool {
        true
    }
}
