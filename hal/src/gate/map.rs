//! Modbus register maps: what each register of a gate controller means, as
//! data. A new vendor's controller is a TOML file, not a release.

use std::path::Path;

use serde::Deserialize;

/// The default map: LOT Group's published turnstile controller.
pub const LOT_TURNSTILE: &str = include_str!("../../maps/lot-turnstile.toml");
/// An example of a coil-pulse controller.
pub const COIL_GATE: &str = include_str!("../../maps/coil-gate.toml");

/// Which Modbus table a point lives in; decides the function codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Table {
    /// Holding registers: read FC03, write FC16.
    Holding,
    /// Input registers: read FC04, read-only.
    Input,
    /// Coils: read FC01, write FC05.
    Coil,
    /// Discrete inputs: read FC02, read-only.
    Discrete,
}

/// How a value is laid out in registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    #[default]
    U16,
    /// Two registers, low word at the lower address.
    U32LowFirst,
    /// Two registers, high word at the lower address.
    U32HighFirst,
}

impl Format {
    pub fn registers(self) -> u16 {
        match self {
            Format::U16 => 1,
            Format::U32LowFirst | Format::U32HighFirst => 2,
        }
    }

    /// Bits of the counter, for wrap-safe deltas.
    pub fn bits(self) -> u32 {
        match self {
            Format::U16 => 16,
            _ => 32,
        }
    }

    pub fn decode(self, words: &[u16]) -> u32 {
        match self {
            Format::U16 => words[0] as u32,
            Format::U32LowFirst => (words[1] as u32) << 16 | words[0] as u32,
            Format::U32HighFirst => (words[0] as u32) << 16 | words[1] as u32,
        }
    }
}

/// One value in the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Point {
    pub table: Table,
    pub address: u16,
    #[serde(default)]
    pub format: Format,
}

/// How passages are authorised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Permission {
    /// Write the number of passages (a register); `free` opens for good.
    Count { closed: u16, free: u16, max: u16 },
    /// Write 1 to a coil for one passage.
    Pulse,
}

/// What an active alarm point means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlarmKind {
    Tailgating,
    Intrusion,
    Reverse,
}

