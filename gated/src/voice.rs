//! Spoken prompts at the lanes (验票成功，请通行 …) through ALSA.
//!
//! A prompt is a WAV file per language, `<name>.zh.wav` and `<name>.en.wav`:
//! recorded files in `[voice] overrides` (/etc/gated/sounds) replace the
//! defaults in `[voice] sounds`, which `scripts/voice-prompts.py` generates
//! from `gated/sounds/prompts.tsv`. One thread plays them in order of
//! asking; a newer prompt replaces one still waiting, so a queue never
//! talks about a visitor long gone. Asking never waits: the lane commands
//! the gate first and speaks after. A missing or broken sound device costs
//! the sound only: it is logged once and shown in `Device1.Devices`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use tokio::sync::watch;
use tracing::{info, warn};

use crate::tickets::rules::Reason;

/// What a lane says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    /// The gate is unlocked for the visitor.
    Pass,
    Refused(Reason),
    /// Nobody walked: the ticket stays valid.
    NotPassed,
    /// Someone followed without a ticket.
    Tailgating,
    /// The gate failed: out of service.
    OutOfService,
    /// The lane is open (again): "please show your ticket".
    Present,
    /// The site's occupancy tier notice (`busy`, `sales_stopped`; a full
    /// site is the `capacity_full` refusal).
    Occupancy(&'static str),
    FireAlarm,
    PowerFallback,
    /// Not enrolled: "waiting for setup, scan the setup code".
    SetupWaiting,
    /// Enrolled by the setup code just scanned.
    SetupDone,
    /// The setup code was refused (the display says why).
    SetupFailed,
}

impl Prompt {
    /// The file name's stem; one line of prompts.tsv each.
    pub fn name(self) -> &'static str {
        match self {
            Prompt::Pass => "pass",
            Prompt::Refused(r) => r.code(),
            Prompt::NotPassed => "not_passed",
            Prompt::Tailgating => "tailgating",
            Prompt::OutOfService => "out_of_service",
            Prompt::Present => "present",
            Prompt::Occupancy(tier) => tier,
            Prompt::FireAlarm => "fire_alarm",
            Prompt::PowerFallback => "power_fallback",
            Prompt::SetupWaiting => "setup_waiting",
            Prompt::SetupDone => "setup_done",
            Prompt::SetupFailed => "setup_failed",
        }
    }
}

/// 16-bit PCM samples, interleaved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clip {
    pub rate: u32,
    pub channels: u16,
    pub samples: Vec<i16>,
}

