//! ESC/POS: the bytes of a ticket, and the printer's real-time status.
//!
//! Constants are from python-escpos `constants.py`, escpos-rs
//! `domain/constants.rs` / `status.rs` and the Cashino KP-628E kiosk printer
//! manual. Pure functions only: no I/O here.

use encoding_rs::GB18030;

/// ESC @: initialise (clears modes, keeps the buffer).
pub const INIT: [u8; 2] = [0x1B, 0x40];
/// FS &: Chinese (Kanji) mode on: two-byte GB codes from here on.
pub const CHINESE_ON: [u8; 2] = [0x1C, 0x26];
/// FS .: Chinese mode off.
pub const CHINESE_OFF: [u8; 2] = [0x1C, 0x2E];
/// ESC a n: alignment.
pub const ALIGN: [u8; 2] = [0x1B, 0x61];
/// GS ! n: character size, high nibble width-1, low nibble height-1.
pub const SIZE: [u8; 2] = [0x1D, 0x21];
/// ESC E n: bold on (1) / off (0).
pub const BOLD: [u8; 2] = [0x1B, 0x45];
/// ESC d n: print and feed n lines.
pub const FEED: [u8; 2] = [0x1B, 0x64];
/// GS V 0x41 n: feed n and full cut (function B).
pub const FEED_AND_CUT: [u8; 3] = [0x1D, 0x56, 0x41];
/// GS ( k: 2-D symbol (QR) commands, cn = 0x31.
pub const QR_PREFIX: [u8; 3] = [0x1D, 0x28, 0x6B];
/// GS H n: barcode human-readable text position (2 = below).
pub const BARCODE_HRI: [u8; 2] = [0x1D, 0x48];
/// GS h n: barcode height in dots.
pub const BARCODE_HEIGHT: [u8; 2] = [0x1D, 0x68];
/// GS k m n d…: print barcode, function B.
pub const BARCODE: [u8; 2] = [0x1D, 0x6B];
/// GS k m = 73: CODE128 (data starts with a code-set selector, `{B`).
pub const CODE128: u8 = 0x49;
/// GS r 1: transmit paper sensor status; answered in buffer order.
pub const GS_R_PAPER: [u8; 3] = [0x1D, 0x72, 0x01];
/// DLE EOT n: transmit real-time status n (1..=4), answered with one byte.
pub const DLE_EOT: [u8; 2] = [0x10, 0x04];
/// GS g 2 m nL nH, counter 178: transmit Epson's cumulative autocutter
/// maintenance counter. Answered in buffer order: `_`, the count in ASCII
/// decimal, NUL. Optional: many ESC/POS printers lack it.
pub const CUT_COUNTER: [u8; 6] = [0x1D, 0x67, 0x32, 0x00, 178, 0x00];
/// The counter number GS g 2 asks for the cumulative autocutter count.
pub const CUT_COUNTER_ID: u16 = 178;

/// A maintenance counter's answer (the simulator's side).
pub fn encode_counter(value: u32) -> Vec<u8> {
    let mut out = vec![b'_'];
    out.extend_from_slice(value.to_string().as_bytes());
    out.push(0);
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left = 0,
    Center = 1,
    Right = 2,
}

/// QR error-correction level (GS ( k fn 169: 48..51).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QrEcc {
    L = 0x30,
    M = 0x31,
    Q = 0x32,
    H = 0x33,
}

/// What can be wrong with a ticket before it is sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    #[error("QR payload of {0} bytes is over the 7089-byte limit of GS ( k")]
    QrTooLong(usize),
    #[error("QR module size {0} is outside 1..=16")]
    QrModule(u8),
    #[error("barcode {0:?} is not printable ASCII of at most 253 characters")]
    Barcode(String),
}

/// Builds the byte stream of one ticket.
///
/// Text is encoded as GB18030 inside Chinese mode; characters the printer's
/// GBK font cannot show (4-byte GB18030 sequences) print as `?`.
#[derive(Debug, Clone)]
pub struct TicketBuilder {
    bytes: Vec<u8>,
}

impl Default for TicketBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl TicketBuilder {
    /// Starts with ESC @ and Chinese mode on.
    pub fn new() -> Self {
        let mut bytes = Vec::with_capacity(512);
        bytes.extend_from_slice(&INIT);
        bytes.extend_from_slice(&CHINESE_ON);
        TicketBuilder { bytes }
    }

    pub fn align(mut self, a: Align) -> Self {
        self.bytes.extend_from_slice(&ALIGN);
        self.bytes.push(a as u8);
        self
    }

    /// Character size multipliers, each 1..=8 (clamped).
    pub fn size(mut self, width: u8, height: u8) -> Self {
        let w = width.clamp(1, 8) - 1;
        let h = height.clamp(1, 8) - 1;
        self.bytes.extend_from_slice(&SIZE);
        self.bytes.push((w << 4) | h);
        self
    }

