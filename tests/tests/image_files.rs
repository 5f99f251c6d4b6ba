//! The files the image installs beyond packages, checked with the tools that
//! will read them: systemd units (`systemd-analyze verify`, and `security`
//! for gated's exposure), sysusers.d and tmpfiles.d applied to a scratch
//! root, and the udev rules: parsed, and matched against the attributes of
//! each device they are written for.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use tests::repo_root;

const UNITS: &[&str] = &[
    "gated.service",
    "kiosk.service",
    "gated-provision.service",
    "gated-update-watchdog.service",
    "gated-update-watchdog.timer",
];

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (scripts/dev test installs systemd)"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A scratch root with the units in /etc/systemd/system, the host's own
/// units (targets, dbus.socket) and stand-ins for the binaries they start.
fn unit_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::create_dir_all(r.join("etc/systemd/system")).unwrap();
    std::fs::create_dir_all(r.join("usr/bin")).unwrap();
    for unit in UNITS {
        std::fs::copy(
            repo_root().join("systemd").join(unit),
            r.join("etc/systemd/system").join(unit),
        )
        .unwrap();
    }
    for bin in ["gated", "gatectl", "kiosk", "rm"] {
        let p = r.join("usr/bin").join(bin);
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        let mut perm = std::fs::metadata(&p).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        std::fs::set_permissions(&p, perm).unwrap();
    }
    let host = ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.join("multi-user.target").exists())
        .expect("the host's systemd units (apt install systemd)");
    std::fs::create_dir_all(r.join("usr/lib/systemd")).unwrap();
    let (ok, out) = run(Command::new("cp")
        .arg("-r")
        .arg(host)
        .arg(r.join("usr/lib/systemd/system")));
    assert!(ok, "{out}");
    root
}

#[test]
fn the_units_verify_cleanly() {
    let root = unit_root();
    let (ok, out) = run(Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.path().display()))
        .args(UNITS));
    // verify warns (unknown keys, bad values) without failing: any output counts.
    assert!(
        ok && out.trim().is_empty(),
        "systemd-analyze verify:\n{out}"
    );
}

#[test]
fn a_broken_unit_is_caught() {
    let root = unit_root();
    let unit = root.path().join("etc/systemd/system/kiosk.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    std::fs::write(&unit, text.replace("WatchdogSec=", "WachdogSec=")).unwrap();
    let (_, out) = run(Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.path().display()))
        .arg("kiosk.service"));
    assert!(out.contains("WachdogSec"), "{out}");
}

