//! The ID-card reader backend against the simulated SAM reader, through a
//! real PTY: reads, once-per-presentation, every fault, and privacy.

use std::time::Duration;

use hal::DeviceState;
use hal::idcard::sim::{Fault, SimIdReader, test_cards};
use hal::idcard::{self, IdCardRead, Sw3};
use hal::pty::Pty;

const POLL: Duration = Duration::from_millis(20);

struct Rig {
    _dir: tempfile::TempDir,
    link: std::path::PathBuf,
    sim: SimIdReader,
    dev: hal::Device<IdCardRead>,
}

async fn rig(timeout: Duration) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("id-reader");
    let sim = SimIdReader::start(Pty::open_at(&link).unwrap());
    let dev = idcard::spawn_with("id", &link, 115_200, POLL, timeout);
    dev.watch_state()
        .wait_for(|s| *s == DeviceState::Connected)
        .await
        .unwrap();
    Rig {
        _dir: dir,
        link,
        sim,
        dev,
    }
}

/// Waits until the simulator has answered `n` more commands (polls went by).
async fn polls(sim: &SimIdReader, n: u64) {
    sim.wait_commands(n).await;
}

#[tokio::test]
async fn a_presented_card_is_read_and_decoded() {
    let mut r = rig(Duration::from_secs(2)).await;
    let card = test_cards()[1].clone();
    r.sim.present(card.clone());
    let read = r.dev.next().await.unwrap();
    assert_eq!(read.reader, "id");
    assert_eq!(read.card, card);
    assert!(read.card.check_digit_ok());
    assert_eq!(read.card.valid_to.unwrap().to_string(), "2040-01-01");
}

/// The same reader returns foreigners' cards (2017 and 2023) and Hong Kong,
/// Macao and Taiwan residence permits: each is decoded in its own layout.
#[tokio::test]
async fn every_card_kind_is_read_in_its_own_layout() {
    let mut r = rig(Duration::from_secs(2)).await;
    for card in &test_cards()[3..] {
        r.sim.present(card.clone());
        let read = r.dev.next().await.unwrap();
        assert_eq!(read.card, *card, "{:?}", card.kind);
        assert!(read.card.check_digit_ok(), "{:?}", card.kind);
        r.sim.remove();
        polls(&r.sim, 2).await;
    }
}

/// A card whose type character this reader does not know is refused, not
/// read with the resident layout; the next card reads normally.
#[tokio::test]
async fn a_card_of_an_unknown_kind_is_refused() {
    let mut r = rig(Duration::from_secs(2)).await;
    r.sim.present_unknown_kind(test_cards()[0].clone(), 'Z');
    polls(&r.sim, 6).await;
    r.sim.remove();
    polls(&r.sim, 2).await;
    let next = test_cards()[5].clone();
    r.sim.present(next.clone());
    let read = r.dev.next().await.unwrap();
    assert_eq!(read.card, next, "the unknown card was never delivered");
}

#[tokio::test]
async fn a_card_is_reported_once_per_presentation() {
    let mut r = rig(Duration::from_secs(2)).await;
    let card = test_cards()[0].clone();
    r.sim.present(card.clone());
    assert_eq!(r.dev.next().await.unwrap().card, card);
    // Many polls with the card still on the reader: no second report.
    polls(&r.sim, 20).await;
    assert!(
        r.dev.try_next().is_none(),
        "a card still on the reader was reported twice"
    );
    r.sim.remove();
    polls(&r.sim, 3).await;
    r.sim.present(card.clone());
    let again = r.dev.next().await.unwrap();
    assert_eq!(again.card.valid_to.unwrap().to_string(), "long-term");
    polls(&r.sim, 10).await;
    assert!(r.dev.try_next().is_none());
    r.sim.remove();
    polls(&r.sim, 3).await;
    r.sim.present(test_cards()[2].clone());
    assert_eq!(r.dev.next().await.unwrap().card.name, "欧阳娜娜");
}

#[tokio::test]
async fn a_bad_checksum_or_error_status_is_survived() {
    let mut r = rig(Duration::from_secs(2)).await;
    r.sim.inject(Fault::BadChecksum);
    polls(&r.sim, 2).await;
    r.sim.inject(Fault::Status(Sw3::ReadFailed));
    polls(&r.sim, 2).await;
    assert_eq!(r.dev.state(), DeviceState::Connected);
    r.sim.present(test_cards()[0].clone());
    assert_eq!(r.dev.next().await.unwrap().card.name, "张三");
}

#[tokio::test]
async fn a_truncated_frame_times_out_and_the_reader_recovers() {
    let mut r = rig(Duration::from_millis(200)).await;
    r.sim.inject(Fault::Truncate);
    let lost = r
        .dev
        .watch_state()
        .wait_for(|s| matches!(s, DeviceState::Reconnecting { .. }))
        .await
        .unwrap()
        .to_string();
    assert!(lost.contains("no answer to command"), "{lost}");
    assert!(lost.contains("within 200 ms"), "{lost}");
    r.dev
        .watch_state()
        .wait_for(|s| *s == DeviceState::Connected)
        .await
        .unwrap();
    r.sim.present(test_cards()[1].clone());
    assert_eq!(r.dev.next().await.unwrap().card.name, "李四");
}

#[tokio::test]
async fn a_silent_reader_is_reported_and_an_unplugged_one_comes_back() {
    let mut r = rig(Duration::from_millis(100)).await;
    r.sim.set_silent(true);
    r.dev
        .watch_state()
        .wait_for(|s| matches!(s, DeviceState::Reconnecting { .. }))
        .await
        .unwrap();
    drop(std::mem::replace(
        &mut r.sim,
        SimIdReader::start(Pty::open_at(&r.link).unwrap()),
    ));
    r.dev
        .watch_state()
        .wait_for(|s| *s == DeviceState::Connected)
        .await
        .unwrap();
    r.sim.present(test_cards()[0].clone());
    assert!(r.dev.next().await.is_some());
}

#[tokio::test]
async fn debug_output_never_shows_name_address_or_id_number() {
    let mut r = rig(Duration::from_secs(2)).await;
    let card = test_cards()[2].clone();
    r.sim.present(card.clone());
    let read = r.dev.next().await.unwrap();
    let dbg = format!("{read:?}");
    assert!(!dbg.contains(&card.name), "{dbg}");
    assert!(!dbg.contains(&card.id_number), "{dbg}");
    assert!(!dbg.contains(&card.address), "{dbg}");
    assert!(dbg.contains("欧***"), "{dbg}");
}
