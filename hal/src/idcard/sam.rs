//! The SAM serial protocol of 2nd-generation ID-card readers (GA 467 SAM).
//!
//! Frame: `AA AA AA 96 69 | LEN(2, BE) | body | CHK`, LEN counts body + CHK,
//! CHK is the XOR of LEN and body. Requests carry CMD PARA DATA, responses
//! SW1 SW2 SW3 DATA. Sources: the eastcoms SAM_V protocol page, softs.im's
//! reader protocol notes, Heiher's `hev-dbus-object-idcard-reader.c` and the
//! sdtapi reimplementation. Pure code, no I/O.

use std::fmt;

/// `AA AA AA` syncs, `96 69` marks the start of a frame.
pub const PREAMBLE: [u8; 5] = [0xAA, 0xAA, 0xAA, 0x96, 0x69];
/// Largest LEN any command answers with (30 10, text + photo + fingerprint).
pub const MAX_LEN: usize = 0x090A;

/// Find card (寻卡): 20 01.
pub const FIND: (u8, u8) = (0x20, 0x01);
/// Select card (选卡): 20 02.
pub const SELECT: (u8, u8) = (0x20, 0x02);
/// Read basic information, text and photo: 30 01.
pub const READ_BASIC: (u8, u8) = (0x30, 0x01);
/// SAM status check: 11 FF.
pub const SAM_STATUS: (u8, u8) = (0x11, 0xFF);

/// Length of the text block in a 30 01 answer, and of the photo (WLT).
pub const TEXT_LEN: usize = 256;
pub const PHOTO_LEN: usize = 1024;

/// XOR over LEN and body, as the protocol defines CHK.
pub fn checksum(len_and_body: &[u8]) -> u8 {
    len_and_body.iter().fold(0, |a, b| a ^ b)
}

/// A whole frame with `body` between LEN and CHK.
pub fn encode_frame(body: &[u8]) -> Vec<u8> {
    let len = (body.len() + 1) as u16;
    let mut f = Vec::with_capacity(body.len() + 8);
    f.extend_from_slice(&PREAMBLE);
    f.extend_from_slice(&len.to_be_bytes());
    f.extend_from_slice(body);
    let chk = checksum(&f[5..]);
    f.push(chk);
    f
}

/// A host → reader request.
pub fn request(cmd: (u8, u8), data: &[u8]) -> Vec<u8> {
    let mut body = vec![cmd.0, cmd.1];
    body.extend_from_slice(data);
    encode_frame(&body)
}

/// A reader → host response (the simulator's side).
pub fn response(sw: [u8; 3], data: &[u8]) -> Vec<u8> {
    let mut body = sw.to_vec();
    body.extend_from_slice(data);
    encode_frame(&body)
}

/// What the reader said in SW3 (SW1, SW2 pass the card's APDU status through).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sw3 {
    Ok,
    CardFound,
    HostChecksum,
    HostLength,
    BadCommand,
    Unauthorised,
    Unrecognised,
    CardAuthFailed,
    ReaderAuthFailed,
    VerifyError,
    WrongCardType,
    ReadFailed,
    RandomFailed,
    SamSelfTestFailed,
    SamNotAuthorised,
    NoCard,
    SelectFailed,
    NoContent,
    Other(u8),
}

impl Sw3 {
    pub fn from_byte(b: u8) -> Self {
        match b {
            0x90 => Sw3::Ok,
            0x9F => Sw3::CardFound,
            0x10 => Sw3::HostChecksum,
            0x11 => Sw3::HostLength,
            0x21 => Sw3::BadCommand,
            0x23 => Sw3::Unauthorised,
            0x24 => Sw3::Unrecognised,
            0x31 => Sw3::CardAuthFailed,
            0x32 => Sw3::ReaderAuthFailed,
            0x33 => Sw3::VerifyError,
            0x40 => Sw3::WrongCardType,
            0x41 => Sw3::ReadFailed,
            0x47 => Sw3::RandomFailed,
            0x60 => Sw3::SamSelfTestFailed,
            0x66 => Sw3::SamNotAuthorised,
            0x80 => Sw3::NoCard,
            0x81 => Sw3::SelectFailed,
            0x91 => Sw3::NoContent,
            b => Sw3::Other(b),
        }
    }

    pub fn byte(self) -> u8 {
        match self {
            Sw3::Ok => 0x90,
            Sw3::CardFound => 0x9F,
            Sw3::HostChecksum => 0x10,
            Sw3::HostLength => 0x11,
            Sw3::BadCommand => 0x21,
            Sw3::Unauthorised => 0x23,
            Sw3::Unrecognised => 0x24,
            Sw3::CardAuthFailed => 0x31,
            Sw3::ReaderAuthFailed => 0x32,
            Sw3::VerifyError => 0x33,
            Sw3::WrongCardType => 0x40,
            Sw3::ReadFailed => 0x41,
            Sw3::RandomFailed => 0x47,
            Sw3::SamSelfTestFailed => 0x60,
            Sw3::SamNotAuthorised => 0x66,
            Sw3::NoCard => 0x80,
            Sw3::SelectFailed => 0x81,
            Sw3::NoContent => 0x91,
            Sw3::Other(b) => b,
        }
    }
}

