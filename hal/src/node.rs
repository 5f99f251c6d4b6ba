//! Checks on device nodes (`/dev/ttyUSB0`, `/dev/input/event3`, …) that can be
//! made without opening them: opening a serial port toggles its modem lines and
//! some devices react to that, so configuration checks must not.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::unistd::{AccessFlags, Gid, Group, access};

/// Why a device node cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(
        "{path} does not exist (is the device plugged in, and does a udev rule create this name?)"
    )]
    Missing { path: PathBuf },
    #[error("{path} is a {kind}, not a device node, socket or pseudo-terminal")]
    NotADevice { path: PathBuf, kind: &'static str },
    #[error("{path}: permission denied{}", group_hint(.group))]
    PermissionDenied {
        path: PathBuf,
        group: Option<String>,
    },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn group_hint(group: &Option<String>) -> String {
    match group {
        Some(g) => format!(" (the node belongs to group `{g}`: add this user to it)"),
        None => String::new(),
    }
}

/// Checks that `path` exists, is a character device (or a socket, for
/// simulators), and is readable and writable by this process.
///
/// Symbolic links are followed: udev's stable names (`/dev/ticket-printer`)
/// and PTY symlinks of the simulators are links.
pub fn check_char_device(path: &Path) -> Result<(), NodeError> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(NodeError::Missing {
                path: path.to_owned(),
            });
        }
        Err(source) => {
            return Err(NodeError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    let ft = meta.file_type();
    if !(ft.is_char_device() || ft.is_socket()) {
        let kind = if ft.is_dir() {
            "directory"
        } else if ft.is_file() {
            "regular file"
        } else if ft.is_block_device() {
            "block device"
        } else {
            "special file"
        };
        return Err(NodeError::NotADevice {
            path: path.to_owned(),
            kind,
        });
    }
    match access(path, AccessFlags::R_OK | AccessFlags::W_OK) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EACCES) | Err(nix::errno::Errno::EPERM) => {
            Err(NodeError::PermissionDenied {
                path: path.to_owned(),
                group: group_name(meta.gid()),
            })
        }
        Err(e) => Err(NodeError::Io {
            path: path.to_owned(),
            source: e.into(),
        }),
    }
}

fn group_name(gid: u32) -> Option<String> {
    Group::from_gid(Gid::from_raw(gid))
        .ok()
        .flatten()
        .map(|g| g.name)
}

/// The error for a node this process may not open, naming the group that
/// would give access.
pub fn permission_denied(path: &Path) -> NodeError {
    NodeError::PermissionDenied {
        path: path.to_owned(),
        group: fs::metadata(path).ok().and_then(|m| group_name(m.gid())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_null_is_a_usable_char_device() {
        check_char_device(Path::new("/dev/null")).unwrap();
    }

    #[test]
    fn missing_node_says_so() {
        let err = check_char_device(Path::new("/dev/no-such-printer")).unwrap_err();
        assert!(matches!(err, NodeError::Missing { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("/dev/no-such-printer does not exist")
        );
    }

    #[test]
    fn regular_file_is_not_a_device() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let err = check_char_device(f.path()).unwrap_err();
        assert!(
            matches!(
                err,
                NodeError::NotADevice {
                    kind: "regular file",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn directory_is_not_a_device() {
        let err = check_char_device(Path::new("/dev")).unwrap_err();
        assert!(err.to_string().contains("is a directory"), "{err}");
    }
}
