//! USB keyboard-type scanners: key events → text, as the scanner's own US
//! layout means them (the system's layout is irrelevant). Sources: the evdev
//! key codes of linux/input-event-codes.h; the decoding rules of
//! the USB HID usage tables. Pure: events in, codes out.

use std::time::Duration;

use evdev::KeyCode;

/// Key event values (linux/input.h).
pub const KEY_UP: i32 = 0;
pub const KEY_DOWN: i32 = 1;
pub const KEY_REPEAT: i32 = 2;

/// Longest code kept; a longer run of keys without Enter is not a scan.
pub const MAX_CODE: usize = 4096;

/// What a key event meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A whole code, ended by the terminator key.
    Code(String),
    /// Keys that never got their terminator: dropped after the inter-key
    /// timeout or when too long.
    Dropped { len: usize },
}

/// Turns a scanner's key events into codes.
#[derive(Debug)]
pub struct KeyDecoder {
    shift: bool,
    caps: bool,
    buf: String,
    overflow: bool,
    last: Option<Duration>,
    /// A pause longer than this between keys drops the partial code.
    pub inter_key_timeout: Duration,
    /// Key that ends a code (KEY_ENTER by default; KEY_KPENTER always ends too).
    pub terminator: KeyCode,
}

impl Default for KeyDecoder {
    fn default() -> Self {
        KeyDecoder {
            shift: false,
            caps: false,
            buf: String::new(),
            overflow: false,
            last: None,
            inter_key_timeout: Duration::from_millis(100),
            terminator: KeyCode::KEY_ENTER,
        }
    }
}

impl KeyDecoder {
    /// Feeds one key event; `at` is its timestamp (any fixed epoch).
    /// May return a dropped partial code and, on the terminator, a code.
    pub fn key(&mut self, code: KeyCode, value: i32, at: Duration) -> Vec<Decoded> {
        let mut out = Vec::new();
        if let Some(last) = self.last
            && at.saturating_sub(last) > self.inter_key_timeout
            && (!self.buf.is_empty() || self.overflow)
        {
            out.push(self.drop_partial());
        }
        self.last = Some(at);
        if code == KeyCode::KEY_LEFTSHIFT || code == KeyCode::KEY_RIGHTSHIFT {
            self.shift = value != KEY_UP;
            return out;
        }
        if value != KEY_DOWN {
            // Releases carry nothing; auto-repeat would double characters.
            return out;
        }
        if code == KeyCode::KEY_CAPSLOCK {
            self.caps = !self.caps;
            return out;
        }
        if code == self.terminator || code == KeyCode::KEY_KPENTER {
            if self.overflow {
                out.push(self.drop_partial());
            } else if !self.buf.is_empty() {
                out.push(Decoded::Code(std::mem::take(&mut self.buf)));
            }
            return out;
        }
        if let Some(c) = char_for(code, self.shift, self.caps) {
            if self.buf.len() >= MAX_CODE {
                self.overflow = true;
            } else {
                self.buf.push(c);
            }
        }
        out
    }

    /// Drops a partial code whose terminator is overdue (call when the
    /// inter-key timeout expires with no further key).
    pub fn flush(&mut self) -> Option<Decoded> {
        (!self.buf.is_empty() || self.overflow).then(|| self.drop_partial())
    }

    fn drop_partial(&mut self) -> Decoded {
        let len = self.buf.len();
        self.buf.clear();
        self.overflow = false;
        Decoded::Dropped { len }
    }
}