impl fmt::Display for Sw3 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Sw3::Ok => "ok",
            Sw3::CardFound => "card found",
            Sw3::HostChecksum => "reader saw a checksum error in our frame",
            Sw3::HostLength => "reader saw a length error in our frame",
            Sw3::BadCommand => "reader rejected the command",
            Sw3::Unauthorised => "unauthorised operation",
            Sw3::Unrecognised => "unrecognised error",
            Sw3::CardAuthFailed => "card failed to authenticate the reader",
            Sw3::ReaderAuthFailed => "reader failed to authenticate the card",
            Sw3::VerifyError => "information verify error",
            Sw3::WrongCardType => "wrong card type",
            Sw3::ReadFailed => "reading the card failed",
            Sw3::RandomFailed => "get random failed",
            Sw3::SamSelfTestFailed => "SAM self-test failed",
            Sw3::SamNotAuthorised => "SAM not authorised",
            Sw3::NoCard => "no card",
            Sw3::SelectFailed => "selecting the card failed",
            Sw3::NoContent => "the card has no content for this item",
            Sw3::Other(b) => return write!(f, "unknown status {b:#04x}"),
        };
        write!(f, "{text} (SW3 {:#04x})", self.byte())
    }
}

/// One response frame: its status words and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub sw: [u8; 3],
    pub data: Vec<u8>,
}

impl Response {
    pub fn sw3(&self) -> Sw3 {
        Sw3::from_byte(self.sw[2])
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("bad checksum in frame: computed {computed:#04x}, frame says {found:#04x}")]
    Checksum { computed: u8, found: u8 },
    #[error("frame length {0} is impossible (4..={MAX_LEN})")]
    Length(usize),
}

/// Reassembles frames from a byte stream. Bounded: never holds more than one
/// maximal frame; garbage before a preamble is skipped, and a broken frame is
/// reported and the search resumes just after its preamble.
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Smallest LEN of a valid frame: 4 for responses (SW1-3 + CHK), 3 for
    /// requests (CMD PARA + CHK).
    min_len: usize,
}

impl Decoder {
    /// For the host: decodes the reader's responses.
    pub fn responses() -> Self {
        Decoder {
            buf: Vec::new(),
            min_len: 4,
        }
    }

    /// For the simulator: decodes the host's requests.
    pub fn requests() -> Self {
        Decoder {
            buf: Vec::new(),
            min_len: 3,
        }
    }

    /// Adds received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        self.trim_garbage();
    }

    /// Bytes held waiting for the rest of a frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Drops everything before the first possible preamble start, keeping a
    /// partial preamble at the end.
    fn trim_garbage(&mut self) {
        let start = find_preamble(&self.buf).unwrap_or_else(|| {
            // Keep the longest suffix that is a prefix of the preamble.
            let keep = (1..PREAMBLE.len())
                .rev()
                .find(|&k| self.buf.len() >= k && self.buf[self.buf.len() - k..] == PREAMBLE[..k])
                .unwrap_or(0);
            self.buf.len() - keep
        });
        self.buf.drain(..start);
    }

    /// The body (between LEN and CHK) of the next complete frame, an error
    /// for a broken one, or None for "need more bytes".
    pub fn next_body(&mut self) -> Option<Result<Vec<u8>, FrameError>> {
        self.trim_garbage();
        if self.buf.len() < 7 {
            return None;
        }
        let len = u16::from_be_bytes([self.buf[5], self.buf[6]]) as usize;
        if !(self.min_len..=MAX_LEN).contains(&len) {
            self.buf.drain(..1);
            return Some(Err(FrameError::Length(len)));
        }
        if self.buf.len() < 7 + len {
            return None;
        }
        let computed = checksum(&self.buf[5..6 + len]);
        let found = self.buf[6 + len];
        if computed != found {
            // The "frame" may have swallowed the start of a good one: rescan
            // from just after its preamble.
            self.buf.drain(..1);
            return Some(Err(FrameError::Checksum { computed, found }));
        }
        let frame: Vec<u8> = self.buf.drain(..7 + len).collect();
        Some(Ok(frame[7..frame.len() - 1].to_vec()))
    }

    /// The next response frame (see [`Decoder::next_body`]).
    pub fn next_response(&mut self) -> Option<Result<Response, FrameError>> {
        self.next_body().map(|r| {
            r.map(|body| Response {
                sw: [body[0], body[1], body[2]],
                data: body[3..].to_vec(),
            })
        })
    }

    /// The next request frame (see [`Decoder::next_body`]).
    pub fn next_request(&mut self) -> Option<Result<Request, FrameError>> {
        self.next_body().map(|r| {
            r.map(|body| Request {
                cmd: (body[0], body[1]),
                data: body[2..].to_vec(),
            })
        })
    }
}

fn find_preamble(buf: &[u8]) -> Option<usize> {
    buf.windows(PREAMBLE.len()).position(|w| w == PREAMBLE)
}

/// A host → reader request: command, parameter, data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub cmd: (u8, u8),
    pub data: Vec<u8>,
}

