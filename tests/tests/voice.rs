//! Voice prompts at a lane, heard through ALSA: the test gives gated an ALSA
//! configuration whose device is the `file` plugin writing into a FIFO, so
//! each prompt arrives as the samples played. Checked: which prompt is said
//! for which decision, that the gate was unlocked before the words started,
//! that a recorded prompt replaces the default, and that a missing sound
//! device costs the sound and nothing else.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use hal::gate::sim::{GateKind, SimGate, TcpServer};
use hal::gate::{Direction, RegisterMap};
use hal::pty::Pty;
use hal::scanner::sim::SimScanner;
use tests::offline_tickets;
use tests::procs::{Gated, wait_until};

/// Everything the speaker received, as one stream: the FIFO does not keep
/// one prompt apart from the next (a writer may open before the reader saw
/// the last one close).
#[derive(Default)]
struct Speaker {
    samples: Vec<i16>,
    /// (first sample of a read, whether the gate held an unlock when it arrived).
    reads: Vec<(usize, bool)>,
    /// Where the next prompt is looked for.
    cursor: usize,
}

/// One prompt found in the stream.
struct Heard {
    /// Whether the gate held an unlock when its first samples arrived.
    gate_unlocked: bool,
}

struct Lane {
    dir: tempfile::TempDir,
    scanner: SimScanner,
    gate: SimGate,
    _server: TcpServer,
    key: SigningKey,
    speaker: Arc<Mutex<Speaker>>,
}

const BOUND: Duration = Duration::from_secs(30);

fn sounds() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../gated/sounds")
}

/// The samples of a prompt file as gated plays it at full volume.
fn prompt(dir: &Path, file: &str) -> Vec<i16> {
    gated::voice::read_wav(&dir.join(file)).unwrap().samples
}

impl Lane {
    /// A lane whose speaker is ALSA device `device` (`lane` is the FIFO).
    async fn start(voice: &str) -> Lane {
        let dir = tempfile::tempdir().unwrap();
        let gate = SimGate::new(
            GateKind::WingGate,
            RegisterMap::load("coil-example").unwrap(),
            1,
        );
        let (addr, server) = gate
            .serve_tcp("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let scanner = SimScanner::new(Pty::open_at(&dir.path().join("qr")).unwrap());
        let state = dir.path().join("state");
        let key = SigningKey::from_bytes(&[5; 32]);
        offline_tickets::seed_store(&state, &key);

        // The speaker: ALSA's file plugin into a FIFO read here, one clip
        // per open (the plugin opens the file with the device).
        let fifo = dir.path().join("speaker");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        std::fs::write(
            dir.path().join("asound.conf"),
            format!(
                "pcm.lane {{\n type file\n slave {{ pcm {{ type null }} }}\n file \"{}\"\n format \"raw\"\n}}\n",
                fifo.display()
            ),
        )
        .unwrap();
        let speaker = Arc::new(Mutex::new(Speaker::default()));
        let (heard, watched) = (speaker.clone(), gate.clone());
        std::thread::spawn(move || {
            let mut odd: Option<u8> = None;
            // Each prompt opens the FIFO anew; gone with the test's directory.
            while let Ok(mut f) = std::fs::File::open(&fifo) {
                let mut buf = [0u8; 4096];
                while let Ok(n) = f.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let gate_unlocked = watched.permission(Direction::Entry) > 0;
                    let mut bytes: Vec<u8> = odd.take().into_iter().collect();
                    bytes.extend_from_slice(&buf[..n]);
                    if bytes.len() % 2 == 1 {
                        odd = bytes.pop();
                    }
                    let mut sp = heard.lock().unwrap();
                    let at = sp.samples.len();
                    sp.reads.push((at, gate_unlocked));
                    sp.samples.extend(
                        bytes
                            .chunks_exact(2)
                            .map(|b| i16::from_le_bytes([b[0], b[1]])),
                    );
                }
            }
        });

        std::fs::create_dir_all(dir.path().join("recorded")).unwrap();
        let toml = format!(
            "role = \"lane\"\ndevice_id = \"voice-1\"\nstate_dir = \"{state}\"\n\
             [central]\nurl = \"http://127.0.0.1:1/api/v1\"\n\
             [devices.scanners.qr]\nport = \"{d}/qr\"\n\
             [devices.gates.g]\nmodbus = \"tcp://{addr}\"\nmap = \"coil-example\"\npoll_ms = 10\n\
             [lanes.east-1]\ndirection = \"entry\"\ngroup = \"east\"\ngate = \"g\"\nscanners = [\"qr\"]\n\
             [voice]\nsounds = \"{sounds}\"\noverrides = \"{d}/recorded\"\n{voice}\n",
            state = state.display(),
            d = dir.path().display(),
            sounds = sounds().display(),
        );
        std::fs::write(dir.path().join("gated.toml"), toml).unwrap();
        Lane {
            dir,
            scanner,
            gate,
            _server: server,
            key,
            speaker,
        }
    }