    pub fn bold(mut self, on: bool) -> Self {
        self.bytes.extend_from_slice(&BOLD);
        self.bytes.push(on as u8);
        self
    }

    /// One line of text, terminated with LF. Control characters are dropped
    /// so text can never inject a command.
    pub fn line(mut self, text: &str) -> Self {
        let clean: String = text.chars().filter(|c| !c.is_control()).collect();
        self.bytes.extend_from_slice(&encode_gbk(&clean));
        self.bytes.push(b'\n');
        self
    }

    /// A QR code: model 2, module size, error correction, store, print.
    pub fn qr(mut self, payload: &str, module: u8, ecc: QrEcc) -> Result<Self, TicketError> {
        let data = payload.as_bytes();
        if data.len() > 7089 {
            return Err(TicketError::QrTooLong(data.len()));
        }
        if !(1..=16).contains(&module) {
            return Err(TicketError::QrModule(module));
        }
        let q = |b: &mut Vec<u8>, body: &[u8]| {
            b.extend_from_slice(&QR_PREFIX);
            let len = body.len() as u16;
            b.extend_from_slice(&len.to_le_bytes());
            b.extend_from_slice(body);
        };
        // fn 165: model 2
        q(&mut self.bytes, &[0x31, 0x41, 0x32, 0x00]);
        // fn 167: module size
        q(&mut self.bytes, &[0x31, 0x43, module]);
        // fn 169: error correction
        q(&mut self.bytes, &[0x31, 0x45, ecc as u8]);
        // fn 180: store; pL+pH*256 = len(d) + 3
        let mut store = Vec::with_capacity(data.len() + 3);
        store.extend_from_slice(&[0x31, 0x50, 0x30]);
        store.extend_from_slice(data);
        q(&mut self.bytes, &store);
        // fn 181: print the stored symbol
        q(&mut self.bytes, &[0x31, 0x51, 0x30]);
        Ok(self)
    }

    /// A CODE128 barcode (code set B) with its text printed below.
    pub fn barcode128(mut self, data: &str) -> Result<Self, TicketError> {
        if data.is_empty() || data.len() > 253 || !data.bytes().all(|b| (0x20..0x7F).contains(&b)) {
            return Err(TicketError::Barcode(data.to_owned()));
        }
        self.bytes.extend_from_slice(&BARCODE_HRI);
        self.bytes.push(2);
        self.bytes.extend_from_slice(&BARCODE_HEIGHT);
        self.bytes.push(80);
        self.bytes.extend_from_slice(&BARCODE);
        self.bytes.push(CODE128);
        self.bytes.push((data.len() + 2) as u8);
        self.bytes.extend_from_slice(b"{B");
        self.bytes.extend_from_slice(data.as_bytes());
        Ok(self)
    }

    pub fn feed(mut self, lines: u8) -> Self {
        self.bytes.extend_from_slice(&FEED);
        self.bytes.push(lines);
        self
    }

    /// Feeds past the cutter and cuts; the ticket ends here.
    pub fn cut(mut self) -> Vec<u8> {
        self.bytes.extend_from_slice(&CHINESE_OFF);
        self.bytes.extend_from_slice(&FEED_AND_CUT);
        self.bytes.push(3);
        self.bytes
    }
}

/// UTF-8 → GB18030, with `?` for characters outside the 2-byte (GBK) range
/// that printer fonts carry.
pub fn encode_gbk(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut buf = [0u8; 4];
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c as u8);
            continue;
        }
        // ¥ has no GBK code; prices print with the full-width ￥ (A3 A4) instead.
        let c = if c == '¥' { '￥' } else { c };
        let (enc, _, _) = GB18030.encode(c.encode_utf8(&mut buf));
        if enc.len() == 2 {
            out.extend_from_slice(&enc);
        } else {
            out.push(b'?');
        }
    }
    out
}

/// GB18030 (GBK subset) → UTF-8, for the simulator and for tests.
pub fn decode_gbk(bytes: &[u8]) -> String {
    GB18030.decode_without_bom_handling(bytes).0.into_owned()
}

/// Paper as the roll sensors see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Paper {
    Ok,
    NearEnd,
    Out,
}

/// The four DLE EOT answers, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Status {
    pub online: bool,
    pub paper: Paper,
    pub cover_open: bool,
    pub cutter_error: bool,
    pub unrecoverable_error: bool,
    /// Head overheat or voltage: clears by itself.
    pub auto_recoverable_error: bool,
}

impl Status {
    /// True when a ticket can be printed now.
    pub fn ready(&self) -> bool {
        self.online
            && self.paper != Paper::Out
            && !self.cover_open
            && !self.cutter_error
            && !self.unrecoverable_error
            && !self.auto_recoverable_error
    }

