//! Parses an ESC/POS byte stream into what a printer would do with it: the
//! simulator's reading of the bytes our builder (or anyone) sends. Bounded and
//! total: any byte sequence parses without panic, unknown commands are
//! skipped, and no buffer grows past [`MAX_PENDING`].

use super::escpos::decode_gbk;

/// Longest command we wait for (a maximal QR store is 7089 + 8 bytes).
pub const MAX_PENDING: usize = 8192;
/// Longest text line kept.
pub const MAX_LINE: usize = 1024;

/// One thing the printer was told to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A printed line of text (decoded from GB18030 in Chinese mode).
    Line(String),
    /// A QR symbol printed (GS ( k fn 181) with the payload stored before it.
    Qr(String),
    /// A 1-D barcode printed.
    Barcode(String),
    Cut,
    /// DLE EOT n: real-time status request.
    StatusQuery(u8),
    /// GS r 1: paper sensor status request, in buffer order.
    PaperQuery,
    /// GS g 2: a maintenance counter's value, in buffer order.
    CounterQuery(u16),
}

/// A whole ticket as the simulator saw it printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrintedTicket {
    pub lines: Vec<String>,
    pub qr: Vec<String>,
    pub barcodes: Vec<String>,
}

#[derive(Debug, Default)]
pub struct StreamParser {
    buf: Vec<u8>,
    line: Vec<u8>,
    chinese: bool,
    stored_qr: Option<Vec<u8>>,
    /// Bytes of commands we do not know, skipped.
    pub skipped: u64,
}

/// How many bytes a command at the start of `b` needs, or None if more
/// bytes are needed to tell.
enum Need {
    More,
    Take(usize, Option<Command>),
}

