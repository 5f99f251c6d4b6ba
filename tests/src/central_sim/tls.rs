//! The test CA and the server certificate (for `localhost` and 127.0.0.1),
//! made once per TLS directory and reused, so a restarted central-sim is
//! still trusted by devices that pinned its CA.

use std::path::Path;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub const CA_FILE: &str = "ca.pem";
const CERT_FILE: &str = "server.pem";
const KEY_FILE: &str = "server.key";

fn generate(dir: &Path) -> Result<(), String> {
    let err = |e: rcgen::Error| format!("test CA: {e}");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "central-sim test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().map_err(err)?;
    let ca_cert = ca_params.self_signed(&ca_key).map_err(err)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .map_err(err)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "central-sim");
    let key = KeyPair::generate().map_err(err)?;
    let cert = params.signed_by(&key, &issuer).map_err(err)?;

    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (name, text) in [
        (CA_FILE, ca_cert.pem()),
        (CERT_FILE, cert.pem()),
        (KEY_FILE, key.serialize_pem()),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// The rustls server config for `dir`, making the CA and certificate first if needed.
pub fn server_config(dir: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    if !dir.join(KEY_FILE).exists() {
        generate(dir)?;
    }
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
    };
    let certs = CertificateDer::pem_slice_iter(&read(CERT_FILE)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{CERT_FILE}: {e}"))?;
    let key =
        PrivateKeyDer::from_pem_slice(&read(KEY_FILE)?).map_err(|e| format!("{KEY_FILE}: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("server certificate: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
