//! Line framing for devices that send one message per line (serial scanners,
//! IC-card readers): CR, LF or CR LF ends a line. Bounded: an overlong line
//! is dropped whole, never kept growing.

/// Longest line kept.
pub const MAX_LINE: usize = 4096;

#[derive(Debug, Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
    overflow: bool,
    /// Lines dropped for being longer than [`MAX_LINE`].
    pub dropped: u64,
}

impl LineSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; returns the complete, non-empty lines they finish.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.push_raw(bytes)
            .into_iter()
            .map(|l| String::from_utf8_lossy(&l).into_owned())
            .collect()
    }

    /// Like [`LineSplitter::push`], for lines in another encoding: the bytes.
    pub fn push_raw(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == b'\r' || b == b'\n' {
                if self.overflow {
                    self.dropped += 1;
                    self.overflow = false;
                } else if !self.buf.is_empty() {
                    out.push(self.buf.clone());
                }
                self.buf.clear();
            } else if self.buf.len() >= MAX_LINE {
                self.overflow = true;
                self.buf.clear();
            } else if !self.overflow {
                self.buf.push(b);
            }
        }
        out
    }

    /// Bytes of an unfinished line.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Forgets an unfinished line (the device went away mid-line).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.overflow = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cr_lf_and_crlf_each_end_one_line() {
        let mut s = LineSplitter::new();
        assert_eq!(s.push(b"A1\rB2\nC3\r\nD"), ["A1", "B2", "C3"]);
        assert_eq!(s.pending(), 1);
        assert_eq!(s.push(b"4\r\n"), ["D4"]);
    }

    #[test]
    fn overlong_line_is_dropped_whole() {
        let mut s = LineSplitter::new();
        let long = vec![b'x'; MAX_LINE + 5];
        assert!(s.push(&long).is_empty());
        assert!(s.pending() <= MAX_LINE);
        assert_eq!(s.push(b"tail\nok\n"), ["ok"]);
        assert_eq!(s.dropped, 1);
    }
}