impl StreamParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes and returns the commands they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Command> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < self.buf.len() {
            match self.step(pos) {
                Need::More => {
                    if self.buf.len() - pos > MAX_PENDING {
                        // A length field promised more than any real command: skip its first byte.
                        self.skipped += 1;
                        pos += 1;
                        continue;
                    }
                    break;
                }
                Need::Take(n, cmd) => {
                    pos += n;
                    out.extend(cmd);
                }
            }
        }
        self.buf.drain(..pos);
        out
    }

    fn text_byte(&mut self, b: u8) {
        if self.line.len() < MAX_LINE {
            self.line.push(b);
        }
    }

    fn end_line(&mut self) -> Option<Command> {
        let bytes = std::mem::take(&mut self.line);
        let text = if self.chinese {
            decode_gbk(&bytes)
        } else {
            bytes.iter().map(|&b| b as char).collect()
        };
        Some(Command::Line(text))
    }

    fn step(&mut self, pos: usize) -> Need {
        let b = &self.buf[pos..];
        let at = |i: usize| b.get(i).copied();
        match b[0] {
            b'\n' => Need::Take(1, self.end_line()),
            0x10 => match (at(1), at(2)) {
                (None, _) | (Some(0x04), None) => Need::More,
                (Some(0x04), Some(n)) => Need::Take(3, Some(Command::StatusQuery(n))),
                (Some(_), _) => self.unknown(2),
            },
            0x1B => match at(1) {
                None => Need::More,
                Some(b'@') => {
                    self.chinese = false;
                    self.line.clear();
                    Need::Take(2, None)
                }
                Some(b'2') => Need::Take(2, None),
                Some(b'i') | Some(b'm') => Need::Take(2, Some(Command::Cut)),
                Some(b'a' | b'E' | b'd' | b'!' | b't' | b'R' | b'-' | b'3' | b'M' | b'G') => {
                    match at(2) {
                        None => Need::More,
                        Some(_) => {
                            // ESC d n prints the buffer and feeds.
                            let cmd = (at(1) == Some(b'd') && !self.line.is_empty())
                                .then(|| self.end_line())
                                .flatten();
                            Need::Take(3, cmd)
                        }
                    }
                }
                Some(_) => self.unknown(2),
            },
            0x1C => match at(1) {
                None => Need::More,
                Some(b'&') => {
                    self.chinese = true;
                    Need::Take(2, None)
                }
                Some(b'.') => {
                    self.chinese = false;
                    Need::Take(2, None)
                }
                Some(_) => self.unknown(2),
            },
            0x1D => match at(1) {
                None => Need::More,
                Some(b'!' | b'H' | b'h' | b'w' | b'B' | b'a' | b'f') => {
                    if at(2).is_none() {
                        Need::More
                    } else {
                        Need::Take(3, None)
                    }
                }
                Some(b'r') => match at(2) {
                    None => Need::More,
                    Some(_) => Need::Take(3, Some(Command::PaperQuery)),
                },
                // GS g 0 m nL nH (reset a counter), GS g 2 m nL nH (send one).
                Some(b'g') if b.len() < 6 => Need::More,
                Some(b'g') => {
                    let counter = u16::from_le_bytes([b[4], b[5]]);
                    Need::Take(6, (b[2] == 0x32).then_some(Command::CounterQuery(counter)))
                }
                Some(b'V') => match at(2) {
                    None => Need::More,
                    Some(0x41 | 0x42) if at(3).is_none() => Need::More,
                    Some(0x41 | 0x42) => Need::Take(4, Some(Command::Cut)),
                    Some(_) => Need::Take(3, Some(Command::Cut)),
                },
                Some(b'(') => self.gs_paren(pos),
                Some(b'k') => self.barcode(pos),
                Some(_) => self.unknown(2),
            },
            0x0D => Need::Take(1, None),
            c if c < 0x20 => {
                self.skipped += 1;
                Need::Take(1, None)
            }
            c => {
                self.text_byte(c);
                Need::Take(1, None)
            }
        }
    }

    fn unknown(&mut self, n: usize) -> Need {
        self.skipped += n as u64;
        Need::Take(n, None)
    }

    /// GS ( k pL pH cn fn d…
    fn gs_paren(&mut self, pos: usize) -> Need {
        let b = &self.buf[pos..];
        if b.len() < 5 {
            return Need::More;
        }
        let len = u16::from_le_bytes([b[3], b[4]]) as usize;
        // No real GS ( command is that long (a QR holds at most 7089 bytes):
        // garbage, which must not swallow the tickets behind it.
        if 5 + len > MAX_PENDING {
            return self.unknown(1);
        }
        if b.len() < 5 + len {
            return Need::More;
        }
        let body = b[5..5 + len].to_vec();
        let cmd = if b[2] == b'k' && len >= 2 && body[0] == 0x31 {
            match body[1] {
                0x50 if len >= 3 => {
                    self.stored_qr = Some(body[3..].to_vec());
                    None
                }
                0x51 => self
                    .stored_qr
                    .as_ref()
                    .map(|d| Command::Qr(String::from_utf8_lossy(d).into_owned())),
                _ => None,
            }
        } else {
            None
        };
        Need::Take(5 + len, cmd)
    }

    /// GS k m …: function A (m ≤ 6) NUL-terminated, function B with a length.
    fn barcode(&mut self, pos: usize) -> Need {
        let b = &self.buf[pos..];
        let Some(&m) = b.get(2) else {
            return Need::More;
        };
        if m <= 6 {
            return match b[3..].iter().position(|&c| c == 0) {
                Some(end) => Need::Take(
                    4 + end,
                    Some(Command::Barcode(
                        String::from_utf8_lossy(&b[3..3 + end]).into_owned(),
                    )),
                ),
                None if b.len() > 3 + 255 => {
                    self.skipped += 3;
                    Need::Take(3, None)
                }
                None => Need::More,
            };
        }
        let Some(&n) = b.get(3) else {
            return Need::More;
        };
        let n = n as usize;
        if b.len() < 4 + n {
            return Need::More;
        }
        let data = &b[4..4 + n];
        // CODE128 data starts with its code-set selector ({A, {B, {C).
        let data = if m == 0x49 && data.len() >= 2 && data[0] == b'{' {
            &data[2..]
        } else {
            data
        };
        Need::Take(
            4 + n,
            Some(Command::Barcode(String::from_utf8_lossy(data).into_owned())),
        )
    }
}

/// Groups commands into tickets: everything up to a cut is one ticket.
#[derive(Debug, Default)]
pub struct TicketAssembler {
    current: PrintedTicket,
}

