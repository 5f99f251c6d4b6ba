//! An ID-card reader on the far end of a PTY: holds test cards, answers the
//! SAM commands as a reader does, and can present or remove a card, corrupt a
//! checksum, truncate a frame, answer with any status or stop answering.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::sam::{self, CardKind, Date, IdCard, Sex, Sw3, ValidTo};
use crate::pty::Pty;

/// A fault to inject into the next answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Flip the checksum of the next answer.
    BadChecksum,
    /// Send only the first half of the next answer.
    Truncate,
    /// Answer the next command with this status instead.
    Status(Sw3),
}

#[derive(Debug, Default)]
struct State {
    card: Option<IdCard>,
    /// A card-type character (text byte 248) of a kind no decoder knows,
    /// for the card on the reader.
    unknown_type: Option<char>,
    /// Set once the present card was read: like real readers, find answers
    /// "no card" until the card is lifted and put down again.
    read: bool,
    fault: Option<Fault>,
    silent: bool,
    /// When the last byte of the last card-data answer was written.
    card_sent_at: Option<std::time::Instant>,
}

#[derive(Debug)]
pub struct SimIdReader {
    state: Arc<Mutex<State>>,
    answered: watch::Receiver<u64>,
    task: JoinHandle<()>,
}

impl Drop for SimIdReader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SimIdReader {
    pub fn start(pty: Pty) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let (answered_tx, answered) = watch::channel(0);
        let task = tokio::spawn(serve(pty, state.clone(), answered_tx));
        SimIdReader {
            state,
            answered,
            task,
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().expect("sim state"))
    }

    /// Puts a card on the reader (replacing any).
    pub fn present(&self, card: IdCard) {
        self.with(|s| {
            s.card = Some(card);
            s.unknown_type = None;
            s.read = false;
        });
    }

    /// Puts a card of a kind no decoder knows (type character `c`) on the reader.
    pub fn present_unknown_kind(&self, card: IdCard, c: char) {
        self.present(card);
        self.with(|s| s.unknown_type = Some(c));
    }

    pub fn remove(&self) {
        self.with(|s| {
            s.card = None;
            s.unknown_type = None;
            s.read = false;
        });
    }

    pub fn inject(&self, fault: Fault) {
        self.with(|s| s.fault = Some(fault));
    }

    pub fn set_silent(&self, silent: bool) {
        self.with(|s| s.silent = silent);
    }

    /// When the last byte of the last card-data (30 01) answer was written:
    /// the start of the latency a benchmark measures.
    pub fn card_sent_at(&self) -> Option<std::time::Instant> {
        self.with(|s| s.card_sent_at)
    }

    /// Commands answered so far.
    pub fn commands(&self) -> u64 {
        *self.answered.borrow()
    }

    /// Waits until `n` more commands have been answered (polls went by).
    pub async fn wait_commands(&self, n: u64) {
        let target = self.commands() + n;
        let _ = self.answered.clone().wait_for(|&c| c >= target).await;
    }
}

async fn serve(pty: Pty, state: Arc<Mutex<State>>, answered: watch::Sender<u64>) {
    let mut decoder = sam::Decoder::requests();
    let mut buf = [0u8; 1024];
    loop {
        let n = match pty.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        decoder.push(&buf[..n]);
        while let Some(req) = decoder.next_request() {
            let is_read = matches!(&req, Ok(r) if r.cmd == sam::READ_BASIC);
            let answer = {
                let mut s = state.lock().expect("sim state");
                answer(&mut s, req)
            };
            if let Some(bytes) = answer {
                if pty.write_all(&bytes).await.is_err() {
                    return;
                }
                if is_read {
                    state.lock().expect("sim state").card_sent_at = Some(std::time::Instant::now());
                }
                answered.send_modify(|c| *c += 1);
            }
        }
    }
}