// ---------------------------------------------------------------------------
// The card's text block.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sex {
    Male,
    Female,
    #[default]
    Unknown,
    NotStated,
}

impl Sex {
    fn from_code(c: &str) -> Sex {
        match c {
            "1" => Sex::Male,
            "2" => Sex::Female,
            "9" => Sex::NotStated,
            _ => Sex::Unknown,
        }
    }

    fn code(self) -> char {
        match self {
            Sex::Male => '1',
            Sex::Female => '2',
            Sex::Unknown => '0',
            Sex::NotStated => '9',
        }
    }
}

impl fmt::Display for Sex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Sex::Male => "male",
            Sex::Female => "female",
            Sex::Unknown => "unknown",
            Sex::NotStated => "not stated",
        })
    }
}

/// A calendar date as printed on the card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    pub year: u16,
    pub month: u8,
    pub day: u8,
}

impl Date {
    /// `YYYYMMDD`, with a plausible month and day.
    pub fn parse_compact(s: &str) -> Option<Date> {
        if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let d = Date {
            year: s[0..4].parse().ok()?,
            month: s[4..6].parse().ok()?,
            day: s[6..8].parse().ok()?,
        };
        ((1..=12).contains(&d.month) && (1..=31).contains(&d.day)).then_some(d)
    }

    fn compact(&self) -> String {
        format!("{:04}{:02}{:02}", self.year, self.month, self.day)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// End of validity: a date, or 长期 (long-term).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidTo {
    Date(Date),
    LongTerm,
}

impl fmt::Display for ValidTo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValidTo::Date(d) => d.fmt(f),
            ValidTo::LongTerm => f.write_str("long-term"),
        }
    }
}

/// Which card the reader read: the same frames carry four layouts, named by
/// the character at bytes 248–250 of the text block (docs: hal/README.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CardKind {
    /// Resident Identity Card (a space at 248).
    #[default]
    Resident,
    /// Foreigner's Permanent Residence ID Card, 2017 (`I`).
    Foreigner2017,
    /// Foreigner's Permanent Residence ID Card, 2023 (`Y`).
    Foreigner2023,
    /// Residence Permit for Hong Kong, Macao and Taiwan residents (`J`).
    HkMacaoTaiwan,
}

impl CardKind {
    /// The layout for a type character; any other is refused, never read
    /// with the resident layout.
    pub fn from_type_char(c: char) -> Result<Self, char> {
        match c {
            ' ' | '\0' => Ok(CardKind::Resident),
            'I' => Ok(CardKind::Foreigner2017),
            'Y' => Ok(CardKind::Foreigner2023),
            'J' => Ok(CardKind::HkMacaoTaiwan),
            other => Err(other),
        }
    }

    pub fn type_char(self) -> char {
        match self {
            CardKind::Resident => ' ',
            CardKind::Foreigner2017 => 'I',
            CardKind::Foreigner2023 => 'Y',
            CardKind::HkMacaoTaiwan => 'J',
        }
    }

    /// A stable name for APIs: `resident`, `foreigner-2017`, `foreigner-2023`
    /// or `hk-macao-taiwan`.
    pub fn code(self) -> &'static str {
        match self {
            CardKind::Resident => "resident",
            CardKind::Foreigner2017 => "foreigner-2017",
            CardKind::Foreigner2023 => "foreigner-2023",
            CardKind::HkMacaoTaiwan => "hk-macao-taiwan",
        }
    }

    /// (zh, en) for screens and engineers.
    pub fn names(self) -> (&'static str, &'static str) {
        match self {
            CardKind::Resident => ("居民身份证", "Resident ID card"),
            CardKind::Foreigner2017 => (
                "外国人永久居留身份证（2017）",
                "Foreigner's permanent residence ID card (2017)",
            ),
            CardKind::Foreigner2023 => (
                "外国人永久居留身份证",
                "Foreigner's permanent residence ID card",
            ),
            CardKind::HkMacaoTaiwan => (
                "港澳台居民居住证",
                "Residence permit for Hong Kong, Macao and Taiwan residents",
            ),
        }
    }
}

/// The text fields of an ID card. `Debug` masks names, address and numbers:
/// they must never reach a log.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct IdCard {
    pub kind: CardKind,
    /// The Chinese name (empty on a foreigner's card without one).
    pub name: String,
    pub sex: Sex,
    /// Two-digit nation code (GB 3304), e.g. "01"; resident cards only.
    pub nation_code: String,
    pub birth: Option<Date>,
    /// Resident cards and residence permits.
    pub address: String,
    /// The card's own number: 18 characters (resident, permit, 2023
    /// foreigner's card) or 15 (2017 foreigner's card).
    pub id_number: String,
    /// Issuing authority (resident, permit), or the issuing office's code
    /// (2017 foreigner's card).
    pub issuer: String,
    pub valid_from: Option<Date>,
    pub valid_to: Option<ValidTo>,
    /// Foreigner's cards: the name in Latin letters, surname first.
    pub english_name: String,
    /// Foreigner's cards: nationality, GB/T 2659 (ISO 3166 alpha-3), e.g. "CAN".
    pub nationality: String,
    /// Permits: the pass number (e.g. H12345678).
    pub pass_number: String,
    /// Permits: the issue count; 2023 foreigner's card: the renewal count.
    pub issue_count: String,
    /// 2023 foreigner's card: what links it to the holder's 2017 number.
    pub previous_number: String,
}

