//! Base45 (RFC 9285): bytes as QR alphanumeric-mode characters, so a QR code
//! of a ticket stays small (alphanumeric mode packs 5.5 bits per character).

const ALPHABET: &[u8; 45] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

pub fn encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len() / 2 * 3 + 2);
    for chunk in data.chunks(2) {
        let (mut n, digits) = match chunk {
            [a, b] => ((*a as u32) << 8 | *b as u32, 3),
            [a] => (*a as u32, 2),
            _ => unreachable!("chunks of 1 or 2"),
        };
        for _ in 0..digits {
            out.push(ALPHABET[(n % 45) as usize] as char);
            n /= 45;
        }
    }
    out
}

/// What is wrong with a Base45 string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Base45Error {
    #[error("character {0:?} is not Base45")]
    Char(char),
    #[error("length {0} is not a Base45 length (3n or 3n+2)")]
    Length(usize),
    #[error("group {0:?} encodes a value over 65535")]
    Overflow(String),
}

pub fn decode(text: &str) -> Result<Vec<u8>, Base45Error> {
    let values: Vec<u32> = text
        .chars()
        .map(|c| {
            ALPHABET
                .iter()
                .position(|&a| a as char == c)
                .map(|p| p as u32)
                .ok_or(Base45Error::Char(c))
        })
        .collect::<Result<_, _>>()?;
    if values.len() % 3 == 1 {
        return Err(Base45Error::Length(values.len()));
    }
    let mut out = Vec::with_capacity(values.len() / 3 * 2 + 1);
    for group in values.chunks(3) {
        match group {
            [c, d, e] => {
                let n = c + d * 45 + e * 45 * 45;
                if n > 0xFFFF {
                    return Err(Base45Error::Overflow(text.to_owned()));
                }
                out.push((n >> 8) as u8);
                out.push(n as u8);
            }
            [c, d] => {
                let n = c + d * 45;
                if n > 0xFF {
                    return Err(Base45Error::Overflow(text.to_owned()));
                }
                out.push(n as u8);
            }
            _ => unreachable!("length checked"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_9285_examples() {
        // RFC 9285 §4.3 and §4.4.
        assert_eq!(encode(b"AB"), "BB8");
        assert_eq!(encode(b"Hello!!"), "%69 VD92EX0");
        assert_eq!(encode(b"base-45"), "UJCLQE7W581");
        assert_eq!(decode("QED8WEX0").unwrap(), b"ietf!");
    }

    #[test]
    fn round_trip_and_errors() {
        let data: Vec<u8> = (0..=255).collect();
        assert_eq!(decode(&encode(&data)).unwrap(), data);
        assert_eq!(decode("a"), Err(Base45Error::Char('a')));
        assert_eq!(decode("ABCD"), Err(Base45Error::Length(4)));
        assert!(matches!(decode("GGW"), Err(Base45Error::Overflow(_))));
    }
}