#[test]
fn gated_exposure_is_at_most_2_0() {
    let unit = repo_root().join("systemd/gated.service");
    let (_, out) = run(Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&unit));
    let level: f64 = out
        .lines()
        .find_map(|l| l.split("Overall exposure level for gated.service:").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{out}"));
    assert!(
        level <= 2.0,
        "gated.service exposure {level} > 2.0:\n{}",
        out.lines()
            .filter(|l| l.contains('✗'))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The same bound as systemd's own exit status (the scale is ×10).
    let (ok, out) = run(Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=20", "--no-pager"])
        .arg(&unit));
    assert!(ok, "{out}");
}

/// A root with the host's users and groups, then sysusers.d and
/// tmpfiles.d from the image applied to it.
#[test]
fn sysusers_and_tmpfiles_create_the_users_groups_and_private_directories() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::create_dir_all(r.join("etc/kiosk")).unwrap();
    std::fs::create_dir_all(r.join("etc/gated")).unwrap();
    for f in ["passwd", "group"] {
        std::fs::copy(Path::new("/etc").join(f), r.join("etc").join(f)).unwrap();
    }
    std::fs::write(r.join("etc/kiosk/kiosk.toml"), "").unwrap();
    std::fs::write(r.join("etc/gated/gated.toml"), "").unwrap();
    let sysusers =
        std::fs::File::open(repo_root().join("image/usr/lib/sysusers.d/scenicpark.conf")).unwrap();
    let (ok, out) = run(Command::new("systemd-sysusers")
        .arg(format!("--root={}", r.display()))
        .arg("-")
        .stdin(sysusers));
    assert!(ok, "systemd-sysusers:\n{out}");
    let table = |file: &str| -> BTreeMap<String, Vec<String>> {
        std::fs::read_to_string(r.join("etc").join(file))
            .unwrap()
            .lines()
            .map(|l| {
                let f: Vec<String> = l.split(':').map(str::to_owned).collect();
                (f[0].clone(), f)
            })
            .collect()
    };
    let (passwd, group) = (table("passwd"), table("group"));
    let members = |g: &str| {
        group[g][3]
            .split(',')
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    for g in ["dialout", "input", "gpio", "audio"] {
        assert!(members(g).contains(&"gated".to_owned()), "gated not in {g}");
    }
    assert!(members("video").contains(&"kiosk".to_owned()));
    assert!(
        !members("dialout").contains(&"kiosk".to_owned()),
        "the kiosk app has no device access"
    );
    assert!(group.contains_key("gated-engineer"));

    let tmpfiles =
        std::fs::File::open(repo_root().join("image/usr/lib/tmpfiles.d/scenicpark.conf")).unwrap();
    let (ok, out) = run(Command::new("systemd-tmpfiles")
        .arg(format!("--root={}", r.display()))
        .args(["--create", "-"])
        .stdin(tmpfiles));
    assert!(ok, "systemd-tmpfiles:\n{out}");
    use std::os::unix::fs::MetadataExt;
    let meta = |p: &str| std::fs::metadata(r.join(p)).unwrap();
    let uid = |u: &str| passwd[u][2].parse::<u32>().unwrap();
    let gid = |g: &str| group[g][2].parse::<u32>().unwrap();
    let state = meta("var/lib/gated");
    assert_eq!((state.mode() & 0o777, state.uid()), (0o700, uid("gated")));
    let kiosk = meta("etc/kiosk/kiosk.toml");
    assert_eq!(
        (kiosk.mode() & 0o777, kiosk.gid()),
        (0o640, gid("kiosk")),
        "the kiosk app's settings"
    );
    // The service PIN's hash is in gated.toml: gated's group only.
    let gated_toml = meta("etc/gated/gated.toml");
    assert_eq!(
        (gated_toml.mode() & 0o777, gated_toml.gid()),
        (0o640, gid("gated")),
        "gated.toml"
    );
    assert_eq!(meta("var/lib/provision").mode() & 0o777, 0o700);
}

// --- udev ---

/// One `KEY{attr}OP"value"` of a rule.
#[derive(Debug, Clone)]
struct Term {
    key: String,
    attr: Option<String>,
    op: String,
    value: String,
}

fn parse_rule(line: &str, at: &str) -> Vec<Term> {
    let mut terms = Vec::new();
    let mut rest = line.trim();
    while !rest.is_empty() {
        let op_at = rest
            .find(['=', '!', '+', ':'])
            .unwrap_or_else(|| panic!("{at}: no operator in {rest:?}"));
        let (lhs, tail) = rest.split_at(op_at);
        let op_len = if tail.starts_with("==")
            || tail.starts_with("!=")
            || tail.starts_with("+=")
            || tail.starts_with(":=")
        {
            2
        } else if tail.starts_with('=') {
            1
        } else {
            panic!("{at}: bad operator in {rest:?}")
        };
        let (op, tail) = tail.split_at(op_len);
        let tail = tail
            .strip_prefix('"')
            .unwrap_or_else(|| panic!("{at}: value not quoted in {rest:?}"));
        let end = tail
            .find('"')
            .unwrap_or_else(|| panic!("{at}: unterminated value in {rest:?}"));
        let (key, attr) = match lhs.split_once('{') {
            Some((k, a)) => (
                k.to_owned(),
                Some(
                    a.strip_suffix('}')
                        .unwrap_or_else(|| panic!("{at}: bad {lhs:?}"))
                        .to_owned(),
                ),
            ),
            None => (lhs.to_owned(), None),
        };
        let known = [
            "ACTION",
            "SUBSYSTEM",
            "KERNEL",
            "KERNELS",
            "ATTRS",
            "ENV",
            "SYMLINK",
            "GROUP",
            "MODE",
            "TAG",
            "GOTO",
            "LABEL",
        ];
        assert!(known.contains(&key.as_str()), "{at}: unknown key {key}");
        let matching = op == "==" || op == "!=";
        let assigning =
            ["SYMLINK", "GROUP", "MODE", "TAG", "GOTO", "LABEL"].contains(&key.as_str());
        assert!(
            matching != assigning || key == "ENV",
            "{at}: {key}{op} is the wrong kind of operator"
        );
        terms.push(Term {
            key,
            attr,
            op: op.to_owned(),
            value: tail[..end].to_owned(),
        });
        rest = tail[end + 1..]
            .trim_start()
            .trim_start_matches(',')
            .trim_start();
    }
    terms
}

/// fnmatch(3) as udev uses it: `*`, `?`, `[…]`, and `|` between alternatives.
fn glob(pattern: &str, text: &str) -> bool {
    fn one(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len()).any(|i| one(rest, &t[i..])),
            Some(('?', rest)) => !t.is_empty() && one(rest, &t[1..]),
            Some(('[', rest)) => {
                let close = rest.iter().position(|c| *c == ']').expect("[ without ]");
                let set = &rest[..close];
                let Some(c) = t.first() else { return false };
                let mut hit = false;
                let mut i = 0;
                while i < set.len() {
                    if i + 2 < set.len() && set[i + 1] == '-' {
                        hit |= set[i] <= *c && *c <= set[i + 2];
                        i += 3;
                    } else {
                        hit |= set[i] == *c;
                        i += 1;
                    }
                }
                hit && one(&rest[close + 1..], &t[1..])
            }
            Some((c, rest)) => t.first() == Some(c) && one(rest, &t[1..]),
        }
    }
    let t: Vec<char> = text.chars().collect();
    pattern
        .split('|')
        .any(|alt| one(&alt.chars().collect::<Vec<_>>(), &t))
}