impl fmt::Debug for IdCard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdCard")
            .field("kind", &self.kind)
            .field("name", &mask_name(&self.name))
            .field("english_name", &mask_name(&self.english_name))
            .field("nationality", &self.nationality)
            .field("sex", &self.sex)
            .field("nation_code", &self.nation_code)
            .field("birth", &self.birth)
            .field("address", &"<masked>")
            .field("id_number", &mask_id(&self.id_number))
            .field("issuer", &self.issuer)
            .field("valid_from", &self.valid_from)
            .field("valid_to", &self.valid_to)
            .field("pass_number", &mask_id(&self.pass_number))
            .finish()
    }
}

impl IdCard {
    /// The nation's name, e.g. 汉 for "01".
    pub fn nation(&self) -> &'static str {
        nation_name(&self.nation_code)
    }

    /// Whether the number's check character is right for its kind: MOD
    /// 11-2 (GB 11643) for the 18-character numbers, 7-3-1 for the 2017
    /// foreigner's card's 15 characters.
    pub fn check_digit_ok(&self) -> bool {
        match self.kind {
            CardKind::Foreigner2017 => check_digit_731_ok(&self.id_number),
            _ => check_digit_ok(&self.id_number),
        }
    }
}

/// 王美娜 → 王**: the first character, then one `*` per other character.
pub fn mask_name(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => std::iter::once(first).chain(chars.map(|_| '*')).collect(),
        None => String::new(),
    }
}

/// 11010519491231002X → **************002X: the last 4 characters only,
/// for a screen visitors may look at (engineers get [`mask_id`]).
pub fn mask_id_tail(id: &str) -> String {
    let n = id.chars().count();
    "*".repeat(n.saturating_sub(4)) + &id.chars().skip(n.saturating_sub(4)).collect::<String>()
}

/// 11010519491231002X → 110***********002X: first 3 and last 4 characters.
pub fn mask_id(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() <= 7 {
        return "*".repeat(chars.len());
    }
    let n = chars.len();
    chars[..3]
        .iter()
        .chain(std::iter::repeat_n(&'*', n - 7))
        .chain(&chars[n - 4..])
        .collect()
}

/// GB 11643-1999: the 18th character is the ISO 7064 MOD 11-2 check of the first 17.
pub fn check_digit(first17: &str) -> Option<char> {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];
    if first17.len() != 17 {
        return None;
    }
    let mut sum = 0;
    for (c, w) in first17.chars().zip(WEIGHTS) {
        sum += c.to_digit(10)? * w;
    }
    Some(CHECK[(sum % 11) as usize])
}

pub fn check_digit_ok(id: &str) -> bool {
    id.len() == 18
        && id.is_ascii()
        && check_digit(&id[..17]).is_some_and(|c| id[17..].eq_ignore_ascii_case(&c.to_string()))
}

/// The 2017 foreigner's card's check character: weights 7, 3, 1 over the
/// first 14 characters (digits as themselves, letters A=10 … Z=35), the sum
/// modulo 10 (as on passports' machine-readable lines).
pub fn check_digit_731_ok(id: &str) -> bool {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() != 15 || !id.is_ascii() {
        return false;
    }
    let value = |c: char| c.to_digit(36);
    let mut sum = 0;
    for (i, c) in chars[..14].iter().enumerate() {
        let Some(v) = value(c.to_ascii_uppercase()) else {
            return false;
        };
        sum += v * [7, 3, 1][i % 3];
    }
    chars[14].to_digit(10) == Some(sum % 10)
}

/// The check character a 2017 foreigner's number needs (the simulator's side).
pub fn check_digit_731(first14: &str) -> Option<char> {
    let mut sum = 0;
    for (i, c) in first14.chars().enumerate() {
        sum += c.to_ascii_uppercase().to_digit(36)? * [7, 3, 1][i % 3];
    }
    char::from_digit(sum % 10, 10)
}

/// Offsets (bytes) and lengths of the fields in the 256-byte UCS-2LE block.
const FIELDS: [(usize, usize); 9] = [
    (0, 30),   // name, 15 chars
    (30, 2),   // sex
    (32, 4),   // nation code
    (36, 16),  // birth YYYYMMDD
    (52, 70),  // address, 35 chars
    (122, 36), // ID number, 18 chars
    (158, 30), // issuing authority
    (188, 16), // valid from
    (204, 16), // valid to, or 长期
];

/// A text block whose card type this decoder does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "card type {0:?} (byte 248 of the text block) is not one this reader knows: resident, I, Y or J"
)]
pub struct UnknownCardType(pub char);