    /// What is wrong, in words an engineer or the kiosk can show; None when ready.
    pub fn problem(&self) -> Option<&'static str> {
        if self.paper == Paper::Out {
            Some("out of paper")
        } else if self.cover_open {
            Some("cover open")
        } else if self.cutter_error {
            Some("cutter error (paper jam?)")
        } else if self.unrecoverable_error {
            Some("unrecoverable error: power-cycle the printer")
        } else if self.auto_recoverable_error {
            Some("head overheated or supply voltage out of range")
        } else if !self.online {
            Some("offline")
        } else {
            None
        }
    }
}

/// A DLE EOT answer that does not have the fixed bit pattern 0xx1xx10.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("byte {byte:#04x} is not a DLE EOT {n} status (pattern 0xx1xx10)")]
pub struct BadStatus {
    pub n: u8,
    pub byte: u8,
}

/// A GS r 1 answer has bit4 = 0 and bit7 = 0 (bits 0-1 near end, 2-3 paper
/// end); every DLE EOT answer has bit4 = 1, so the two never mix up.
pub fn is_paper_sensor_answer(byte: u8) -> bool {
    byte & 0x90 == 0
}

/// The GS r 1 answer for a paper state (the simulator's side).
pub fn encode_paper_sensor(paper: Paper) -> u8 {
    match paper {
        Paper::Ok => 0x00,
        Paper::NearEnd => 0x03,
        Paper::Out => 0x0F,
    }
}

/// Checks the fixed bits of a DLE EOT answer: bit1 = 1, bit4 = 1, bit0 = bit7 = 0.
pub fn check_status_byte(n: u8, byte: u8) -> Result<u8, BadStatus> {
    if byte & 0b1001_0011 == 0b0001_0010 {
        Ok(byte)
    } else {
        Err(BadStatus { n, byte })
    }
}

/// Decodes the answers to DLE EOT 1, 2, 3 and 4 (in that order).
pub fn decode_status(answers: [u8; 4]) -> Result<Status, BadStatus> {
    let [s1, s2, s3, s4] = answers;
    check_status_byte(1, s1)?;
    check_status_byte(2, s2)?;
    check_status_byte(3, s3)?;
    check_status_byte(4, s4)?;
    let paper = if s4 & 0x60 == 0x60 || s2 & 0x20 != 0 {
        Paper::Out
    } else if s4 & 0x0C == 0x0C {
        Paper::NearEnd
    } else {
        Paper::Ok
    };
    Ok(Status {
        // n=1 bit3: offline
        online: s1 & 0x08 == 0,
        paper,
        // n=2 bit2: cover open
        cover_open: s2 & 0x04 != 0,
        // n=3 bit3: autocutter error; bit5 unrecoverable; bit6 auto-recoverable
        cutter_error: s3 & 0x08 != 0,
        unrecoverable_error: s3 & 0x20 != 0,
        auto_recoverable_error: s3 & 0x40 != 0,
    })
}