/// The character a key gives on a US layout, or None for keys that give none.
pub fn char_for(code: KeyCode, shift: bool, caps: bool) -> Option<char> {
    const LETTERS: [(KeyCode, char); 26] = [
        (KeyCode::KEY_A, 'a'),
        (KeyCode::KEY_B, 'b'),
        (KeyCode::KEY_C, 'c'),
        (KeyCode::KEY_D, 'd'),
        (KeyCode::KEY_E, 'e'),
        (KeyCode::KEY_F, 'f'),
        (KeyCode::KEY_G, 'g'),
        (KeyCode::KEY_H, 'h'),
        (KeyCode::KEY_I, 'i'),
        (KeyCode::KEY_J, 'j'),
        (KeyCode::KEY_K, 'k'),
        (KeyCode::KEY_L, 'l'),
        (KeyCode::KEY_M, 'm'),
        (KeyCode::KEY_N, 'n'),
        (KeyCode::KEY_O, 'o'),
        (KeyCode::KEY_P, 'p'),
        (KeyCode::KEY_Q, 'q'),
        (KeyCode::KEY_R, 'r'),
        (KeyCode::KEY_S, 's'),
        (KeyCode::KEY_T, 't'),
        (KeyCode::KEY_U, 'u'),
        (KeyCode::KEY_V, 'v'),
        (KeyCode::KEY_W, 'w'),
        (KeyCode::KEY_X, 'x'),
        (KeyCode::KEY_Y, 'y'),
        (KeyCode::KEY_Z, 'z'),
    ];
    // (key, plain, shifted)
    const SYMBOLS: [(KeyCode, char, char); 22] = [
        (KeyCode::KEY_1, '1', '!'),
        (KeyCode::KEY_2, '2', '@'),
        (KeyCode::KEY_3, '3', '#'),
        (KeyCode::KEY_4, '4', '$'),
        (KeyCode::KEY_5, '5', '%'),
        (KeyCode::KEY_6, '6', '^'),
        (KeyCode::KEY_7, '7', '&'),
        (KeyCode::KEY_8, '8', '*'),
        (KeyCode::KEY_9, '9', '('),
        (KeyCode::KEY_0, '0', ')'),
        (KeyCode::KEY_MINUS, '-', '_'),
        (KeyCode::KEY_EQUAL, '=', '+'),
        (KeyCode::KEY_LEFTBRACE, '[', '{'),
        (KeyCode::KEY_RIGHTBRACE, ']', '}'),
        (KeyCode::KEY_BACKSLASH, '\\', '|'),
        (KeyCode::KEY_SEMICOLON, ';', ':'),
        (KeyCode::KEY_APOSTROPHE, '\'', '"'),
        (KeyCode::KEY_GRAVE, '`', '~'),
        (KeyCode::KEY_COMMA, ',', '<'),
        (KeyCode::KEY_DOT, '.', '>'),
        (KeyCode::KEY_SLASH, '/', '?'),
        (KeyCode::KEY_SPACE, ' ', ' '),
    ];
    const KEYPAD: [(KeyCode, char); 15] = [
        (KeyCode::KEY_KP0, '0'),
        (KeyCode::KEY_KP1, '1'),
        (KeyCode::KEY_KP2, '2'),
        (KeyCode::KEY_KP3, '3'),
        (KeyCode::KEY_KP4, '4'),
        (KeyCode::KEY_KP5, '5'),
        (KeyCode::KEY_KP6, '6'),
        (KeyCode::KEY_KP7, '7'),
        (KeyCode::KEY_KP8, '8'),
        (KeyCode::KEY_KP9, '9'),
        (KeyCode::KEY_KPDOT, '.'),
        (KeyCode::KEY_KPMINUS, '-'),
        (KeyCode::KEY_KPPLUS, '+'),
        (KeyCode::KEY_KPASTERISK, '*'),
        (KeyCode::KEY_KPSLASH, '/'),
    ];
    if let Some(&(_, c)) = LETTERS.iter().find(|(k, _)| *k == code) {
        return Some(if shift ^ caps {
            c.to_ascii_uppercase()
        } else {
            c
        });
    }
    if let Some(&(_, plain, shifted)) = SYMBOLS.iter().find(|(k, _, _)| *k == code) {
        return Some(if shift { shifted } else { plain });
    }
    KEYPAD.iter().find(|(k, _)| *k == code).map(|&(_, c)| c)
}

