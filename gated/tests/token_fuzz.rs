//! The token parser reads any QR a visitor shows: arbitrary text and
//! mutations of a valid token never panic and are never accepted (except the
//! reader's line ending, which the standard removes). Bounded runs (a fixed
//! number of cases each), part of the test command; `fuzz/` has a
//! cargo-fuzz target for longer runs.

use ed25519_dalek::SigningKey;
use gated::tickets::token::{self, Payload, Pinned};
use proptest::prelude::*;

const NOW: u32 = 13_849_080; // 2026-05-01 10:00
const ID_KEY: &[u8] = &[7; 32];

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 500,
        ..ProptestConfig::default()
    }
}

fn signer() -> SigningKey {
    SigningKey::from_bytes(&[1; 32])
}

fn pinned() -> Vec<Pinned> {
    vec![Pinned {
        key_id: 1,
        public_key: signer().verifying_key().to_bytes(),
        valid_from: None,
        valid_until: None,
    }]
}

fn valid_token(holder: bool, group: Option<u16>) -> (String, Payload) {
    let p = Payload {
        key_id: 1,
        ticket_id: 42,
        product_id: 3,
        valid_from: NOW - 60,
        valid_until: NOW + 600,
        entries: 1,
        holder: holder.then(|| token::holder_hash(ID_KEY, "11010519491231002X").unwrap()),
        group,
        seed: [5; 8],
    };
    (token::encode(&p, &signer()), p)
}

/// The QR alphanumeric set and a few others a scanner may deliver.
fn token_char() -> impl Strategy<Value = char> {
    prop_oneof![
        8 => proptest::sample::select(
            "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:".chars().collect::<Vec<_>>()
        ),
        1 => any::<char>(),
        1 => proptest::sample::select(vec!['a', 'x', '\r', '\n', '\t', '\u{3000}', 'Ｘ']),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    Replace(usize, char),
    Insert(usize, char),
    Delete(usize),
    Truncate(usize),
    Append(String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), token_char()).prop_map(|(i, c)| Mutation::Replace(i, c)),
        (any::<usize>(), token_char()).prop_map(|(i, c)| Mutation::Insert(i, c)),
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Truncate),
        proptest::collection::vec(token_char(), 1..8)
            .prop_map(|v| Mutation::Append(v.into_iter().collect())),
    ]
}

fn apply(text: &str, m: &Mutation) -> String {
    let mut c: Vec<char> = text.chars().collect();
    let n = c.len();
    if n == 0 && !matches!(m, Mutation::Insert(..) | Mutation::Append(_)) {
        return String::new();
    }
    match m {
        Mutation::Replace(i, ch) => c[i % n] = *ch,
        Mutation::Insert(i, ch) => c.insert(i % (n + 1), *ch),
        Mutation::Delete(i) => {
            c.remove(i % n);
        }
        Mutation::Truncate(i) => c.truncate(i % n),
        Mutation::Append(s) => c.extend(s.chars()),
    }
    c.into_iter().collect()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_text_is_refused_without_a_panic(
        text in proptest::collection::vec(token_char(), 0..200)
            .prop_map(|v| v.into_iter().collect::<String>()),
        prefixed in any::<bool>(),
    ) {
        let text = if prefixed { format!("T1:{text}") } else { text };
        // Nothing here was signed by the pinned key: never accepted.
        prop_assert!(token::check(&text, &pinned(), NOW, ID_KEY, None).is_err());
        let _ = token::parse(&text);
        let _ = token::holder_hash(ID_KEY, &text);
    }

    #[test]
    fn a_mutated_valid_token_is_never_accepted(
        holder in any::<bool>(),
        group in proptest::option::of(1u16..500),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let (original, payload) = valid_token(holder, group);
        prop_assert_eq!(
            token::check(&original, &pinned(), NOW, ID_KEY, None),
            Ok(payload.clone())
        );
        let mut text = original.clone();
        for m in &mutations {
            text = apply(&text, m);
        }
        // Only the line ending may differ (the standard removes it).
        if let Ok(p) = token::check(&text, &pinned(), NOW, ID_KEY, Some("11010519491231002X")) {
            prop_assert_eq!(text.trim_end_matches(['\r', '\n']), original.as_str());
            prop_assert_eq!(p, payload);
        }
    }
}