/// A device as udev sees it: its own keys, its parents' ATTRS, its ENV.
#[derive(Debug, Default, Clone)]
struct Device {
    subsystem: &'static str,
    kernel: &'static str,
    attrs: BTreeMap<&'static str, &'static str>,
    env: BTreeMap<String, String>,
}

/// What the rules did to a device.
#[derive(Debug, Default, PartialEq)]
struct Outcome {
    symlinks: Vec<String>,
    group: Option<String>,
    tags: Vec<String>,
    env: BTreeMap<String, String>,
}

fn apply(rules: &[Vec<Term>], dev: &Device) -> Outcome {
    let mut out = Outcome::default();
    let mut env = dev.env.clone();
    let mut skip_to: Option<String> = None;
    for rule in rules {
        if let Some(label) = &skip_to {
            if rule.iter().any(|t| t.key == "LABEL" && &t.value == label) {
                skip_to = None;
            }
            continue;
        }
        let matches = rule
            .iter()
            .filter(|t| t.op == "==" || t.op == "!=")
            .all(|t| {
                let actual: Option<String> = match (t.key.as_str(), &t.attr) {
                    ("ACTION", _) => Some("add".into()),
                    ("SUBSYSTEM", _) => Some(dev.subsystem.into()),
                    ("KERNEL", _) => Some(dev.kernel.into()),
                    ("ATTRS", Some(a)) => dev.attrs.get(a.as_str()).map(|v| v.to_string()),
                    ("ENV", Some(a)) => env.get(a).cloned(),
                    _ => None,
                };
                let hit = actual.is_some_and(|v| glob(&t.value, &v));
                if t.op == "==" { hit } else { !hit }
            });
        if !matches {
            continue;
        }
        for t in rule.iter().filter(|t| t.op != "==" && t.op != "!=") {
            match t.key.as_str() {
                "SYMLINK" => out.symlinks.push(t.value.clone()),
                "GROUP" => out.group = Some(t.value.clone()),
                "TAG" => out.tags.push(t.value.clone()),
                "ENV" => {
                    let k = t.attr.clone().unwrap();
                    env.insert(k.clone(), t.value.clone());
                    out.env.insert(k, t.value.clone());
                }
                "GOTO" => skip_to = Some(t.value.clone()),
                _ => {}
            }
        }
    }
    out
}

fn rules() -> Vec<Vec<Term>> {
    let path: PathBuf = repo_root().join("udev/70-scenicpark.rules");
    std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(i, l)| parse_rule(l, &format!("{}:{}", path.display(), i + 1)))
        .collect()
}

#[test]
fn the_udev_rules_parse_and_udevadm_accepts_them_where_it_can() {
    let rules = rules();
    assert!(rules.len() >= 10, "{} rules", rules.len());
    // systemd ≥ 254 has a checker of its own.
    let verify = Command::new("udevadm").args(["verify", "--help"]).output();
    if verify.is_ok_and(|o| o.status.success()) {
        let (ok, out) = run(Command::new("udevadm")
            .arg("verify")
            .arg(repo_root().join("udev/70-scenicpark.rules")));
        assert!(ok, "udevadm verify:\n{out}");
    } else {
        eprintln!(
            "udevadm verify not available here: the rules were checked by this test's parser only"
        );
    }
}

fn tty(vendor: &'static str, product: &'static str, name: &'static str, id_path: &str) -> Device {
    Device {
        subsystem: "tty",
        kernel: "ttyUSB0",
        attrs: BTreeMap::from([
            ("idVendor", vendor),
            ("idProduct", product),
            ("product", name),
        ]),
        env: BTreeMap::from([("ID_PATH".to_owned(), id_path.to_owned())]),
    }
}