/// Offsets of the other layouts (bytes, UCS-2LE): hal/README.md cites the
/// sources; where they are silent this table is the decision, one place to
/// correct.
mod layout {
    pub type Field = (usize, usize);
    pub const TYPE: Field = (248, 2);
    pub mod foreigner_2017 {
        use super::Field;
        pub const ENGLISH_NAME: Field = (0, 120);
        pub const SEX: Field = (120, 2);
        pub const NUMBER: Field = (122, 30);
        pub const NATIONALITY: Field = (152, 6);
        pub const NAME: Field = (158, 30);
        pub const VALID_FROM: Field = (188, 16);
        pub const VALID_TO: Field = (204, 16);
        pub const BIRTH: Field = (220, 16);
        pub const OFFICE: Field = (240, 8);
    }
    pub mod foreigner_2023 {
        use super::Field;
        pub const NAME: Field = (0, 30);
        pub const SEX: Field = (30, 2);
        pub const RENEWALS: Field = (32, 4);
        pub const BIRTH: Field = (36, 16);
        /// The English name's characters 1–35 …
        pub const ENGLISH_NAME_1: Field = (52, 70);
        pub const NUMBER: Field = (122, 36);
        pub const VALID_FROM: Field = (188, 16);
        pub const VALID_TO: Field = (204, 16);
        /// … and 36–46, joined raw (the split may fall mid-word).
        pub const ENGLISH_NAME_2: Field = (220, 22);
        pub const NATIONALITY: Field = (242, 6);
        pub const PREVIOUS_NUMBER: Field = (250, 6);
    }
    pub mod permit {
        use super::Field;
        pub const PASS_NUMBER: Field = (220, 18);
        pub const ISSUE_COUNT: Field = (238, 4);
    }
}

fn field_raw(block: &[u8; TEXT_LEN], (off, len): layout::Field) -> String {
    let units = block[off..off + len]
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]));
    char::decode_utf16(units)
        .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

fn field(block: &[u8; TEXT_LEN], f: layout::Field) -> String {
    field_raw(block, f).trim_end_matches([' ', '\0']).to_owned()
}

fn valid_to(s: &str) -> Option<ValidTo> {
    if s.starts_with("长期") {
        Some(ValidTo::LongTerm)
    } else {
        Date::parse_compact(s).map(ValidTo::Date)
    }
}

/// Decodes the 256-byte text block of a 30 01 answer, in the layout its
/// card type names; an unknown type is refused.
pub fn decode_text(block: &[u8; TEXT_LEN]) -> Result<IdCard, UnknownCardType> {
    let type_char = field_raw(block, layout::TYPE).chars().next().unwrap_or(' ');
    let kind = CardKind::from_type_char(type_char).map_err(UnknownCardType)?;
    let f = |i: usize| field(block, FIELDS[i]);
    Ok(match kind {
        CardKind::Resident | CardKind::HkMacaoTaiwan => {
            let permit = kind == CardKind::HkMacaoTaiwan;
            IdCard {
                kind,
                name: f(0),
                sex: Sex::from_code(&f(1)),
                // Reserved on the permit.
                nation_code: if permit { String::new() } else { f(2) },
                birth: Date::parse_compact(&f(3)),
                address: f(4),
                id_number: f(5),
                issuer: f(6),
                valid_from: Date::parse_compact(&f(7)),
                valid_to: valid_to(&f(8)),
                pass_number: if permit {
                    field(block, layout::permit::PASS_NUMBER)
                } else {
                    String::new()
                },
                issue_count: if permit {
                    field(block, layout::permit::ISSUE_COUNT)
                } else {
                    String::new()
                },
                ..IdCard::default()
            }
        }
        CardKind::Foreigner2017 => {
            use layout::foreigner_2017 as l;
            IdCard {
                kind,
                name: field(block, l::NAME),
                english_name: field(block, l::ENGLISH_NAME),
                sex: Sex::from_code(&field(block, l::SEX)),
                id_number: field(block, l::NUMBER),
                nationality: field(block, l::NATIONALITY),
                valid_from: Date::parse_compact(&field(block, l::VALID_FROM)),
                valid_to: valid_to(&field(block, l::VALID_TO)),
                birth: Date::parse_compact(&field(block, l::BIRTH)),
                issuer: field(block, l::OFFICE),
                ..IdCard::default()
            }
        }
        CardKind::Foreigner2023 => {
            use layout::foreigner_2023 as l;
            let english =
                field_raw(block, l::ENGLISH_NAME_1) + &field_raw(block, l::ENGLISH_NAME_2);
            IdCard {
                kind,
                name: field(block, l::NAME),
                sex: Sex::from_code(&field(block, l::SEX)),
                issue_count: field(block, l::RENEWALS),
                birth: Date::parse_compact(&field(block, l::BIRTH)),
                english_name: english.trim_end_matches([' ', '\0']).to_owned(),
                id_number: field(block, l::NUMBER),
                valid_from: Date::parse_compact(&field(block, l::VALID_FROM)),
                valid_to: valid_to(&field(block, l::VALID_TO)),
                nationality: field(block, l::NATIONALITY),
                previous_number: field(block, l::PREVIOUS_NUMBER),
                ..IdCard::default()
            }
        }
    })
}

