//! NUT's network protocol (upsd, TCP 3493, one request per line): polls
//! `ups.status`, `battery.charge` and `battery.runtime`. Source: the NUT
//! developer guide, "Network protocol information".

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::PowerState;
use crate::Device;
use crate::supervise::spawn_supervised;

pub const DEFAULT_PORT: u16 = 3493;

/// `HOST:PORT[/UPSNAME]` (UPS name defaults to `ups`, port to 3493).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NutTarget {
    pub host: String,
    pub port: u16,
    pub ups: String,
}

impl std::str::FromStr for NutTarget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (hostport, ups) = s.split_once('/').unwrap_or((s, "ups"));
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse()
                    .map_err(|_| format!("`{p}` is not a port in `{s}`"))?,
            ),
            None => (hostport, DEFAULT_PORT),
        };
        if host.is_empty() || ups.is_empty() {
            return Err(format!("`{s}` is not HOST:PORT[/UPSNAME]"));
        }
        Ok(NutTarget {
            host: host.to_owned(),
            port,
            ups: ups.to_owned(),
        })
    }
}

/// One answer line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Var {
        ups: String,
        var: String,
        value: String,
    },
    Err(String),
    Other(String),
}

/// Parses `VAR <ups> <var> "<value>"` (with `\"` and `\\` escapes) or `ERR <code>`.
pub fn parse_line(line: &str) -> Answer {
    let line = line.trim_end();
    if let Some(code) = line.strip_prefix("ERR ") {
        return Answer::Err(code.trim().to_owned());
    }
    let Some(rest) = line.strip_prefix("VAR ") else {
        return Answer::Other(line.to_owned());
    };
    let mut parts = rest.splitn(3, ' ');
    let (Some(ups), Some(var), Some(quoted)) = (parts.next(), parts.next(), parts.next()) else {
        return Answer::Other(line.to_owned());
    };
    let Some(inner) = quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"')) else {
        return Answer::Other(line.to_owned());
    };
    let mut value = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                value.push(n);
            }
        } else {
            value.push(c);
        }
    }
    Answer::Var {
        ups: ups.to_owned(),
        var: var.to_owned(),
        value,
    }
}

/// `ups.status` tokens (OL, OB, LB, FSD, …) with charge and runtime → state.
pub fn state_from(status: &str, charge: Option<f64>, runtime: Option<u64>) -> PowerState {
    let has = |t: &str| status.split_whitespace().any(|x| x == t);
    if has("FSD") {
        PowerState::ForcedShutdown
    } else if has("LB") {
        PowerState::BatteryLow {
            percent: charge,
            seconds_left: runtime,
        }
    } else if has("OB") {
        PowerState::OnBattery {
            percent: charge,
            seconds_left: runtime,
        }
    } else {
        PowerState::OnMains
    }
}

struct Session {
    lines: tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
    write: tokio::net::tcp::OwnedWriteHalf,
    target: NutTarget,
    timeout: Duration,
}

impl Session {
    async fn get(&mut self, var: &str) -> Result<Option<String>, String> {
        let req = format!("GET VAR {} {var}\n", self.target.ups);
        self.write
            .write_all(req.as_bytes())
            .await
            .map_err(|e| format!("write failed: {e}"))?;
        let line = tokio::time::timeout(self.timeout, self.lines.next_line())
            .await
            .map_err(|_| format!("no answer within {} ms", self.timeout.as_millis()))?
            .map_err(|e| format!("read failed: {e}"))?
            .ok_or("upsd closed the connection")?;
        match parse_line(&line) {
            Answer::Var { var: v, value, .. } if v == var => Ok(Some(value)),
            // An optional variable this UPS does not have.
            Answer::Err(code) if code == "VAR-NOT-SUPPORTED" => Ok(None),
            Answer::Err(code) => Err(format!(
                "upsd refused GET VAR {} {var}: ERR {code}",
                self.target.ups
            )),
            other => Err(format!("unexpected answer from upsd: {other:?}")),
        }
    }

    async fn read_state(&mut self) -> Result<PowerState, String> {
        let status = self
            .get("ups.status")
            .await?
            .ok_or("upsd has no ups.status")?;
        let charge = self
            .get("battery.charge")
            .await?
            .and_then(|v| v.parse().ok());
        let runtime = self
            .get("battery.runtime")
            .await?
            .and_then(|v| v.parse::<f64>().ok())
            .map(|v| v as u64);
        Ok(state_from(&status, charge, runtime))
    }
}

/// Polls a UPS through upsd every `poll`; sends the state at start and on change.
pub fn spawn(target: NutTarget, poll: Duration) -> Device<PowerState> {
    let name = format!("nut {}:{}/{}", target.host, target.port, target.ups);
    spawn_supervised(name.clone(), 16, move |connected, tx| {
        let (target, name) = (target.clone(), name.clone());
        async move {
            // Each connection sends the state it finds first: after an
            // outage the subscriber learns where things stand.
            let mut last: Option<PowerState> = None;
            let stream = TcpStream::connect((target.host.as_str(), target.port))
                .await
                .map_err(|e| format!("{name}: cannot connect: {e}"))?;
            let (read, write) = stream.into_split();
            let mut s = Session {
                lines: BufReader::new(read).lines(),
                write,
                target,
                timeout: Duration::from_secs(2),
            };
            let mut tick = tokio::time::interval(poll);
            loop {
                tick.tick().await;
                let state = s.read_state().await.map_err(|e| format!("{name}: {e}"))?;
                connected.up();
                if last.as_ref() != Some(&state) {
                    last = Some(state.clone());
                    if tx.send(state).await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn var_lines_parse_with_escapes() {
        assert_eq!(
            parse_line("VAR ups ups.status \"OB LB\"\n"),
            Answer::Var {
                ups: "ups".into(),
                var: "ups.status".into(),
                value: "OB LB".into()
            }
        );
        assert_eq!(
            parse_line(r#"VAR ups ups.model "Smart \"1500\" \\ X""#),
            Answer::Var {
                ups: "ups".into(),
                var: "ups.model".into(),
                value: r#"Smart "1500" \ X"#.into()
            }
        );
        assert_eq!(
            parse_line("ERR DATA-STALE"),
            Answer::Err("DATA-STALE".into())
        );
        assert!(matches!(parse_line("VAR ups x unquoted"), Answer::Other(_)));
    }

    #[test]
    fn status_tokens_decide_the_state() {
        assert_eq!(
            state_from("OL CHRG", Some(100.0), None),
            PowerState::OnMains
        );
        assert_eq!(
            state_from("OB DISCHRG", Some(57.0), Some(610)),
            PowerState::OnBattery {
                percent: Some(57.0),
                seconds_left: Some(610)
            }
        );
        assert_eq!(
            state_from("OB LB", Some(9.0), None),
            PowerState::BatteryLow {
                percent: Some(9.0),
                seconds_left: None
            }
        );
        assert_eq!(
            state_from("OB LB FSD", None, None),
            PowerState::ForcedShutdown
        );
    }

    #[test]
    fn targets_parse() {
        assert_eq!(
            "127.0.0.1:13493/eaton".parse::<NutTarget>(),
            Ok(NutTarget {
                host: "127.0.0.1".into(),
                port: 13493,
                ups: "eaton".into()
            })
        );
        assert_eq!("nas".parse::<NutTarget>().unwrap().port, 3493);
        assert!("nas:x".parse::<NutTarget>().is_err());
    }
}
