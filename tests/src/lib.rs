//! Helpers shared by the workspace-level tests in `tests/tests/`.

use std::path::{Path, PathBuf};

/// The repository's top folder, where `image/`, `demo/` and the README live.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository")
        .to_owned()
}