/// The key presses (with shift) a US-layout scanner sends for `text`: the
/// inverse of [`char_for`], for simulators and tests. None for a character
/// no key gives.
pub fn keys_for(text: &str) -> Option<Vec<(KeyCode, bool)>> {
    let all = (0..=0x2FFu16).map(KeyCode::new);
    let table: Vec<(KeyCode, bool, char)> = all
        .flat_map(|k| {
            [false, true]
                .into_iter()
                .filter_map(move |s| char_for(k, s, false).map(|c| (k, s, c)))
        })
        .collect();
    text.chars()
        .map(|c| {
            table
                .iter()
                .find(|(_, _, t)| *t == c)
                .map(|&(k, s, _)| (k, s))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A recorded sequence: what a Honeywell-style scanner sent for `T-9x`,
    /// with shift held for `T`, key-up events and 2 ms between events.
    fn recorded() -> Vec<(KeyCode, i32)> {
        vec![
            (KeyCode::KEY_LEFTSHIFT, 1),
            (KeyCode::KEY_T, 1),
            (KeyCode::KEY_T, 0),
            (KeyCode::KEY_LEFTSHIFT, 0),
            (KeyCode::KEY_MINUS, 1),
            (KeyCode::KEY_MINUS, 0),
            (KeyCode::KEY_9, 1),
            (KeyCode::KEY_9, 0),
            (KeyCode::KEY_X, 1),
            (KeyCode::KEY_X, 0),
            (KeyCode::KEY_ENTER, 1),
            (KeyCode::KEY_ENTER, 0),
        ]
    }

    fn run(
        d: &mut KeyDecoder,
        events: &[(KeyCode, i32)],
        step: Duration,
        start: Duration,
    ) -> Vec<Decoded> {
        events
            .iter()
            .enumerate()
            .flat_map(|(i, &(k, v))| d.key(k, v, start + step * i as u32))
            .collect()
    }

    #[test]
    fn recorded_scan_decodes_with_shift() {
        let mut d = KeyDecoder::default();
        assert_eq!(
            run(&mut d, &recorded(), ms(2), ms(0)),
            [Decoded::Code("T-9x".into())]
        );
    }

    #[test]
    fn shifted_digits_and_caps_lock() {
        let mut d = KeyDecoder::default();
        let ev = [
            (KeyCode::KEY_CAPSLOCK, 1),
            (KeyCode::KEY_A, 1),
            (KeyCode::KEY_RIGHTSHIFT, 1),
            (KeyCode::KEY_A, 1),
            (KeyCode::KEY_1, 1),
            (KeyCode::KEY_RIGHTSHIFT, 0),
            (KeyCode::KEY_KP7, 1),
            (KeyCode::KEY_KPENTER, 1),
        ];
        assert_eq!(
            run(&mut d, &ev, ms(1), ms(0)),
            [Decoded::Code("Aa!7".into())]
        );
    }

    #[test]
    fn repeats_are_ignored() {
        let mut d = KeyDecoder::default();
        let ev = [
            (KeyCode::KEY_A, 1),
            (KeyCode::KEY_A, 2),
            (KeyCode::KEY_A, 2),
            (KeyCode::KEY_ENTER, 1),
        ];
        assert_eq!(run(&mut d, &ev, ms(1), ms(0)), [Decoded::Code("a".into())]);
    }

    #[test]
    fn a_pause_drops_the_partial_code() {
        let mut d = KeyDecoder::default();
        let mut out = run(
            &mut d,
            &[(KeyCode::KEY_A, 1), (KeyCode::KEY_B, 1)],
            ms(2),
            ms(0),
        );
        // 500 ms later a full scan arrives: the partial "ab" is dropped first.
        out.extend(run(&mut d, &recorded(), ms(2), ms(500)));
        assert_eq!(
            out,
            [Decoded::Dropped { len: 2 }, Decoded::Code("T-9x".into())]
        );
    }

    #[test]
    fn flush_drops_a_dangling_partial() {
        let mut d = KeyDecoder::default();
        d.key(KeyCode::KEY_A, 1, ms(0));
        assert_eq!(d.flush(), Some(Decoded::Dropped { len: 1 }));
        assert_eq!(d.flush(), None);
    }

    #[test]
    fn tab_terminator_is_configurable() {
        let mut d = KeyDecoder {
            terminator: KeyCode::KEY_TAB,
            ..Default::default()
        };
        let ev = [(KeyCode::KEY_Q, 1), (KeyCode::KEY_TAB, 1)];
        assert_eq!(run(&mut d, &ev, ms(1), ms(0)), [Decoded::Code("q".into())]);
    }

    #[test]
    fn overlong_input_is_dropped_not_kept() {
        let mut d = KeyDecoder::default();
        for i in 0..MAX_CODE + 10 {
            d.key(KeyCode::KEY_A, 1, ms(i as u64 / 100));
        }
        let out = d.key(KeyCode::KEY_ENTER, 1, ms(60));
        assert_eq!(out, [Decoded::Dropped { len: MAX_CODE }]);
    }

    #[test]
    fn keys_for_inverts_char_for() {
        let keys = keys_for("Ab9-{").unwrap();
        assert_eq!(keys[0], (KeyCode::KEY_A, true));
        assert_eq!(keys[1], (KeyCode::KEY_B, false));
        assert_eq!(keys[4], (KeyCode::KEY_LEFTBRACE, true));
        assert!(keys_for("票").is_none());
    }
}