impl AlarmKind {
    /// As the serde form and the D-Bus answers spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmKind::Tailgating => "tailgating",
            AlarmKind::Intrusion => "intrusion",
            AlarmKind::Reverse => "reverse",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmPoint {
    pub table: Table,
    pub address: u16,
    pub kind: AlarmKind,
}

/// How the gate's mode is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeControl {
    Register {
        point: Point,
        normal: u16,
        locked: u16,
        free: u16,
    },
    Coils {
        free: Point,
        locked: Point,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModeRegister {
    table: Table,
    address: u16,
    normal: u16,
    locked: u16,
    free: u16,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MapFile {
    name: String,
    entry_permission: Point,
    exit_permission: Point,
    permission: Permission,
    entry_counter: Point,
    exit_counter: Point,
    entry_occupied: Option<Point>,
    exit_occupied: Option<Point>,
    error: Option<Point>,
    alarm: Option<AlarmPoint>,
    fire: Option<Point>,
    mode: Option<ModeRegister>,
    free_coil: Option<Point>,
    locked_coil: Option<Point>,
}

/// A validated register map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterMap {
    pub name: String,
    pub entry_permission: Point,
    pub exit_permission: Point,
    pub permission: Permission,
    pub entry_counter: Point,
    pub exit_counter: Point,
    pub entry_occupied: Option<Point>,
    pub exit_occupied: Option<Point>,
    pub error: Option<Point>,
    pub alarm: Option<AlarmPoint>,
    pub fire: Option<Point>,
    pub mode: Option<ModeControl>,
}

impl RegisterMap {
    /// The built-in maps by name (`lot`, `coil-example`), else a TOML file.
    pub fn load(name_or_path: &str) -> Result<Self, String> {
        match name_or_path {
            "lot" => Self::parse(LOT_TURNSTILE),
            "coil-example" => Self::parse(COIL_GATE),
            path => {
                let text = std::fs::read_to_string(Path::new(path))
                    .map_err(|e| format!("register map {path}: {e}"))?;
                Self::parse(&text).map_err(|e| format!("register map {path}: {e}"))
            }
        }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let f: MapFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let writable = |p: &Point, what: &str| match p.table {
            Table::Holding | Table::Coil => Ok(()),
            _ => Err(format!(
                "{what} must be a holding register or a coil (it is written)"
            )),
        };
        writable(&f.entry_permission, "entry_permission")?;
        writable(&f.exit_permission, "exit_permission")?;
        match (f.permission, f.entry_permission.table) {
            (Permission::Pulse, Table::Coil) | (Permission::Count { .. }, Table::Holding) => {}
            _ => {
                return Err(
                    "permission kind \"pulse\" needs coils, \"count\" holding registers".into(),
                );
            }
        }
        for (p, what) in [
            (&f.entry_counter, "entry_counter"),
            (&f.exit_counter, "exit_counter"),
        ] {
            if matches!(p.table, Table::Coil | Table::Discrete) {
                return Err(format!("{what} must be a register"));
            }
        }
        let mode = match (f.mode, f.free_coil, f.locked_coil) {
            (Some(m), None, None) => Some(ModeControl::Register {
                point: Point {
                    table: m.table,
                    address: m.address,
                    format: Format::U16,
                },
                normal: m.normal,
                locked: m.locked,
                free: m.free,
            }),
            (None, Some(free), Some(locked)) => Some(ModeControl::Coils { free, locked }),
            (None, None, None) => None,
            _ => return Err("give either [mode] or both [free_coil] and [locked_coil]".into()),
        };
        Ok(RegisterMap {
            name: f.name,
            entry_permission: f.entry_permission,
            exit_permission: f.exit_permission,
            permission: f.permission,
            entry_counter: f.entry_counter,
            exit_counter: f.exit_counter,
            entry_occupied: f.entry_occupied,
            exit_occupied: f.exit_occupied,
            error: f.error,
            alarm: f.alarm,
            fire: f.fire,
            mode,
        })
    }

    /// Most passages one authorisation can grant.
    pub fn max_group(&self) -> u16 {
        match self.permission {
            Permission::Count { max, .. } => max,
            Permission::Pulse => 1,
        }
    }
}

/// `new - old` for a counter of `bits` bits that may have wrapped.
pub fn counter_delta(old: u32, new: u32, bits: u32) -> u32 {
    let diff = new.wrapping_sub(old);
    if bits >= 32 {
        diff
    } else {
        diff & ((1u32 << bits) - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_maps_load() {
        let lot = RegisterMap::load("lot").unwrap();
        assert_eq!(
            lot.entry_permission,
            Point {
                table: Table::Holding,
                address: 0x40,
                format: Format::U16
            }
        );
        assert_eq!(lot.entry_counter.format, Format::U32LowFirst);
        assert_eq!(lot.max_group(), 0xFFFE);
        assert!(matches!(
            lot.mode,
            Some(ModeControl::Register { free: 2, .. })
        ));
        let coil = RegisterMap::load("coil-example").unwrap();
        assert_eq!(coil.permission, Permission::Pulse);
        assert_eq!(coil.max_group(), 1);
        assert_eq!(coil.alarm.unwrap().kind, AlarmKind::Intrusion);
        assert!(coil.fire.is_some());
    }

    #[test]
    fn u32_word_orders() {
        assert_eq!(Format::U32LowFirst.decode(&[0x0001, 0x0002]), 0x0002_0001);
        assert_eq!(Format::U32HighFirst.decode(&[0x0001, 0x0002]), 0x0001_0002);
    }

    #[test]
    fn counter_deltas_survive_wrap() {
        assert_eq!(counter_delta(0xFFFF_FFFE, 1, 32), 3);
        assert_eq!(counter_delta(0xFFFE, 0x0001, 16), 3);
        assert_eq!(counter_delta(5, 5, 16), 0);
    }

    #[test]
    fn bad_maps_are_refused_with_reasons() {
        let bad = LOT_TURNSTILE.replace(
            "[entry_permission]\ntable = \"holding\"",
            "[entry_permission]\ntable = \"input\"",
        );
        assert!(
            RegisterMap::parse(&bad)
                .unwrap_err()
                .contains("entry_permission must be a holding register")
        );
        let bad = COIL_GATE.replace(
            "kind = \"pulse\"",
            "kind = \"count\"\nclosed = 0\nfree = 1\nmax = 1",
        );
        assert!(
            RegisterMap::parse(&bad)
                .unwrap_err()
                .contains("needs coils")
        );
        let bad = LOT_TURNSTILE.replace("address = 0x3000", "address = 0x3000\nspeed = 2");
        assert!(
            RegisterMap::parse(&bad)
                .unwrap_err()
                .contains("unknown field `speed`")
        );
    }
}
