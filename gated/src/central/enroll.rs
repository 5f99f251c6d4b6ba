//! Enrollment: a field engineer's one-time pairing code turns a fresh device
//! into one the central system knows. The device makes its own key pair and
//! sends only the public half; what comes back is stored in the state
//! directory (secrets in 0600 files and gated's database).

use super::api::{self, EnrollRequest, EnrollResponse, paths};
use super::client::{self, CALL_TIMEOUT, CentralError};
use super::identity::{self, Credentials, IdentityError};
use super::sync;
use crate::config::Config;
use crate::store::{Db, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("{0}")]
    Central(#[from] CentralError),
    #[error("{0}")]
    Identity(#[from] IdentityError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("state directory {path}: {source}")]
    StateDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("the central system's answer is unusable: {0}")]
    Answer(String),
}

/// What the device received, without the secrets (for gatectl to print).
pub use gated_api::types::Enrolled;

/// Enrolls the device described by `config` with `central_url` using `code`.
/// `db` is the running gated's database; `None` (gatectl before gated's
/// first start, no gated to ask) opens the file itself.
pub async fn enroll(
    config: &Config,
    db: Option<&Db>,
    central_url: &str,
    code: &str,
    device_id: &str,
) -> Result<Enrolled, EnrollError> {
    let http = client::http_client(
        config
            .central
            .ca_file
            .as_ref()
            .map(|c| c.get_ref().as_path()),
    )?;
    let key = identity::generate_key();
    let request = EnrollRequest {
        code: code.trim().to_owned(),
        device_id: device_id.to_owned(),
        role: config.role.to_string(),
        public_key: hex::encode(key.verifying_key().to_bytes()),
    };
    let sent_ms = jiff::Timestamp::now().as_millisecond();
    let answer: EnrollResponse = client::send(
        http.post(client::endpoint(central_url, paths::ENROLL))
            .json(&request),
        CALL_TIMEOUT,
    )
    .await?;
    let received_ms = jiff::Timestamp::now().as_millisecond();
    let id_hash_key = hex::decode(&answer.id_hash_key)
        .ok()
        .filter(|k| k.len() >= 16)
        .ok_or_else(|| EnrollError::Answer("id_hash_key is not hex of 16+ bytes".into()))?;
    if answer.signing_keys.is_empty() {
        return Err(EnrollError::Answer("no ticket-signing key".into()));
    }

    let state_dir = config.state_dir.get_ref();
    // The database and the secrets are gated's alone (as StateDir::open sets).
    std::fs::create_dir_all(state_dir)
        .and_then(|()| {
            std::fs::set_permissions(
                state_dir,
                std::os::unix::fs::PermissionsExt::from_mode(0o700),
            )
        })
        .map_err(|source| EnrollError::StateDir {
            path: state_dir.clone(),
            source,
        })?;
    let (url, keys) = (central_url.to_owned(), answer.signing_keys.clone());
    match db {
        Some(db) => {
            db.write(move |s| save(s, &url, &keys, &id_hash_key))
                .await?
        }
        None => save(
            &mut Store::open(&state_dir.join("gated.db"))?,
            &url,
            &keys,
            &id_hash_key,
        )?,
    }
    // The key first, the credentials last: they name the key they go
    // with, so a cut between the two leaves a device that is not enrolled
    // (and says so), never one half-enrolled.
    identity::save_key(state_dir, &key)?;
    identity::save_credentials(
        state_dir,
        &Credentials {
            device_id: answer.device_id.clone(),
            role: answer.role.clone(),
            central_url: central_url.to_owned(),
            lane_groups: answer.lane_groups.clone(),
            access: answer.access.clone(),
            public_key: Some(hex::encode(key.verifying_key().to_bytes())),
        },
    )?;
    Ok(Enrolled {
        device_id: answer.device_id,
        role: answer.role,
        central_url: central_url.to_owned(),
        lane_groups: answer.lane_groups,
        signing_key_ids: answer.signing_keys.iter().map(|k| k.key_id).collect(),
        id_hash_key: "received (stored, not shown)".into(),
        token_expires_at_ms: answer.access.expires_at_ms,
        clock_skew_ms: answer.server_time_ms - (sent_ms + received_ms) / 2,
    })
}

/// Keys and the ID-hash key into the database. Enrolling again (a new
/// central system, a replaced device) starts the ticket download over.
fn save(
    store: &mut Store,
    central_url: &str,
    signing_keys: &[api::SigningKey],
    id_hash_key: &[u8],
) -> Result<(), StoreError> {
    let path = store.path().to_owned();
    store
        .in_transaction(|tx| {
            sync::replace_signing_keys(tx, signing_keys)?;
            sync::put(tx, "id_hash_key", id_hash_key)?;
            sync::put(tx, sync::CURSOR, b"0")?;
            sync::put(tx, sync::CATALOG_VERSION, b"0")?;
            sync::put(tx, "central_url", central_url.as_bytes())
        })
        .map_err(|source| StoreError::Sqlite { path, source })
}

/// Why an enrollment failed, sorted for the caller (gatectl, Engineer1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The central system refused the code: `message (error)`.
    Code(String),
    /// The central system could not be reached.
    Offline(String),
    Other(String),
}

pub fn explain(e: &EnrollError) -> Failure {
    match e {
        EnrollError::Central(CentralError::Status {
            status: 404 | 409 | 410 | 422,
            body,
        }) => Failure::Code(format!("{} ({})", body.message, body.error)),
        EnrollError::Central(c) if c.is_transient() => Failure::Offline(e.to_string()),
        _ => Failure::Other(e.to_string()),
    }
}
