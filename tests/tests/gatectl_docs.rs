//! gatectl's bash and zsh completions and man pages are generated from its
//! clap definition (`gatectl generate-docs DIR`) and kept in gated/doc, which
//! the image and the Yocto recipe install: they must match the binary.
//! `UPDATE_GATECTL_DOCS=1` rewrites them.

use std::collections::BTreeSet;

#[test]
fn the_completions_and_man_pages_match_gatectl() {
    let committed = tests::repo_root().join("gated/doc");
    let out = tempfile::tempdir().unwrap();
    let dir = if std::env::var_os("UPDATE_GATECTL_DOCS").is_some() {
        for f in std::fs::read_dir(&committed).unwrap() {
            std::fs::remove_file(f.unwrap().path()).unwrap();
        }
        committed.clone()
    } else {
        out.path().to_owned()
    };
    let status = std::process::Command::new(tests::procs::bin("gatectl"))
        .arg("generate-docs")
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    let names = |d: &std::path::Path| -> BTreeSet<String> {
        std::fs::read_dir(d)
            .unwrap()
            .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    let made = names(&dir);
    assert!(made.contains("gatectl.1") && made.contains("gatectl-update-install.1"));
    assert!(made.contains("gatectl.bash") && made.contains("_gatectl"));
    assert_eq!(
        names(&committed),
        made,
        "gated/doc is out of date: UPDATE_GATECTL_DOCS=1 cargo nextest run -p tests -E 'test(the_completions)'"
    );
    for f in &made {
        assert!(
            std::fs::read(committed.join(f)).unwrap() == std::fs::read(dir.join(f)).unwrap(),
            "gated/doc/{f} is out of date: UPDATE_GATECTL_DOCS=1 cargo nextest run -p tests -E 'test(the_completions)'"
        );
    }
}
