//! Every decoder survives arbitrary bytes: no panic, bounded memory, and it
//! still finds the good frames around the garbage. Bounded runs (a fixed
//! number of cases each), part of the normal test command.

use evdev::KeyCode;
use hal::idcard::sam;
use hal::printer::escpos;
use hal::printer::stream::{self, StreamParser};
use hal::scanner::keymap::{self, KeyDecoder};
use proptest::prelude::*;
use std::time::Duration;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 1000,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn sam_decoder_survives_garbage_and_finds_frames_after_it(
        garbage in proptest::collection::vec(any::<u8>(), 0..3000),
        chunk in 1usize..64,
        data in proptest::collection::vec(any::<u8>(), 0..32),
    ) {
        let mut d = sam::Decoder::responses();
        for piece in garbage.chunks(chunk) {
            d.push(piece);
            while d.next_response().is_some() {}
            prop_assert!(d.pending() <= 7 + sam::MAX_LEN);
        }
        // A run of preamble-free filler flushes any half-frame the garbage began.
        let good = sam::response([0, 0, 0x90], &data);
        d.push(&vec![0u8; 7 + sam::MAX_LEN]);
        while d.next_response().is_some() {}
        d.push(&good);
        let mut found = None;
        while let Some(r) = d.next_response() {
            if let Ok(r) = r { found = Some(r); }
        }
        prop_assert_eq!(found, Some(sam::Response { sw: [0, 0, 0x90], data }));
    }

    #[test]
    fn the_text_block_decoder_is_total(block in proptest::collection::vec(any::<u8>(), 256)) {
        let block: [u8; sam::TEXT_LEN] = block.try_into().unwrap();
        // Any layout, or a refusal naming the type character: never a panic.
        let _ = sam::decode_text(&block);
    }

    #[test]
    fn sam_request_decoder_survives_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..4000)) {
        let mut d = sam::Decoder::requests();
        d.push(&bytes);
        while d.next_request().is_some() {}
        prop_assert!(d.pending() <= 7 + sam::MAX_LEN);
    }

    #[test]
    fn escpos_status_decoder_is_total(answers in any::<[u8; 4]>()) {
        if let Ok(s) = escpos::decode_status(answers) {
            // Whatever it decodes, the printer is only ready with nothing wrong.
            prop_assert_eq!(s.ready(), s.problem().is_none());
        }
    }

    #[test]
    fn escpos_stream_parser_survives_garbage(
        garbage in proptest::collection::vec(any::<u8>(), 0..12000),
        chunk in 1usize..512,
    ) {
        let mut p = StreamParser::new();
        for piece in garbage.chunks(chunk) {
            p.push(piece);
        }
        // After garbage, a reset and a ticket still parse.
        let ticket = escpos::TicketBuilder::new().line("OK").cut();
        let mut tail = vec![0u8; stream::MAX_PENDING + 16];
        tail.extend_from_slice(&ticket);
        let cmds = p.push(&tail);
        prop_assert!(cmds.contains(&stream::Command::Line("OK".into())));
        prop_assert_eq!(cmds.last(), Some(&stream::Command::Cut));
    }

    #[test]
    fn keymap_decoder_survives_any_events(
        events in proptest::collection::vec((0u16..0x300, 0i32..3, 0u64..300), 0..6000),
    ) {
        let mut d = KeyDecoder::default();
        let mut t = Duration::ZERO;
        for (code, value, gap_ms) in events {
            t += Duration::from_millis(gap_ms);
            for out in d.key(KeyCode::new(code), value, t) {
                if let keymap::Decoded::Code(c) = out {
                    prop_assert!(!c.is_empty() && c.len() <= keymap::MAX_CODE);
                }
            }
        }
    }

    #[test]
    fn keymap_round_trips_typed_text(text in "[ -~]{1,200}") {
        let mut d = KeyDecoder::default();
        let mut t = Duration::ZERO;
        let mut out = Vec::new();
        let mut shift = false;
        for (key, shifted) in keymap::keys_for(&text).unwrap() {
            t += Duration::from_millis(1);
            if shifted != shift {
                out.extend(d.key(KeyCode::KEY_LEFTSHIFT, shifted as i32, t));
                shift = shifted;
            }
            out.extend(d.key(key, keymap::KEY_DOWN, t));
            out.extend(d.key(key, keymap::KEY_UP, t));
        }
        out.extend(d.key(KeyCode::KEY_ENTER, keymap::KEY_DOWN, t));
        // Trailing spaces are part of the code; nothing is lost or added.
        prop_assert_eq!(out, vec![keymap::Decoded::Code(text)]);
    }
}
