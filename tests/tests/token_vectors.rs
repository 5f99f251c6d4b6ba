//! The ticket token's test vectors (tests/vectors/ticket-token-v1.json):
//! the encoder produces exactly these strings and the verifier accepts them;
//! the same token under the wrong key or with one character changed is refused.

use ed25519_dalek::{SigningKey, VerifyingKey};
use gated::tickets::token::{self, Payload, TokenError};
use tests::repo_root;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn vectors_encode_and_verify() {
    let text =
        std::fs::read_to_string(repo_root().join("tests/vectors/ticket-token-v1.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let id_key = v["id_hash_key"].as_str().unwrap().as_bytes();
    let cases = v["valid"].as_array().unwrap();
    assert!(cases.len() >= 3);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let seed = c["signing_seed_byte"].as_u64().unwrap() as u8;
        let sk = SigningKey::from_bytes(&[seed; 32]);
        let pk =
            VerifyingKey::from_bytes(&hex(c["public_key"].as_str().unwrap()).try_into().unwrap())
                .unwrap();
        assert_eq!(sk.verifying_key(), pk, "{name}: public key");
        let p = &c["payload"];
        let payload = Payload {
            key_id: p["key_id"].as_u64().unwrap() as u16,
            ticket_id: p["ticket_id"].as_u64().unwrap(),
            product_id: p["product_id"].as_u64().unwrap() as u32,
            valid_from: p["valid_from"].as_u64().unwrap() as u32,
            valid_until: p["valid_until"].as_u64().unwrap() as u32,
            entries: p["entries"].as_u64().unwrap() as u16,
            holder: p["holder_id_number"]
                .as_str()
                .map(|id| token::holder_hash(id_key, id)),
            group: p["group"].as_u64().map(|g| g as u16),
            seed: hex(p["seed"].as_str().unwrap()).try_into().unwrap(),
        };
        let expected = c["token"].as_str().unwrap();
        assert_eq!(token::encode(&payload, &sk), expected, "{name}: encoding");
        let key_id = payload.key_id;
        assert_eq!(
            token::verify(expected, |id| (id == key_id).then_some(pk)),
            Ok(payload.clone()),
            "{name}"
        );

        // Another key under the same id: forged.
        let other = SigningKey::from_bytes(&[seed.wrapping_add(100); 32]).verifying_key();
        assert_eq!(
            token::verify(expected, |_| Some(other)),
            Err(TokenError::BadSignature),
            "{name}"
        );
        // One Base45 digit changed: forged or damaged, never accepted.
        let mut chars: Vec<char> = expected.chars().collect();
        let i = chars.len() / 2;
        chars[i] = if chars[i] == '0' { '1' } else { '0' };
        let tampered: String = chars.into_iter().collect();
        assert!(
            token::verify(&tampered, |_| Some(pk)).is_err(),
            "{name}: tampered token accepted"
        );
    }
}
