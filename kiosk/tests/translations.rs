//! Every text of the screens has a Chinese translation that keeps its
//! placeholders; an English string showing up on a Chinese screen fails here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn slint_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            slint_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "slint") {
            out.push(p);
        }
    }
}

/// The string literal starting at `s` (just after its opening quote), unescaped,
/// and the rest after the closing quote.
fn literal(s: &str) -> (String, &str) {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                if let Some((_, n)) = chars.next() {
                    out.push(match n {
                        'n' => '\n',
                        other => other,
                    });
                }
            }
            '"' => return (out, &s[i + 1..]),
            c => out.push(c),
        }
    }
    panic!("unterminated string literal");
}

/// The msgids of `@tr("…")` (and the singular of `@tr("…" | "…" % n)`) in the UI.
fn ui_strings() -> BTreeMap<String, String> {
    let mut files = Vec::new();
    slint_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("ui"),
        &mut files,
    );
    let mut found = BTreeMap::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("@tr(") {
            let after = rest[at + 4..].trim_start();
            let Some(body) = after.strip_prefix('"') else {
                panic!("{}: @tr( without a string literal", f.display());
            };
            let (id, tail) = literal(body);
            found.insert(id, f.file_name().unwrap().to_string_lossy().into_owned());
            rest = tail;
        }
    }
    found
}

/// msgid → msgstr (the first form for plurals) of a .po file.
fn po(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut map = BTreeMap::new();
    let mut id: Option<String> = None;
    for line in text.lines() {
        let value = |prefix: &str| {
            line.strip_prefix(prefix)
                .map(|r| literal(r.trim_start().strip_prefix('"').unwrap()).0)
        };
        if let Some(v) = value("msgid ") {
            id = Some(v);
        } else if let Some(v) = value("msgstr ").or_else(|| value("msgstr[0] "))
            && let Some(k) = id.take()
        {
            map.insert(k, v);
        }
    }
    map
}

fn placeholders(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s
        .split('{')
        .skip(1)
        .filter_map(|p| p.split_once('}').map(|(name, _)| name.to_owned()))
        .collect();
    v.sort();
    v
}

#[test]
fn every_ui_string_has_a_chinese_translation_with_the_same_placeholders() {
    let strings = ui_strings();
    assert!(strings.len() > 100, "found only {} strings", strings.len());
    let po_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("lang/zh_CN/LC_MESSAGES/kiosk.po");
    let zh = po(&po_path);
    let mut missing = Vec::new();
    for (id, file) in &strings {
        match zh.get(id) {
            Some(t) if !t.trim().is_empty() => {
                assert_eq!(
                    placeholders(id),
                    placeholders(t),
                    "{file}: {id:?} → {t:?} changes the placeholders"
                );
            }
            _ => missing.push(format!("{file}: {id:?}")),
        }
    }
    assert!(
        missing.is_empty(),
        "no Chinese translation in {} for:\n{}",
        po_path.display(),
        missing.join("\n")
    );
    // Translations nobody uses any more are removed, not left to rot.
    let stale: Vec<&String> = zh
        .keys()
        .filter(|k| !k.is_empty() && !strings.contains_key(*k))
        .collect();
    assert!(stale.is_empty(), "unused translations: {stale:?}");
}
