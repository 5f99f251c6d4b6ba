//! The ticket token standard's vectors (tests/vectors/ticket-token-v1-conformance.json,
//! made by scripts/token-vectors.py with an Ed25519 and Base45 implementation
//! other than ours): every token vector through gated's verifier with the
//! reason the standard names, every valid one re-encoded byte for byte, every
//! Base45 and holder-hash vector through gated's own functions.

use ed25519_dalek::SigningKey;
use gated::tickets::base45;
use gated::tickets::token::{self, Payload, Pinned};
use serde_json::Value;
use tests::repo_root;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn vectors() -> Value {
    let text =
        std::fs::read_to_string(repo_root().join("tests/vectors/ticket-token-v1-conformance.json"))
            .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn minute(v: &Value) -> Option<u32> {
    v.as_u64().map(|m| m as u32)
}

#[test]
fn every_token_vector_gets_the_standards_answer() {
    let v = vectors();
    let id_key = hex(v["id_hash_key"].as_str().unwrap());
    let signers: Vec<(String, SigningKey)> = v["signers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let seed: [u8; 32] = hex(s["seed"].as_str().unwrap()).try_into().unwrap();
            (
                s["name"].as_str().unwrap().to_owned(),
                SigningKey::from_bytes(&seed),
            )
        })
        .collect();
    let tokens = v["tokens"].as_array().unwrap();
    let (mut valid, mut invalid) = (0, 0);
    let mut wrong = Vec::new();
    for t in tokens {
        let name = t["name"].as_str().unwrap();
        let text = t["token"].as_str().unwrap();
        let now = t["now"].as_u64().unwrap() as u32;
        let pinned: Vec<Pinned> = t["pinned"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| Pinned {
                key_id: k["key_id"].as_u64().unwrap() as u16,
                public_key: hex(k["public_key"].as_str().unwrap()).try_into().unwrap(),
                valid_from: minute(&k["valid_from"]),
                valid_until: minute(&k["valid_until"]),
            })
            .collect();
        let id_number = t["id_number"].as_str();
        let got = token::check(text, &pinned, now, &id_key, id_number);
        match t["expect"].as_str().unwrap() {
            "valid" => {
                valid += 1;
                let d = &t["decoded"];
                let want = Payload {
                    key_id: d["key_id"].as_u64().unwrap() as u16,
                    ticket_id: d["ticket_id"].as_u64().unwrap(),
                    product_id: d["product_id"].as_u64().unwrap() as u32,
                    valid_from: d["valid_from"].as_u64().unwrap() as u32,
                    valid_until: d["valid_until"].as_u64().unwrap() as u32,
                    entries: d["entries"].as_u64().unwrap() as u16,
                    holder: d["holder"].as_str().map(|h| hex(h).try_into().unwrap()),
                    group: d["group"].as_u64().map(|g| g as u16),
                    seed: hex(d["seed"].as_str().unwrap()).try_into().unwrap(),
                };
                match got {
                    Ok(p) if p == want => {
                        assert_eq!(
                            want.persons(),
                            d["persons"].as_u64().unwrap() as u16,
                            "{name}: persons"
                        );
                    }
                    other => wrong.push(format!("{name}: expected valid, got {other:?}")),
                }
                // Our encoder writes exactly the standard's text.
                if let Some(by) = t["encoded_by"].as_str() {
                    let sk = &signers.iter().find(|(n, _)| n == by).unwrap().1;
                    assert_eq!(
                        token::encode(&want, sk),
                        text.trim_end_matches(['\r', '\n']),
                        "{name}: encoding"
                    );
                }
            }
            "invalid" => {
                invalid += 1;
                let reason = t["reason"].as_str().unwrap();
                match got {
                    Err(e) if e.reason() == reason => {}
                    other => wrong.push(format!(
                        "{name}: expected {reason}, got {:?}",
                        other.map_err(|e| e.reason())
                    )),
                }
            }
            other => panic!("{name}: unknown expectation {other}"),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} vector(s) answered wrongly:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert_eq!(valid, v["counts"]["valid"].as_u64().unwrap() as usize);
    assert_eq!(invalid, v["counts"]["invalid"].as_u64().unwrap() as usize);
    assert!(
        invalid >= 30,
        "the standard asks for at least 30 negative vectors"
    );
}

#[test]
fn every_base45_vector_decodes_as_the_standard_says() {
    let v = vectors();
    for b in v["base45"].as_array().unwrap() {
        let name = b["name"].as_str().unwrap();
        let text = b["text"].as_str().unwrap();
        match b["bytes"].as_str() {
            Some(bytes) => {
                assert_eq!(base45::decode(text).ok(), Some(hex(bytes)), "{name}");
                assert_eq!(base45::encode(&hex(bytes)), text, "{name}: encoding");
            }
            None => assert!(base45::decode(text).is_err(), "{name}: accepted"),
        }
    }
}

#[test]
fn every_holder_hash_vector_normalises_as_the_standard_says() {
    let v = vectors();
    let key = hex(v["id_hash_key"].as_str().unwrap());
    for h in v["holder_hash"].as_array().unwrap() {
        let name = h["name"].as_str().unwrap();
        let id = h["id_number"].as_str().unwrap();
        match h["hash"].as_str() {
            Some(hash) => assert_eq!(
                token::holder_hash(&key, id).map(|h| h.to_vec()),
                Ok(hex(hash)),
                "{name}"
            ),
            None => assert_eq!(
                token::holder_hash(&key, id).map_err(|e| e.reason()),
                Err("bad_id_number"),
                "{name}"
            ),
        }
    }
}