/// Reads a PCM WAV file (16-bit, mono or stereo, any rate); the error says
/// what is wrong with it.
pub fn read_wav(path: &Path) -> Result<Clip, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_wav(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn parse_wav(b: &[u8]) -> Result<Clip, String> {
    if b.len() < 12 || &b[..4] != b"RIFF" || &b[8..12] != b"WAVE" {
        return Err("not a WAV file (no RIFF/WAVE header)".into());
    }
    let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let (mut at, mut format) = (12, None);
    while at + 8 <= b.len() {
        let (id, len) = (&b[at..at + 4], u32_at(at + 4) as usize);
        let body = at + 8;
        let end = body.checked_add(len).filter(|&e| e <= b.len());
        match id {
            b"fmt " => {
                if len < 16 || end.is_none() {
                    return Err("its fmt chunk is cut short".into());
                }
                let (tag, channels, rate, bits) = (
                    u16_at(body),
                    u16_at(body + 2),
                    u32_at(body + 4),
                    u16_at(body + 14),
                );
                // 16-bit PCM (0xFFFE, extensible, carries it too), or G.711
                // mu-law as the default prompts are stored.
                let mu_law = match (tag, bits) {
                    (1 | 0xFFFE, 16) => false,
                    (7, 8) => true,
                    _ => {
                        return Err(format!(
                            "format {tag:#x} with {bits}-bit samples: prompts are 16-bit PCM or 8-bit mu-law"
                        ));
                    }
                };
                if !(1..=2).contains(&channels) || !(8000..=48000).contains(&rate) {
                    return Err(format!(
                        "{channels} channel(s) at {rate} Hz: mono or stereo, 8–48 kHz"
                    ));
                }
                format = Some((channels, rate, mu_law));
            }
            b"data" => {
                let (channels, rate, mu_law) =
                    format.ok_or("its data comes before its fmt chunk")?;
                // A truncated file plays what it has.
                let data = &b[body..end.unwrap_or(b.len())];
                let samples: Vec<i16> = if mu_law {
                    data.iter().map(|&u| from_mu_law(u)).collect()
                } else {
                    data.chunks_exact(2)
                        .map(|s| i16::from_le_bytes([s[0], s[1]]))
                        .collect()
                };
                if samples.is_empty() {
                    return Err("it holds no samples".into());
                }
                return Ok(Clip {
                    rate,
                    channels,
                    samples,
                });
            }
            _ => {}
        }
        // Chunks are padded to an even length.
        at = body.saturating_add(len + (len & 1));
    }
    Err("it has no data chunk".into())
}

/// ITU-T G.711 mu-law to linear.
pub fn from_mu_law(u: u8) -> i16 {
    let u = !u;
    let exponent = (u >> 4) & 0x07;
    let magnitude = (((i32::from(u & 0x0F) << 3) + 0x84) << exponent) - 0x84;
    (if u & 0x80 != 0 { -magnitude } else { magnitude }) as i16
}

/// Scales samples by `percent` of the recorded level.
fn scaled(samples: &[i16], percent: u8) -> Vec<i16> {
    if percent >= 100 {
        return samples.to_vec();
    }
    samples
        .iter()
        .map(|&s| (i32::from(s) * i32::from(percent) / 100) as i16)
        .collect()
}

/// Plays one clip to the end on `device`.
fn play(device: &str, clip: &Clip) -> Result<(), String> {
    use alsa::pcm::{Access, Format, HwParams, PCM};
    let e = |what: &str, err: alsa::Error| format!("ALSA device {device:?}: {what}: {err}");
    let pcm = PCM::new(device, alsa::Direction::Playback, false).map_err(|x| e("open", x))?;
    {
        let hw = HwParams::any(&pcm).map_err(|x| e("parameters", x))?;
        hw.set_channels(u32::from(clip.channels))
            .map_err(|x| e("channels", x))?;
        hw.set_rate(clip.rate, alsa::ValueOr::Nearest)
            .map_err(|x| e("rate", x))?;
        hw.set_format(Format::s16()).map_err(|x| e("format", x))?;
        hw.set_access(Access::RWInterleaved)
            .map_err(|x| e("access", x))?;
        pcm.hw_params(&hw).map_err(|x| e("parameters", x))?;
    }
    let io = pcm.io_i16().map_err(|x| e("io", x))?;
    let frame = usize::from(clip.channels);
    let mut rest = &clip.samples[..clip.samples.len() / frame * frame];
    while !rest.is_empty() {
        match io.writei(rest) {
            Ok(frames) => rest = &rest[frames * frame..],
            // An underrun (the thread was late) is recovered, once per write.
            Err(err) => pcm.try_recover(err, true).map_err(|x| e("playback", x))?,
        }
    }
    pcm.drain().map_err(|x| e("drain", x))
}

/// The prompt player: cheap to clone.
#[derive(Debug, Clone)]
pub struct Voice {
    tx: mpsc::Sender<&'static str>,
    state: watch::Receiver<String>,
}

/// What the player thread needs.
struct Player {
    device: String,
    languages: Vec<&'static str>,
    volume: u8,
    quiet: Option<((u16, u16), u8)>,
    dirs: [PathBuf; 2],
    tz: jiff::tz::TimeZone,
    state: watch::Sender<String>,
}

impl Voice {
    /// Starts the player thread for `[voice]`.
    pub fn start(c: &crate::config::Voice, tz: jiff::tz::TimeZone) -> Voice {
        let languages = match c.language.get_ref().as_str() {
            "en" => vec!["en"],
            "both" => vec!["zh", "en"],
            _ => vec!["zh"],
        };
        let (state_tx, state) = watch::channel("starting".to_owned());
        let player = Player {
            device: c.device.get_ref().clone(),
            languages,
            volume: *c.volume.get_ref(),
            quiet: c.quiet().map(|w| (w, *c.quiet_volume.get_ref())),
            dirs: [c.overrides.get_ref().clone(), c.sounds.get_ref().clone()],
            tz,
            state: state_tx,
        };
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("voice".into())
            .spawn(move || player.run(rx))
            .expect("spawn the voice thread");
        Voice { tx, state }
    }

    /// Queues `p`; returns at once.
    pub fn say(&self, p: Prompt) {
        let _ = self.tx.send(p.name());
    }

    /// `ready`, or what is wrong with the sound (`failed: …`).
    pub fn state(&self) -> String {
        self.state.borrow().clone()
    }
}

impl Player {
    fn run(self, rx: mpsc::Receiver<&'static str>) {
        // Told at once, not at the first visitor, when there is no sound.
        let mut failing = match alsa::pcm::PCM::new(&self.device, alsa::Direction::Playback, false)
        {
            Ok(_) => {
                self.state.send_replace("ready".into());
                false
            }
            Err(err) => {
                self.failed(&format!("ALSA device {:?}: open: {err}", self.device));
                true
            }
        };
        let mut bad_files = HashSet::new();
        while let Ok(mut name) = rx.recv() {
            while let Ok(newer) = rx.try_recv() {
                name = newer;
            }
            let volume = self.volume_now();
            if volume == 0 {
                continue;
            }
            for lang in &self.languages {
                let clip = match self.clip(name, lang) {
                    Ok(c) => c,
                    Err(why) => {
                        if bad_files.insert(why.clone()) {
                            warn!("voice prompt {name} ({lang}) not played: {why}");
                        }
                        continue;
                    }
                };
                let clip = Clip {
                    samples: scaled(&clip.samples, volume),
                    ..clip
                };
                match play(&self.device, &clip) {
                    Ok(()) if failing => {
                        failing = false;
                        info!("sound works again on ALSA device {:?}", self.device);
                        self.state.send_replace("ready".into());
                    }
                    Ok(()) => {}
                    Err(why) => {
                        if !failing {
                            self.failed(&why);
                            failing = true;
                        }
                        break;
                    }
                }
            }
        }
    }

    fn failed(&self, why: &str) {
        warn!("no voice prompts until the sound device works: {why}");
        self.state.send_replace(format!("failed: {why}"));
    }

    /// The recorded file if there is one, else the default.
    fn clip(&self, name: &str, lang: &str) -> Result<Clip, String> {
        let file = format!("{name}.{lang}.wav");
        let [over, default] = &self.dirs;
        let recorded = over.join(&file);
        if recorded.exists() {
            return read_wav(&recorded);
        }
        read_wav(&default.join(&file))
    }

    fn volume_now(&self) -> u8 {
        let Some(((from, to), quiet)) = self.quiet else {
            return self.volume;
        };
        let now = jiff::Timestamp::now().to_zoned(self.tz.clone());
        let m = now.hour() as u16 * 60 + now.minute() as u16;
        if crate::config::in_window(m, (from, to)) {
            quiet.min(self.volume)
        } else {
            self.volume
        }
    }
}

/// Announces the device's emergency modes at its lanes, and asks for
/// tickets when the lanes open again (and once at start).
pub async fn follow_modes(voice: Voice, mut view: watch::Receiver<crate::modes::ModeView>) {
    use crate::modes::Mode;
    // Offline, the lanes check tickets as usual.
    let open = |m: Mode| matches!(m, Mode::Normal | Mode::Offline);
    let mut was = view.borrow_and_update().mode;
    if open(was) {
        voice.say(Prompt::Present);
    }
    while view.changed().await.is_ok() {
        let now = view.borrow_and_update().mode;
        match now {
            _ if now == was => {}
            Mode::FireAlarm => voice.say(Prompt::FireAlarm),
            Mode::PowerFallback => voice.say(Prompt::PowerFallback),
            _ if open(now) && !open(was) => voice.say(Prompt::Present),
            _ => {}
        }
        was = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(fmt: &[u8], data: &[u8]) -> Vec<u8> {
        let mut b = b"RIFF\0\0\0\0WAVE".to_vec();
        b.extend_from_slice(b"fmt ");
        b.extend_from_slice(&(fmt.len() as u32).to_le_bytes());
        b.extend_from_slice(fmt);
        b.extend_from_slice(b"data");
        b.extend_from_slice(&(data.len() as u32).to_le_bytes());
        b.extend_from_slice(data);
        b
    }

    fn fmt(tag: u16, channels: u16, rate: u32, bits: u16) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&tag.to_le_bytes());
        f.extend_from_slice(&channels.to_le_bytes());
        f.extend_from_slice(&rate.to_le_bytes());
        f.extend_from_slice(&(rate * 2).to_le_bytes());
        f.extend_from_slice(&2u16.to_le_bytes());
        f.extend_from_slice(&bits.to_le_bytes());
        f
    }

    #[test]
    fn a_wav_file_is_read_and_a_bad_one_is_named() {
        let ok = wav(&fmt(1, 1, 16000, 16), &[1, 0, 0xff, 0xff]);
        assert_eq!(
            parse_wav(&ok),
            Ok(Clip {
                rate: 16000,
                channels: 1,
                samples: vec![1, -1]
            })
        );
        let mu_law = wav(&fmt(7, 1, 8000, 8), &[0xFF, 0x7F, 0x80, 0x00]);
        assert_eq!(parse_wav(&mu_law).unwrap().samples, [0, 0, 32124, -32124]);
        let a_law = wav(&fmt(6, 1, 8000, 8), &[1, 2]);
        assert!(
            parse_wav(&a_law)
                .unwrap_err()
                .contains("16-bit PCM or 8-bit mu-law")
        );
        assert!(
            parse_wav(b"ID3\x03 an mp3")
                .unwrap_err()
                .contains("not a WAV")
        );
        let no_data = &ok[..36];
        assert!(parse_wav(no_data).unwrap_err().contains("no data chunk"));
        let empty = wav(&fmt(1, 1, 16000, 16), &[]);
        assert!(parse_wav(&empty).unwrap_err().contains("no samples"));
    }

    #[test]
    fn volume_scales_and_full_volume_plays_the_file_as_recorded() {
        assert_eq!(scaled(&[1000, -1000, 7], 100), vec![1000, -1000, 7]);
        assert_eq!(scaled(&[1000, -1000, 7], 50), vec![500, -500, 3]);
        assert_eq!(scaled(&[i16::MIN], 0), vec![0]);
    }

    /// Every prompt a lane can say has a line in prompts.tsv and a default
    /// file in each language; a refusal says what the display shows.
    #[test]
    fn every_prompt_has_its_text_and_its_files() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sounds");
        let tsv = std::fs::read_to_string(dir.join("prompts.tsv")).unwrap();
        let rows: Vec<Vec<&str>> = tsv
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| l.split('\t').collect())
            .collect();
        let mut prompts = vec![
            Prompt::Pass,
            Prompt::NotPassed,
            Prompt::Tailgating,
            Prompt::OutOfService,
            Prompt::Present,
            Prompt::FireAlarm,
            Prompt::PowerFallback,
            Prompt::SetupWaiting,
            Prompt::SetupDone,
            Prompt::SetupFailed,
        ];
        prompts.extend(Reason::ALL.iter().map(|&r| Prompt::Refused(r)));
        prompts.extend(
            crate::occupancy::TIER_NOTICES
                .iter()
                .map(|n| Prompt::Occupancy(n.prompt)),
        );
        for p in prompts {
            let row = rows
                .iter()
                .find(|r| r[0] == p.name())
                .unwrap_or_else(|| panic!("{p:?}: no line in prompts.tsv"));
            assert_eq!(row.len(), 3, "{row:?}: name, Chinese, English");
            if let Prompt::Refused(r) = p {
                let (zh, en) = r.message();
                assert_eq!((row[1], row[2]), (zh, en), "{p:?}");
            }
            if let Prompt::Occupancy(n) = p {
                let t = crate::occupancy::TIER_NOTICES
                    .iter()
                    .find(|t| t.prompt == n)
                    .unwrap();
                assert_eq!((row[1], row[2]), (t.zh, t.en), "{p:?}");
            }
            for lang in ["zh", "en"] {
                let clip = read_wav(&dir.join(format!("{}.{lang}.wav", p.name())))
                    .unwrap_or_else(|e| panic!("{p:?}: {e}"));
                assert!(
                    clip.samples.len() > clip.rate as usize / 4,
                    "{p:?} {lang}: too short"
                );
            }
        }
        assert_eq!(
            rows.len(),
            dir.read_dir().unwrap().count() / 2,
            "a file per row and language"
        );
    }
}