    async fn gated(&self) -> Gated {
        self.gated_seen().await.0
    }

    /// gated once its scanner and gate are connected, and its log until then.
    async fn gated_seen(&self) -> (Gated, Vec<String>) {
        let conf = self.dir.path().join("asound.conf");
        let mut g = Gated::start_with_env(
            &self.dir.path().join("gated.toml"),
            "unix:path=/nonexistent/gated-test-bus",
            &[("ALSA_CONFIG_PATH", conf.to_str().unwrap())],
        );
        let seen = until(&mut g, |seen| {
            seen.iter()
                .any(|l| l.contains("device=\"qr\"") && l.contains("connected"))
                && seen
                    .iter()
                    .any(|l| l.contains("device=\"gate tcp://") && l.contains("connected"))
        })
        .await;
        (g, seen)
    }

    fn ticket(&self, id: u64) -> String {
        let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
        offline_tickets::ticket(&self.key, id, 1, gated::lanes::local_now(&tz))
    }

    /// Waits for `expected` to be the next thing the speaker plays (after
    /// the filler that ends the previous prompt's last period).
    async fn hears(&self, expected: &[i16], what: &str) -> Heard {
        // The plugin writes whole periods: the last one's tail is filler.
        const FILLER: usize = 4096;
        let deadline = tokio::time::Instant::now() + BOUND;
        loop {
            {
                let mut sp = self.speaker.lock().unwrap();
                let from = sp.cursor;
                let found = (from..=from + FILLER)
                    .take_while(|s| s + expected.len() <= sp.samples.len())
                    .find(|&s| sp.samples[s..s + expected.len()] == *expected);
                if let Some(at) = found {
                    sp.cursor = at + expected.len();
                    let gate_unlocked = sp
                        .reads
                        .iter()
                        .rev()
                        .find(|(first, _)| *first <= at)
                        .is_some_and(|r| r.1);
                    return Heard { gate_unlocked };
                }
                if sp.samples.len() >= from + FILLER + expected.len() {
                    let played = &sp.samples[from..];
                    let mut matches: Vec<String> = std::fs::read_dir(sounds())
                        .unwrap()
                        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                        .filter(|f| f.ends_with(".wav"))
                        .collect();
                    matches.retain(|f| {
                        let p = prompt(&sounds(), f);
                        (0..=FILLER.min(played.len().saturating_sub(p.len())))
                            .any(|s| played.len() >= s + p.len() && played[s..s + p.len()] == *p)
                    });
                    panic!(
                        "{what}: the speaker played something else (default prompts it matches: {matches:?})"
                    );
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: not played within {BOUND:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_decision_is_said_after_the_gate_was_commanded_in_both_languages() {
    let lane = Lane::start("device = \"lane\"\nlanguage = \"both\"").await;
    let s = sounds();
    let mut g = lane.gated().await;
    // At start the lane asks for tickets.
    lane.hears(&prompt(&s, "present.zh.wav"), "present (zh)")
        .await;
    lane.hears(&prompt(&s, "present.en.wav"), "present (en)")
        .await;

    // A valid ticket: the gate unlocks, then "验票成功，请通行" while the
    // visitor has not walked yet.
    let t = lane.ticket(1);
    lane.scanner.scan(&t).await.unwrap();
    let zh = lane.hears(&prompt(&s, "pass.zh.wav"), "pass (zh)").await;
    assert!(
        zh.gate_unlocked,
        "the prompt started before the gate was unlocked"
    );
    lane.hears(&prompt(&s, "pass.en.wav"), "pass (en)").await;
    assert!(lane.gate.walk(Direction::Entry));
    g.wait_for(&["admitted", "ticket=1"]).await;

    // The same ticket again: "票已使用".
    lane.scanner.scan(&t).await.unwrap();
    g.wait_for(&["refused", "already_used"]).await;
    lane.hears(&prompt(&s, "already_used.zh.wav"), "already used (zh)")
        .await;
    lane.hears(&prompt(&s, "already_used.en.wav"), "already used (en)")
        .await;

    // A code that is no ticket this lane knows: "未找到该票".
    lane.scanner.scan("hello").await.unwrap();
    g.wait_for(&["refused", "unknown_ticket"]).await;
    lane.hears(&prompt(&s, "unknown_ticket.zh.wav"), "unknown ticket (zh)")
        .await;
    lane.hears(&prompt(&s, "unknown_ticket.en.wav"), "unknown ticket (en)")
        .await;
    g.stop().await;
}

/// A site's recording replaces the default; the volume scales it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_prompt_replaces_the_default_at_the_set_volume() {
    let lane = Lane::start("device = \"lane\"\nlanguage = \"zh\"\nvolume = 50").await;
    // 0.1 s of a 16-bit, 16 kHz square wave stands in for a recording.
    let recorded: Vec<i16> = (0..1600)
        .map(|i| if i / 20 % 2 == 0 { 9000 } else { -9001 })
        .collect();
    let mut wav = b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0\x01\0\x01\0".to_vec();
    wav.extend_from_slice(&16000u32.to_le_bytes());
    wav.extend_from_slice(&32000u32.to_le_bytes());
    wav.extend_from_slice(b"\x02\0\x10\0data");
    wav.extend_from_slice(&(recorded.len() as u32 * 2).to_le_bytes());
    for s in &recorded {
        wav.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(lane.dir.path().join("recorded/pass.zh.wav"), wav).unwrap();

    let mut g = lane.gated().await;
    let half =
        |v: Vec<i16>| -> Vec<i16> { v.iter().map(|&s| (s as i32 * 50 / 100) as i16).collect() };
    lane.hears(
        &half(prompt(&sounds(), "present.zh.wav")),
        "present at 50 %",
    )
    .await;
    lane.scanner.scan(&lane.ticket(7)).await.unwrap();
    let h = lane
        .hears(&half(recorded), "the recorded pass at 50 %")
        .await;
    assert!(h.gate_unlocked);
    assert!(lane.gate.walk(Direction::Entry));
    g.wait_for(&["admitted", "ticket=7"]).await;
    g.stop().await;
}

/// gated's log lines until `done` holds for those read so far.
async fn until(g: &mut Gated, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let mut seen = Vec::new();
    tokio::time::timeout(BOUND, async {
        while !done(&seen) {
            let line = g.next_line().await.expect("gated exited");
            if std::env::var_os("SHOW_GATED_LOG").is_some() {
                eprintln!("gated: {line}");
            }
            seen.push(line);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("not logged within {BOUND:?}; got {seen:#?}"));
    seen
}

/// No sound card: said once in the log, and the lane admits as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_sound_device_the_lane_works_and_says_so_once() {
    let lane = Lane::start("device = \"no-such-card\"").await;
    let (mut g, mut seen) = lane.gated_seen().await;
    lane.gate.set_auto_walk(true);
    let warned = |l: &String| l.contains("no voice prompts until the sound device works");
    for id in [1, 2] {
        lane.scanner.scan(&lane.ticket(id)).await.unwrap();
        let admitted = format!("ticket={id}");
        let before = seen.iter().any(warned);
        let more = until(&mut g, |s| {
            s.iter()
                .any(|l| l.contains("admitted") && l.contains(&admitted))
                && (id == 1 || before || s.iter().any(warned))
        })
        .await;
        seen.extend(more);
    }
    seen.extend(g.kill_and_drain().await);
    let warnings: Vec<&String> = seen.iter().filter(|l| warned(l)).collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(warnings[0].contains("no-such-card"), "{}", warnings[0]);
    let state = lane.dir.path().join("state");
    wait_until("both passages recorded", BOUND, || {
        tests::procs::db_count(&state, "SELECT COUNT(*) FROM passages") == 2
    })
    .await;
}