impl TicketAssembler {
    /// Returns a finished ticket when `cmd` is a cut.
    pub fn add(&mut self, cmd: &Command) -> Option<PrintedTicket> {
        match cmd {
            Command::Line(l) => self.current.lines.push(l.clone()),
            Command::Qr(q) => self.current.qr.push(q.clone()),
            Command::Barcode(b) => self.current.barcodes.push(b.clone()),
            Command::Cut => return Some(std::mem::take(&mut self.current)),
            Command::StatusQuery(_) | Command::PaperQuery | Command::CounterQuery(_) => {}
        }
        None
    }

    /// Drops a ticket in progress (the printer was reset or ran out of paper).
    pub fn discard(&mut self) {
        self.current = PrintedTicket::default();
    }
}

#[cfg(test)]
mod tests {
    use super::super::escpos::{Align, QrEcc, TicketBuilder};
    use super::*;

    fn parse_all(bytes: &[u8]) -> Vec<Command> {
        StreamParser::new().push(bytes)
    }

    #[test]
    fn our_ticket_parses_back() {
        let bytes = TicketBuilder::new()
            .align(Align::Center)
            .size(2, 2)
            .line("黄山风景区")
            .size(1, 1)
            .line("Adult 成人票 ¥190")
            .qr("T1.ABCDEF", 6, QrEcc::M)
            .unwrap()
            .barcode128("SN000123")
            .unwrap()
            .feed(2)
            .cut();
        let cmds = parse_all(&bytes);
        let mut asm = TicketAssembler::default();
        let tickets: Vec<_> = cmds.iter().filter_map(|c| asm.add(c)).collect();
        assert_eq!(
            tickets,
            [PrintedTicket {
                lines: vec!["黄山风景区".into(), "Adult 成人票 ￥190".into()],
                qr: vec!["T1.ABCDEF".into()],
                barcodes: vec!["SN000123".into()],
            }]
        );
    }

    #[test]
    fn byte_at_a_time_gives_the_same_commands() {
        let bytes = TicketBuilder::new()
            .line("票")
            .qr("xyz", 3, QrEcc::L)
            .unwrap()
            .cut();
        let whole = parse_all(&bytes);
        let mut p = StreamParser::new();
        let split: Vec<_> = bytes.iter().flat_map(|b| p.push(&[*b])).collect();
        assert_eq!(whole, split);
    }

    #[test]
    fn status_queries_are_seen_in_order() {
        let mut bytes = b"hi\n".to_vec();
        bytes.extend_from_slice(&[0x10, 0x04, 0x04, 0x1D, 0x72, 0x01]);
        assert_eq!(
            parse_all(&bytes),
            [
                Command::Line("hi".into()),
                Command::StatusQuery(4),
                Command::PaperQuery
            ]
        );
    }

    #[test]
    fn function_a_barcode_and_legacy_cut() {
        let mut bytes = vec![0x1D, 0x6B, 0x04];
        bytes.extend_from_slice(b"CODE39\0");
        bytes.extend_from_slice(&[0x1B, 0x69]);
        assert_eq!(
            parse_all(&bytes),
            [Command::Barcode("CODE39".into()), Command::Cut]
        );
    }

    #[test]
    fn a_huge_length_field_does_not_hold_memory() {
        let mut p = StreamParser::new();
        p.push(&[0x1D, 0x28, 0x6B, 0xFF, 0xFF]);
        p.push(&vec![b'a'; MAX_PENDING + 10]);
        assert!(p.buf.len() <= MAX_PENDING + 10);
        let out = p.push(b"\n");
        assert!(matches!(out.last(), Some(Command::Line(_))));
    }

    #[test]
    fn an_impossible_gs_paren_length_is_garbage_not_a_command() {
        let mut p = StreamParser::new();
        // GS ( A with a 13,464-byte body: no printer command is that long.
        let mut bytes = vec![0x1D, 0x28, 0x41, 152, 52];
        bytes.extend_from_slice(&[b'x'; 6000]);
        p.push(&bytes);
        let ticket = crate::printer::escpos::TicketBuilder::new()
            .line("OK")
            .cut();
        let cmds = p.push(&[&[0u8; 16][..], &ticket].concat());
        assert!(cmds.contains(&Command::Line("OK".into())), "{cmds:?}");
    }
}