const PORT: &str = "platform-fd500000.pcie-pci-0000:01:00.0-usb-0:1.";

#[test]
fn each_udev_rule_names_the_device_it_is_written_for() {
    let rules = rules();
    let table: Vec<(&str, Device, Option<&str>, Option<&str>)> = vec![
        (
            "CH340 printer on port 1.1",
            tty("1a86", "7523", "USB Serial", &format!("{PORT}1:1.0")),
            Some("ticket-printer"),
            Some("dialout"),
        ),
        (
            "PL2303 printer",
            tty(
                "067b",
                "2303",
                "USB-Serial Controller",
                &format!("{PORT}3:1.0"),
            ),
            Some("ticket-printer"),
            Some("dialout"),
        ),
        (
            "CP2102 ID reader",
            tty(
                "10c4",
                "ea60",
                "CP2102 USB to UART",
                &format!("{PORT}4:1.0"),
            ),
            Some("id-reader"),
            Some("dialout"),
        ),
        (
            "FTDI ID reader",
            tty("0403", "6001", "ID Card Reader", &format!("{PORT}4:1.0")),
            Some("id-reader"),
            Some("dialout"),
        ),
        (
            "CH340 IC reader on port 1.2",
            tty("1a86", "7523", "USB Serial", &format!("{PORT}2:1.0")),
            Some("ic-reader"),
            Some("dialout"),
        ),
        (
            "FTDI RS-485 adapter",
            tty("0403", "6001", "USB-RS485 Cable", &format!("{PORT}3:1.0")),
            Some("gate-rs485"),
            Some("dialout"),
        ),
        (
            "CH340 on a port nobody planned",
            tty("1a86", "7523", "USB Serial", &format!("{PORT}4:1.0")),
            None,
            None,
        ),
        (
            "an unknown adapter",
            tty("abcd", "0001", "Gadget", &format!("{PORT}1:1.0")),
            None,
            None,
        ),
        (
            "the Pi's UART (RS-485 HAT)",
            Device {
                subsystem: "tty",
                kernel: "ttyAMA0",
                ..Device::default()
            },
            Some("gate-rs485"),
            Some("dialout"),
        ),
        (
            "a GPIO chip",
            Device {
                subsystem: "gpio",
                kernel: "gpiochip0",
                ..Device::default()
            },
            None,
            Some("gpio"),
        ),
    ];
    for (what, dev, link, group) in &table {
        let out = apply(&rules, dev);
        assert_eq!(
            out.symlinks.first().map(String::as_str),
            *link,
            "{what}: {out:?}"
        );
        assert!(out.symlinks.len() <= 1, "{what}: two names {out:?}");
        assert_eq!(out.group.as_deref(), *group, "{what}: {out:?}");
    }

    // A Honeywell scanner is gated's and never types into the kiosk app.
    let scanner = Device {
        subsystem: "input",
        kernel: "event3",
        attrs: BTreeMap::from([("idVendor", "0c2e"), ("idProduct", "0b61")]),
        env: BTreeMap::from([("ID_INPUT_KEYBOARD".to_owned(), "1".to_owned())]),
    };
    let out = apply(&rules, &scanner);
    assert!(out.tags.contains(&"gated-scanner".to_owned()), "{out:?}");
    assert_eq!(
        out.env.get("LIBINPUT_IGNORE_DEVICE").map(String::as_str),
        Some("1")
    );
    assert_eq!(out.group.as_deref(), Some("input"));
    // A keyboard is neither.
    let keyboard = Device {
        attrs: BTreeMap::from([("idVendor", "046d"), ("idProduct", "c31c")]),
        ..scanner.clone()
    };
    assert_eq!(apply(&rules, &keyboard), Outcome::default());

    // A touchscreen's touches are left as the panel reports them: a blanket
    // 90° turn put every tap elsewhere on a panel whose axes match its mode
    // (the QEMU image's kiosk: its tap on "English" landed off the button).
    let touch = Device {
        subsystem: "input",
        kernel: "event5",
        env: BTreeMap::from([("ID_INPUT_TOUCHSCREEN".to_owned(), "1".to_owned())]),
        ..Device::default()
    };
    assert_eq!(apply(&rules, &touch), Outcome::default());
    let drm = Device {
        subsystem: "drm",
        kernel: "card0",
        ..Device::default()
    };
    assert_eq!(apply(&rules, &drm).tags, ["systemd"]);
    let connector = Device {
        subsystem: "drm",
        kernel: "card0-HDMI-A-1",
        ..Device::default()
    };
    assert!(apply(&rules, &connector).tags.is_empty());
}