/// Encodes a card's text block (the simulator's side), space-padded, in
/// its kind's layout.
pub fn encode_text(card: &IdCard) -> [u8; TEXT_LEN] {
    let mut block = [0u8; TEXT_LEN];
    for pair in block.chunks_exact_mut(2) {
        pair.copy_from_slice(&[0x20, 0x00]);
    }
    let put = |block: &mut [u8; TEXT_LEN], (off, len): layout::Field, s: &str| {
        for (k, unit) in s.encode_utf16().take(len / 2).enumerate() {
            block[off + 2 * k..off + 2 * k + 2].copy_from_slice(&unit.to_le_bytes());
        }
    };
    let date = |d: Option<Date>| d.map(|d| d.compact()).unwrap_or_default();
    let to = match card.valid_to {
        Some(ValidTo::Date(d)) => d.compact(),
        Some(ValidTo::LongTerm) => "长期".to_owned(),
        None => String::new(),
    };
    let sex = card.sex.code().to_string();
    match card.kind {
        CardKind::Resident | CardKind::HkMacaoTaiwan => {
            for (i, v) in [
                &card.name,
                &sex,
                &card.nation_code,
                &date(card.birth),
                &card.address,
                &card.id_number,
                &card.issuer,
                &date(card.valid_from),
                &to,
            ]
            .into_iter()
            .enumerate()
            {
                put(&mut block, FIELDS[i], v);
            }
            if card.kind == CardKind::HkMacaoTaiwan {
                put(&mut block, layout::permit::PASS_NUMBER, &card.pass_number);
                put(&mut block, layout::permit::ISSUE_COUNT, &card.issue_count);
            }
        }
        CardKind::Foreigner2017 => {
            use layout::foreigner_2017 as l;
            put(&mut block, l::ENGLISH_NAME, &card.english_name);
            put(&mut block, l::SEX, &sex);
            put(&mut block, l::NUMBER, &card.id_number);
            put(&mut block, l::NATIONALITY, &card.nationality);
            put(&mut block, l::NAME, &card.name);
            put(&mut block, l::VALID_FROM, &date(card.valid_from));
            put(&mut block, l::VALID_TO, &to);
            put(&mut block, l::BIRTH, &date(card.birth));
            put(&mut block, l::OFFICE, &card.issuer);
        }
        CardKind::Foreigner2023 => {
            use layout::foreigner_2023 as l;
            let english: Vec<char> = card.english_name.chars().collect();
            let first: String = english.iter().take(35).collect();
            let rest: String = english.iter().skip(35).collect();
            put(&mut block, l::NAME, &card.name);
            put(&mut block, l::SEX, &sex);
            put(&mut block, l::RENEWALS, &card.issue_count);
            put(&mut block, l::BIRTH, &date(card.birth));
            put(&mut block, l::ENGLISH_NAME_1, &first);
            put(&mut block, l::NUMBER, &card.id_number);
            put(&mut block, l::VALID_FROM, &date(card.valid_from));
            put(&mut block, l::VALID_TO, &to);
            put(&mut block, l::ENGLISH_NAME_2, &rest);
            put(&mut block, l::NATIONALITY, &card.nationality);
            put(&mut block, l::PREVIOUS_NUMBER, &card.previous_number);
        }
    }
    put(&mut block, layout::TYPE, &card.kind.type_char().to_string());
    block
}

/// The 30 01 answer's data: TXT_LEN, IMG_LEN (both BE), text, photo.
pub fn split_basic_info(data: &[u8]) -> Option<(&[u8; TEXT_LEN], &[u8])> {
    if data.len() < 4 {
        return None;
    }
    let text_len = u16::from_be_bytes([data[0], data[1]]) as usize;
    let img_len = u16::from_be_bytes([data[2], data[3]]) as usize;
    if text_len != TEXT_LEN || data.len() < 4 + text_len + img_len {
        return None;
    }
    let text: &[u8; TEXT_LEN] = data[4..4 + TEXT_LEN].try_into().ok()?;
    Some((text, &data[4 + TEXT_LEN..4 + TEXT_LEN + img_len]))
}