fn answer(s: &mut State, req: Result<sam::Request, sam::FrameError>) -> Option<Vec<u8>> {
    if s.silent {
        return None;
    }
    let ok = [0, 0, Sw3::Ok.byte()];
    let status = |sw3: Sw3| [0, 0, sw3.byte()];
    let (sw, data): ([u8; 3], Vec<u8>) = match req {
        Err(sam::FrameError::Checksum { .. }) => (status(Sw3::HostChecksum), vec![]),
        Err(sam::FrameError::Length(_)) => (status(Sw3::HostLength), vec![]),
        Ok(req) => match (req.cmd, &s.card) {
            (sam::SAM_STATUS, _) | ((0x10, 0xFF), _) => (ok, vec![]),
            (sam::FIND, Some(_)) if !s.read => (status(Sw3::CardFound), vec![0; 4]),
            (sam::FIND, _) => (status(Sw3::NoCard), vec![]),
            (sam::SELECT, Some(_)) => (ok, b"SIMSN001".to_vec()),
            (sam::SELECT, None) => (status(Sw3::SelectFailed), vec![]),
            (sam::READ_BASIC, Some(card)) => {
                let mut data = vec![0x01, 0x00, 0x04, 0x00];
                data.extend_from_slice(&sam::encode_text(card));
                data.extend_from_slice(&[0x55; sam::PHOTO_LEN]);
                if let Some(c) = s.unknown_type {
                    data[4 + 248..4 + 250].copy_from_slice(&(c as u16).to_le_bytes());
                }
                s.read = true;
                (ok, data)
            }
            (sam::READ_BASIC, None) => (status(Sw3::ReadFailed), vec![]),
            _ => (status(Sw3::BadCommand), vec![]),
        },
    };
    let mut frame = match s.fault.take() {
        Some(Fault::Status(sw3)) => sam::response(status(sw3), &[]),
        other => {
            s.fault = other;
            sam::response(sw, &data)
        }
    };
    match s.fault.take() {
        Some(Fault::BadChecksum) => *frame.last_mut().expect("frame") ^= 0x5A,
        Some(Fault::Truncate) => frame.truncate(frame.len() / 2),
        _ => {}
    }
    Some(frame)
}

/// Test cards with valid check digits (made-up people and numbers).
pub fn test_cards() -> Vec<IdCard> {
    let card = |name: &str, sex, id17: &str, birth: &str, address: &str, to: Option<ValidTo>| {
        let check = sam::check_digit(id17).expect("17 digits");
        IdCard {
            name: name.into(),
            sex,
            nation_code: "01".into(),
            birth: Date::parse_compact(birth),
            address: address.into(),
            id_number: format!("{id17}{check}"),
            issuer: "测试市公安局".into(),
            valid_from: Date::parse_compact("20200101"),
            valid_to: to,
            ..IdCard::default()
        }
    };
    vec![
        card(
            "张三",
            Sex::Male,
            "11010519491231002",
            "19491231",
            "北京市东城区测试路1号",
            Some(ValidTo::LongTerm),
        ),
        card(
            "李四",
            Sex::Female,
            "44030419900307123",
            "19900307",
            "广东省深圳市福田区示例街2号",
            Date::parse_compact("20400101").map(ValidTo::Date),
        ),
        card(
            "欧阳娜娜",
            Sex::Female,
            "32010220001111222",
            "20001111",
            "江苏省南京市玄武区样例巷3号",
            Date::parse_compact("20300601").map(ValidTo::Date),
        ),
        // 3: a Foreigner's Permanent Residence ID Card of 2017 (`I`).
        IdCard {
            kind: CardKind::Foreigner2017,
            name: "马丁".into(),
            english_name: "MARTIN, JOHN PAUL".into(),
            sex: Sex::Male,
            nationality: "CAN".into(),
            id_number: {
                let first = "CAN11008002151";
                format!(
                    "{first}{}",
                    sam::check_digit_731(first).expect("14 characters")
                )
            },
            birth: Date::parse_compact("19800215"),
            issuer: "1100".into(),
            valid_from: Date::parse_compact("20170601"),
            valid_to: Date::parse_compact("20270601").map(ValidTo::Date),
            ..IdCard::default()
        },
        // 4: its 2023 successor (`Y`), with an English name longer than the
        // first field's 35 characters (split mid-word on the card).
        IdCard {
            kind: CardKind::Foreigner2023,
            name: "玛丽亚".into(),
            english_name: "GONZALEZ RODRIGUEZ, MARIA DEL CARMEN ALEJANDRA".into(),
            sex: Sex::Female,
            nationality: "ESP".into(),
            id_number: {
                let first = "91172419850720001";
                format!("{first}{}", sam::check_digit(first).expect("17 digits"))
            },
            birth: Date::parse_compact("19850720"),
            issue_count: "01".into(),
            previous_number: "ESP".into(),
            valid_from: Date::parse_compact("20230901"),
            valid_to: Date::parse_compact("20330901").map(ValidTo::Date),
            ..IdCard::default()
        },
        // 5: a Residence Permit for Hong Kong, Macao and Taiwan residents (`J`).
        IdCard {
            kind: CardKind::HkMacaoTaiwan,
            name: "陈大文".into(),
            sex: Sex::Male,
            birth: Date::parse_compact("19850520"),
            address: "广东省深圳市南山区样例道5号".into(),
            id_number: {
                let first = "81000019850520002";
                format!("{first}{}", sam::check_digit(first).expect("17 digits"))
            },
            issuer: "深圳市公安局".into(),
            pass_number: "H12345678".into(),
            issue_count: "01".into(),
            valid_from: Date::parse_compact("20220101"),
            valid_to: Date::parse_compact("20270101").map(ValidTo::Date),
            ..IdCard::default()
        },
    ]
}