/// Encodes a status as the four DLE EOT answer bytes (the simulator's side).
pub fn encode_status(s: &Status) -> [u8; 4] {
    let base = 0x12;
    let mut s1 = base;
    let mut s2 = base;
    let mut s3 = base;
    let mut s4 = base;
    if !s.online {
        s1 |= 0x08;
    }
    if s.cover_open {
        s2 |= 0x04;
    }
    match s.paper {
        Paper::Ok => {}
        Paper::NearEnd => s4 |= 0x0C,
        Paper::Out => {
            s4 |= 0x6C;
            s2 |= 0x20;
        }
    }
    if s.cutter_error {
        s3 |= 0x08;
    }
    if s.unrecoverable_error {
        s3 |= 0x20;
    }
    if s.auto_recoverable_error {
        s3 |= 0x40;
    }
    // Any error puts the printer offline (n=1 bit3) and flags n=2 bit6.
    if s.cover_open || s.paper == Paper::Out || s.cutter_error || s.unrecoverable_error {
        s1 |= 0x08;
        s2 |= 0x40;
    }
    [s1, s2, s3, s4]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_bytes_match_the_kp628_worked_example() {
        // KP-628E manual: store "ABC" with module 3, ECC L, then print.
        let b = TicketBuilder { bytes: Vec::new() }
            .qr("ABC", 3, QrEcc::L)
            .unwrap()
            .bytes;
        let expected: Vec<u8> = [
            &[0x1D, 0x28, 0x6B, 0x04, 0x00, 0x31, 0x41, 0x32, 0x00][..],
            &[0x1D, 0x28, 0x6B, 0x03, 0x00, 0x31, 0x43, 0x03],
            &[0x1D, 0x28, 0x6B, 0x03, 0x00, 0x31, 0x45, 0x30],
            &[
                0x1D, 0x28, 0x6B, 0x06, 0x00, 0x31, 0x50, 0x30, 0x41, 0x42, 0x43,
            ],
            &[0x1D, 0x28, 0x6B, 0x03, 0x00, 0x31, 0x51, 0x30],
        ]
        .concat();
        assert_eq!(b, expected);
    }

    #[test]
    fn qr_store_length_counts_three_header_bytes() {
        let payload = "x".repeat(300);
        let b = TicketBuilder { bytes: Vec::new() }
            .qr(&payload, 4, QrEcc::M)
            .unwrap()
            .bytes;
        // The store command is the 4th; 303 = 0x012F little-endian.
        let store = b
            .windows(5)
            .position(|w| w == [0x1D, 0x28, 0x6B, 0x2F, 0x01])
            .unwrap();
        assert_eq!(&b[store + 5..store + 8], &[0x31, 0x50, 0x30]);
    }

    #[test]
    fn chinese_text_is_gb18030_inside_chinese_mode() {
        let b = TicketBuilder::new().line("景区 A").cut();
        // 景 = BE B0, 区 = C7 F8 in GB2312.
        assert_eq!(&b[..4], &[0x1B, 0x40, 0x1C, 0x26]);
        assert_eq!(&b[4..11], &[0xBE, 0xB0, 0xC7, 0xF8, b' ', b'A', b'\n']);
        assert_eq!(&b[11..], &[0x1C, 0x2E, 0x1D, 0x56, 0x41, 0x03]);
    }

    #[test]
    fn characters_outside_gbk_become_question_marks() {
        // U+20000 (CJK Ext. B) is a 4-byte GB18030 sequence.
        assert_eq!(encode_gbk("a\u{20000}b"), b"a?b");
        assert_eq!(encode_gbk("¥5"), [0xA3, 0xA4, b'5']);
    }

    #[test]
    fn control_characters_cannot_inject_commands() {
        let b = TicketBuilder { bytes: Vec::new() }
            .line("a\x1b@\x1dVb")
            .bytes;
        assert_eq!(b, b"a@Vb\n");
    }

    #[test]
    fn barcode128_uses_code_set_b() {
        let b = TicketBuilder { bytes: Vec::new() }
            .barcode128("T123")
            .unwrap()
            .bytes;
        assert_eq!(
            b,
            [
                0x1D, 0x48, 2, 0x1D, 0x68, 80, 0x1D, 0x6B, 0x49, 6, b'{', b'B', b'T', b'1', b'2',
                b'3'
            ]
        );
        assert!(TicketBuilder::new().barcode128("票").is_err());
    }

    #[test]
    fn idle_printer_status_is_ready() {
        // Idle answers from the escpos-rs tests / KP-628 table: 0x16 or 0x12, paper OK 0x12.
        let s = decode_status([0x16, 0x12, 0x12, 0x12]).unwrap();
        assert!(s.ready(), "{s:?}");
        assert_eq!(s.problem(), None);
    }

    #[test]
    fn paper_near_end_and_out() {
        assert_eq!(
            decode_status([0x12, 0x12, 0x12, 0x1E]).unwrap().paper,
            Paper::NearEnd
        );
        let out = decode_status([0x1A, 0x72, 0x12, 0x7E]).unwrap();
        assert_eq!(out.paper, Paper::Out);
        assert!(!out.online);
        assert_eq!(out.problem(), Some("out of paper"));
    }

    #[test]
    fn cover_open_and_cutter_error() {
        let s = decode_status([0x1A, 0x16, 0x12, 0x12]).unwrap();
        assert!(s.cover_open && !s.ready());
        let s = decode_status([0x1A, 0x52, 0x1A, 0x12]).unwrap();
        assert!(s.cutter_error);
        assert_eq!(s.problem(), Some("cutter error (paper jam?)"));
    }

    #[test]
    fn bytes_without_the_fixed_pattern_are_refused() {
        assert_eq!(
            decode_status([0x00, 0x12, 0x12, 0x12]),
            Err(BadStatus { n: 1, byte: 0 })
        );
        // An ASB byte (bit1 = 0) is not a DLE EOT answer.
        assert!(check_status_byte(1, 0x10).is_err());
    }

    #[test]
    fn encode_then_decode_is_identity_on_the_fields() {
        for paper in [Paper::Ok, Paper::NearEnd, Paper::Out] {
            for cover_open in [false, true] {
                for cutter_error in [false, true] {
                    let s = Status {
                        online: !(cover_open || cutter_error || paper == Paper::Out),
                        paper,
                        cover_open,
                        cutter_error,
                        unrecoverable_error: false,
                        auto_recoverable_error: false,
                    };
                    assert_eq!(decode_status(encode_status(&s)).unwrap(), s);
                }
            }
        }
    }
}