#[test]
fn the_glob_matches_like_fnmatch() {
    assert!(glob("card[0-9]*", "card0"));
    assert!(!glob("card[0-9]*", "cardX"));
    assert!(glob("0c2e|05e0", "05e0"));
    assert!(glob("*usb-0:1.1:1.0", "pci-usb-0:1.1:1.0"));
    assert!(!glob("*usb-0:1.1:1.0", "pci-usb-0:1.1:1.0x"));
    assert!(glob("tty?", "tty1") && !glob("tty?", "tty10"));
}

/// (source in the repository, destination directory, mode) of every
/// `install` of files in a shell text; Yocto's path variables are mapped to
/// a usrmerged root, as Debian and the image have it.
fn installs(text: &str, source_prefix: &str, dest_prefix: &str) -> Vec<(String, String, String)> {
    let vars = [
        ("${systemd_system_unitdir}", "/usr/lib/systemd/system"),
        ("${sysconfdir}", "/etc"),
        ("${nonarch_base_libdir}", "/usr/lib"),
        ("${nonarch_libdir}", "/usr/lib"),
        ("${mandir}", "/usr/share/man"),
        ("${datadir}", "/usr/share"),
    ];
    let mut out = Vec::new();
    // Continuation lines joined first.
    let joined = text.replace("\\\n", " ");
    for line in joined.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() != Some(&"install") || words.contains(&"-d") {
            continue;
        }
        let mut mode = String::new();
        let mut rest = Vec::new();
        let mut i = 1;
        while i < words.len() {
            match words[i] {
                "-m" => {
                    mode = words[i + 1].to_owned();
                    i += 2;
                }
                "-g" | "-o" => i += 2,
                w => {
                    rest.push(w.trim_matches('"'));
                    i += 1;
                }
            }
        }
        let Some((dest, sources)) = rest.split_last() else {
            continue;
        };
        let mut dest = dest
            .strip_prefix(dest_prefix)
            .unwrap_or(dest)
            .trim_end_matches('/')
            .to_owned();
        for (var, path) in vars {
            dest = dest.replace(var, path);
        }
        for s in sources {
            let s = s.strip_prefix(source_prefix).unwrap_or(s);
            out.push((s.to_owned(), dest.clone(), mode.clone()));
        }
    }
    out
}

/// The QEMU kiosk guest's host side reads the home screen for the scenic
/// area's name central-sim gives; the two must not drift apart.
#[test]
fn the_qemu_kiosk_check_looks_for_the_name_central_sim_gives() {
    let check = std::fs::read_to_string(repo_root().join("image/qemu/kiosk-check")).unwrap();
    let line = format!("SCENIC_AREA = \"{}\"", tests::central_sim::SCENIC_AREA);
    assert!(
        check.contains(&line),
        "image/qemu/kiosk-check lacks {line:?}"
    );
}

/// The QEMU test image installs every file the Yocto recipes install, at
/// the same place with the same mode: "exactly as the recipes do" is
/// checked, not trusted.
#[test]
fn the_qemu_image_installs_what_the_recipes_install() {
    let root = tests::repo_root();
    let qemu = std::fs::read_to_string(root.join("image/qemu/run")).unwrap();
    let guest = installs(&qemu, "", "$R");
    let recipes = root.join("yocto/meta-scenicpark/recipes-scenicpark");
    let mut checked = 0;
    for recipe in ["gated/gated_git.bb", "kiosk/kiosk_git.bb"] {
        let text = std::fs::read_to_string(recipes.join(recipe)).unwrap();
        for (src, dest, mode) in installs(&text, "$r/", "${D}") {
            checked += 1;
            if src == "image/etc/gated/gated.toml" {
                // The guest has no devices to drive: it installs its own
                // gated.toml at the same place with the same mode.
                assert!(
                    guest.contains(&(
                        "image/qemu/guest-gated.toml".into(),
                        "/etc/gated/gated.toml".into(),
                        mode.clone()
                    )),
                    "{guest:?}"
                );
                continue;
            }
            assert!(
                guest.contains(&(src.clone(), dest.clone(), mode.clone())),
                "{recipe} installs {src} into {dest} (mode {mode}); image/qemu/run does not: {guest:?}"
            );
        }
    }
    assert!(
        checked >= 10,
        "only {checked} installs found in the recipes"
    );
}
