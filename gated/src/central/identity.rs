//! The device's identity towards the central system: its own Ed25519 key
//! (made on the device at enrollment, never sent anywhere) and the
//! credentials enrollment returned. Both are files in the state directory,
//! mode 0600 and owned by whoever owns that directory (gated's user), so a
//! `gatectl provision` run as root still leaves them readable by gated alone.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use super::api::AccessToken;

pub const KEY_FILE: &str = "device.key";
pub const CREDENTIALS_FILE: &str = "credentials.json";

/// What enrollment gave the device (secrets included: never print this).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Credentials {
    pub device_id: String,
    pub role: String,
    /// The central system the device is enrolled with.
    pub central_url: String,
    pub lane_groups: Vec<String>,
    pub access: AccessToken,
    /// The public half of the device key enrolled with (hex): a key file
    /// that does not match is an enrollment cut short.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("device_id", &self.device_id)
            .field("role", &self.role)
            .field("central_url", &self.central_url)
            .field("lane_groups", &self.lane_groups)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: damaged ({why}); provision the device again")]
    Damaged { path: PathBuf, why: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> IdentityError + '_ {
    move |source| IdentityError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A fresh key pair from the kernel's random source.
pub fn generate_key() -> SigningKey {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("the kernel's random source");
    SigningKey::from_bytes(&seed)
}

/// Random bytes as hex (nonces, references).
pub fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).expect("the kernel's random source");
    hex::encode(b)
}

/// The device key, if the device was enrolled.
pub fn load_key(state_dir: &Path) -> Result<Option<SigningKey>, IdentityError> {
    let path = state_dir.join(KEY_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&path)(e)),
    };
    let seed: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| IdentityError::Damaged {
            path: path.clone(),
            why: "not 32 bytes of hex".into(),
        })?;
    Ok(Some(SigningKey::from_bytes(&seed)))
}

/// The credentials, if the device was enrolled.
pub fn load_credentials(state_dir: &Path) -> Result<Option<Credentials>, IdentityError> {
    let path = state_dir.join(CREDENTIALS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&path)(e)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| IdentityError::Damaged {
            path,
            why: e.to_string(),
        })
}

/// The credentials and key of a complete enrollment as `device_id`
/// (empty: any) and `role`, or why the device is not enrolled.
pub fn enrolled(
    state_dir: &Path,
    device_id: &str,
    role: &str,
) -> Result<(Credentials, SigningKey), String> {
    let creds = load_credentials(state_dir)
        .map_err(|e| e.to_string())?
        .ok_or("not provisioned")?;
    let key = load_key(state_dir)
        .map_err(|e| e.to_string())?
        .ok_or("device.key is missing: provision the device again")?;
    if let Some(public) = &creds.public_key
        && *public != hex::encode(key.verifying_key().to_bytes())
    {
        return Err(
            "device.key does not match credentials.json (an enrollment was cut short): provision the device again"
                .into(),
        );
    }
    if (!device_id.is_empty() && creds.device_id != device_id) || creds.role != role {
        return Err(format!(
            "enrolled as {} ({}) but gated.toml says {} ({role}): provision again",
            creds.device_id,
            creds.role,
            if device_id.is_empty() {
                "no device id"
            } else {
                device_id
            },
        ));
    }
    Ok((creds, key))
}

pub fn save_key(state_dir: &Path, key: &SigningKey) -> Result<(), IdentityError> {
    write_private(
        &state_dir.join(KEY_FILE),
        hex::encode(key.to_bytes()).as_bytes(),
    )
}

pub fn save_credentials(state_dir: &Path, c: &Credentials) -> Result<(), IdentityError> {
    let text = serde_json::to_vec_pretty(c).expect("credentials serialize");
    write_private(&state_dir.join(CREDENTIALS_FILE), &text)
}

/// Writes a secret atomically (temporary file, fsync, rename), mode 0600,
/// owned like its directory.
fn write_private(path: &Path, data: &[u8]) -> Result<(), IdentityError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(data).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    let owner = std::fs::metadata(dir).map_err(io(dir))?;
    let me = std::fs::metadata(&tmp).map_err(io(&tmp))?;
    if (owner.uid(), owner.gid()) != (me.uid(), me.gid()) {
        std::os::unix::fs::chown(&tmp, Some(owner.uid()), Some(owner.gid())).map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io(path))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_key(dir.path()).unwrap().is_none());
        let key = generate_key();
        save_key(dir.path(), &key).unwrap();
        let mode = std::fs::metadata(dir.path().join(KEY_FILE)).unwrap().mode();
        assert_eq!(mode & 0o777, 0o600);
        let back = load_key(dir.path()).unwrap().unwrap();
        assert_eq!(back.to_bytes(), key.to_bytes());
        let c = Credentials {
            device_id: "d".into(),
            role: "lane".into(),
            central_url: "https://c/api/v1".into(),
            lane_groups: vec!["north".into()],
            access: AccessToken {
                token: "secret-token".into(),
                expires_at_ms: 5,
            },
            public_key: None,
        };
        save_credentials(dir.path(), &c).unwrap();
        assert_eq!(load_credentials(dir.path()).unwrap().unwrap(), c);
        assert!(!format!("{c:?}").contains("secret-token"));
    }

    /// An enrollment cut between the key and the credentials: the new key
    /// with the old credentials is no enrollment, and says why.
    #[test]
    fn a_key_without_its_credentials_is_not_enrolled() {
        let dir = tempfile::tempdir().unwrap();
        let old = generate_key();
        let creds = |key: &SigningKey| Credentials {
            device_id: "lane-1".into(),
            role: "lane".into(),
            central_url: "https://c/api/v1".into(),
            lane_groups: vec![],
            access: AccessToken {
                token: "t".into(),
                expires_at_ms: 5,
            },
            public_key: Some(hex::encode(key.verifying_key().to_bytes())),
        };
        save_key(dir.path(), &old).unwrap();
        save_credentials(dir.path(), &creds(&old)).unwrap();
        assert!(enrolled(dir.path(), "lane-1", "lane").is_ok());
        assert!(enrolled(dir.path(), "", "lane").is_ok(), "any id");
        assert!(enrolled(dir.path(), "lane-2", "lane").is_err());
        // Cut here: the new key is on disk, its credentials are not.
        save_key(dir.path(), &generate_key()).unwrap();
        let e = enrolled(dir.path(), "lane-1", "lane").unwrap_err();
        assert!(e.contains("cut short"), "{e}");
    }

    #[test]
    fn a_damaged_key_file_says_so() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(KEY_FILE), "zz").unwrap();
        let e = load_key(dir.path()).unwrap_err().to_string();
        assert!(e.contains("device.key") && e.contains("provision"), "{e}");
    }
}