/// GB 3304 nation names by code.
pub fn nation_name(code: &str) -> &'static str {
    const NATIONS: [&str; 56] = [
        "汉",
        "蒙古",
        "回",
        "藏",
        "维吾尔",
        "苗",
        "彝",
        "壮",
        "布依",
        "朝鲜",
        "满",
        "侗",
        "瑶",
        "白",
        "土家",
        "哈尼",
        "哈萨克",
        "傣",
        "黎",
        "傈僳",
        "佤",
        "畲",
        "高山",
        "拉祜",
        "水",
        "东乡",
        "纳西",
        "景颇",
        "柯尔克孜",
        "土",
        "达斡尔",
        "仫佬",
        "羌",
        "布朗",
        "撒拉",
        "毛南",
        "仡佬",
        "锡伯",
        "阿昌",
        "普米",
        "塔吉克",
        "怒",
        "乌孜别克",
        "俄罗斯",
        "鄂温克",
        "德昂",
        "保安",
        "裕固",
        "京",
        "塔塔尔",
        "独龙",
        "鄂伦春",
        "赫哲",
        "门巴",
        "珞巴",
        "基诺",
    ];
    match code.parse::<usize>() {
        Ok(n @ 1..=56) => NATIONS[n - 1],
        Ok(97) => "其他",
        Ok(98) => "外国血统",
        _ => "未知",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_frames_match_the_published_bytes() {
        // Every frame of the reader protocol, checksums included.
        assert_eq!(
            request(FIND, &[]),
            [0xAA, 0xAA, 0xAA, 0x96, 0x69, 0x00, 0x03, 0x20, 0x01, 0x22]
        );
        assert_eq!(
            request(SELECT, &[]),
            [0xAA, 0xAA, 0xAA, 0x96, 0x69, 0x00, 0x03, 0x20, 0x02, 0x21]
        );
        assert_eq!(
            request(READ_BASIC, &[]),
            [0xAA, 0xAA, 0xAA, 0x96, 0x69, 0x00, 0x03, 0x30, 0x01, 0x32]
        );
        assert_eq!(
            request(SAM_STATUS, &[]),
            [0xAA, 0xAA, 0xAA, 0x96, 0x69, 0x00, 0x03, 0x11, 0xFF, 0xED]
        );
        assert_eq!(
            request((0x10, 0xFF), &[]),
            [0xAA, 0xAA, 0xAA, 0x96, 0x69, 0x00, 0x03, 0x10, 0xFF, 0xEC]
        );
        assert_eq!(
            request((0x61, 0xFF), &[0x50]),
            [
                0xAA, 0xAA, 0xAA, 0x96, 0x69, 0x00, 0x04, 0x61, 0xFF, 0x50, 0xCA
            ]
        );
    }

    #[test]
    fn published_responses_decode() {
        let mut d = Decoder::responses();
        // status OK, find OK, find fail
        d.push(&[
            0xAA, 0xAA, 0xAA, 0x96, 0x69, 0x00, 0x04, 0x00, 0x00, 0x90, 0x94,
        ]);
        d.push(&[
            0xAA, 0xAA, 0xAA, 0x96, 0x69, 0x00, 0x08, 0x00, 0x00, 0x9F, 0, 0, 0, 0, 0x97,
        ]);
        d.push(&[
            0xAA, 0xAA, 0xAA, 0x96, 0x69, 0x00, 0x04, 0x00, 0x00, 0x80, 0x84,
        ]);
        assert_eq!(d.next_response().unwrap().unwrap().sw3(), Sw3::Ok);
        let found = d.next_response().unwrap().unwrap();
        assert_eq!(found.sw3(), Sw3::CardFound);
        assert_eq!(found.data, [0, 0, 0, 0]);
        assert_eq!(d.next_response().unwrap().unwrap().sw3(), Sw3::NoCard);
        assert_eq!(d.next_response(), None);
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn frames_split_anywhere_reassemble() {
        let frame = response([0, 0, 0x90], &[1, 2, 3]);
        for cut in 0..frame.len() {
            let mut d = Decoder::responses();
            d.push(&frame[..cut]);
            assert_eq!(d.next_response(), None, "cut at {cut}");
            d.push(&frame[cut..]);
            assert_eq!(d.next_response().unwrap().unwrap().data, [1, 2, 3]);
        }
    }

    #[test]
    fn garbage_is_skipped_and_a_bad_checksum_reported() {
        let mut d = Decoder::responses();
        let mut bad = response([0, 0, 0x90], &[7]);
        *bad.last_mut().unwrap() ^= 0xFF;
        d.push(&[0x00, 0xAA, 0x13]);
        d.push(&bad);
        d.push(&response([0, 0, 0x80], &[]));
        assert!(matches!(
            d.next_response(),
            Some(Err(FrameError::Checksum { .. }))
        ));
        assert_eq!(d.next_response().unwrap().unwrap().sw3(), Sw3::NoCard);
    }

    #[test]
    fn impossible_length_resyncs() {
        let mut d = Decoder::responses();
        d.push(&[0xAA, 0xAA, 0xAA, 0x96, 0x69, 0xFF, 0xFF]);
        d.push(&response([0, 0, 0x90], &[]));
        assert_eq!(d.next_response(), Some(Err(FrameError::Length(0xFFFF))));
        assert_eq!(d.next_response().unwrap().unwrap().sw3(), Sw3::Ok);
    }

    #[test]
    fn request_decoder_reads_what_the_host_sends() {
        let mut d = Decoder::requests();
        d.push(&request(FIND, &[]));
        d.push(&request((0x61, 0xFF), &[0x50]));
        assert_eq!(
            d.next_request().unwrap().unwrap(),
            Request {
                cmd: FIND,
                data: vec![]
            }
        );
        assert_eq!(
            d.next_request().unwrap().unwrap(),
            Request {
                cmd: (0x61, 0xFF),
                data: vec![0x50]
            }
        );
    }

    #[test]
    fn worked_example_name_sex_nation() {
        // chinasem.cn worked example: "8B 73 8E 7F 1C 5A" = 王美娜, sex '2', nation "01".
        let mut block = [0u8; TEXT_LEN];
        for p in block.chunks_exact_mut(2) {
            p.copy_from_slice(&[0x20, 0]);
        }
        block[..6].copy_from_slice(&[0x8B, 0x73, 0x8E, 0x7F, 0x1C, 0x5A]);
        block[30..32].copy_from_slice(&[0x32, 0x00]);
        block[32..36].copy_from_slice(&[0x30, 0x00, 0x31, 0x00]);
        let card = decode_text(&block).unwrap();
        assert_eq!(card.kind, CardKind::Resident);
        assert_eq!(card.name, "王美娜");
        assert_eq!(card.sex, Sex::Female);
        assert_eq!(card.nation(), "汉");
    }

    fn sample() -> IdCard {
        IdCard {
            name: "张三".into(),
            sex: Sex::Male,
            nation_code: "01".into(),
            birth: Date::parse_compact("19491231"),
            address: "北京市东城区景山前街4号".into(),
            id_number: "11010519491231002X".into(),
            issuer: "北京市公安局东城分局".into(),
            valid_from: Date::parse_compact("20150101"),
            valid_to: Some(ValidTo::LongTerm),
            ..IdCard::default()
        }
    }

    #[test]
    fn text_block_round_trips_including_long_term() {
        let card = sample();
        let block = encode_text(&card);
        assert_eq!(
            &block[204..208],
            &[0x7F, 0x95, 0x1F, 0x67],
            "长期 in UCS-2LE"
        );
        assert_eq!(decode_text(&block), Ok(card));
    }

    // The simulator's test cards.
    #[cfg(feature = "sim")]
    #[test]
    fn every_card_kind_round_trips_and_an_unknown_kind_is_refused() {
        for card in crate::idcard::sim::test_cards() {
            let block = encode_text(&card);
            assert_eq!(decode_text(&block).as_ref(), Ok(&card), "{:?}", card.kind);
            assert!(
                card.check_digit_ok(),
                "{:?}: {}",
                card.kind,
                mask_id(&card.id_number)
            );
        }
        let mut block = encode_text(&sample());
        block[248..250].copy_from_slice(&[b'Z', 0]);
        assert_eq!(decode_text(&block), Err(UnknownCardType('Z')));
    }

    // The simulator's test cards.
    #[cfg(feature = "sim")]
    #[test]
    fn a_2023_foreigners_card_reads_its_english_name_across_both_fields() {
        let card = crate::idcard::sim::test_cards()[4].clone();
        assert!(card.english_name.chars().count() > 35);
        let block = encode_text(&card);
        // The card's own split: characters 1–35 at 52, the rest at 220.
        assert_eq!(&block[52..54], &[b'G', 0]);
        let at_220: String = char::decode_utf16(
            block[220..242]
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]])),
        )
        .map(|c| c.unwrap())
        .collect();
        assert!(at_220.starts_with(&card.english_name.chars().skip(35).collect::<String>()));
        let back = decode_text(&block).unwrap();
        assert_eq!(back.english_name, card.english_name);
        assert_eq!(back.kind, CardKind::Foreigner2023);
        // Not read as a resident card: no address, no nation 汉.
        assert!(back.address.is_empty() && back.nation_code.is_empty());
    }

    // The simulator's test cards.
    #[cfg(feature = "sim")]
    #[test]
    fn the_2017_number_has_a_7_3_1_check_character() {
        let n = crate::idcard::sim::test_cards()[3].id_number.clone();
        assert_eq!(n.len(), 15);
        assert!(check_digit_731_ok(&n));
        let mut wrong: Vec<char> = n.chars().collect();
        wrong[14] = if wrong[14] == '0' { '1' } else { '0' };
        assert!(!check_digit_731_ok(&wrong.into_iter().collect::<String>()));
    }

    #[test]
    fn check_digit_per_gb11643() {
        // The standard's own example number.
        assert_eq!(check_digit("11010519491231002"), Some('X'));
        assert!(check_digit_ok("11010519491231002X"));
        assert!(check_digit_ok("11010519491231002x"));
        assert!(!check_digit_ok("110105194912310021"));
        assert!(!check_digit_ok("1101051949123100"));
    }

    #[test]
    fn masks_and_debug_hide_pii() {
        assert_eq!(mask_name("王美娜"), "王**");
        assert_eq!(mask_id_tail("11010519491231002X"), "**************002X");
        assert_eq!(mask_id_tail("12"), "12");
        assert_eq!(mask_id("11010519491231002X"), "110***********002X");
        let dbg = format!("{:?}", sample());
        assert!(
            !dbg.contains("张三") && !dbg.contains("11010519491231002X") && !dbg.contains("景山"),
            "{dbg}"
        );
        assert!(dbg.contains("110***********002X"), "{dbg}");
    }

    #[test]
    fn basic_info_data_splits() {
        let card = sample();
        let mut data = vec![0x01, 0x00, 0x04, 0x00];
        data.extend_from_slice(&encode_text(&card));
        data.extend_from_slice(&[0u8; PHOTO_LEN]);
        let (text, photo) = split_basic_info(&data).unwrap();
        assert_eq!(decode_text(text), Ok(card));
        assert_eq!(photo.len(), PHOTO_LEN);
        // The whole answer is 1295 bytes with LEN 0x0508.
        let frame = response([0, 0, 0x90], &data);
        assert_eq!(frame.len(), 1295);
        assert_eq!(&frame[5..7], &[0x05, 0x08]);
        assert!(split_basic_info(&data[..100]).is_none());
    }
}
