//! TCP socket counts by state from /proc/net/tcp and /proc/net/tcp6, and the
//! retransmission ratio from the `Tcp:` lines of /proc/net/snmp.
//!
//! The socket tables are streamed line by line through the reader's fixed window: a busy
//! host has hundreds of thousands of sockets and memory must not grow with them.

use super::text::{fields, lines, parse_u64};
use super::{delta, reader::Reader, Settings};
use crate::error::{Error, Result};
use crate::metric::Metric;
use serde::{Deserialize, Serialize};

/// Metric names by kernel state number (include/net/tcp_states.h); index 0 is unused.
/// `sys_sent`/`sys_recv` are Cloud Eye's spellings of SYN_SENT/SYN_RECV.
const STATE_METRICS: [&str; 12] = [
    "",
    "net_tcp_established",
    "net_tcp_sys_sent",
    "net_tcp_sys_recv",
    "net_tcp_fin_wait1",
    "net_tcp_fin_wait2",
    "net_tcp_time_wait",
    "net_tcp_close",
    "net_tcp_close_wait",
    "net_tcp_last_ack",
    "net_tcp_listen",
    "net_tcp_closing",
];

/// Socket counts; `by_state[n]` counts hex state `n` (1..=11), `total` every socket line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TcpStates {
    pub by_state: [u64; 12],
    pub total: u64,
}

impl TcpStates {
    /// Count one line of /proc/net/tcp{,6}; the header and malformed lines are ignored.
    pub fn add_line(&mut self, line: &[u8]) {
        let Some(state) = socket_state(line) else {
            return;
        };
        self.total += 1;
        if let Some(slot) = self.by_state.get_mut(state).filter(|_| state > 0) {
            *slot += 1;
        }
    }
}

/// The state of a socket line: `<decimal>:`, the local and remote addresses, then the
/// state in one or two hex digits. Called for every socket of a busy host: lines in the
/// kernel's fixed layout take [`kernel_layout_state`], others a plain field scan.
fn socket_state(line: &[u8]) -> Option<usize> {
    let mut pos = 0;
    let sl = next_field(line, &mut pos)?;
    let (digits, colon) = sl.split_at(sl.len() - 1);
    if colon != b":" || parse_u64(digits).is_none() {
        return None;
    }
    if let Some(st) = kernel_layout_state(&line[pos..]) {
        return parse_hex_state(st);
    }
    next_field(line, &mut pos)?; // local address
    next_field(line, &mut pos)?; // remote address
    parse_hex_state(next_field(line, &mut pos)?)
}

/// The state field when `rest` (what follows `sl:`) has the kernel's layout: one space,
/// two addresses of 13 (IPv4) or 37 (IPv6) bytes separated by one space, one space, two
/// state bytes, then the end or whitespace. Checked so that the answer is the field the
/// plain scan would find; `None` sends the line to that scan.
fn kernel_layout_state(rest: &[u8]) -> Option<&[u8]> {
    let len = match (rest.get(14), rest.get(38)) {
        (Some(b' '), _) => 13,
        (_, Some(b' ')) => 37,
        _ => return None,
    };
    let local = rest.get(1..1 + len)?;
    let remote = rest.get(2 + len..2 + 2 * len)?;
    let state = rest.get(3 + 2 * len..5 + 2 * len)?;
    let spaced = rest[0] == b' ' && rest[1 + len] == b' ' && rest[2 + 2 * len] == b' ';
    let ends = rest.get(5 + 2 * len).map_or(true, u8::is_ascii_whitespace);
    (spaced && ends && no_space_or_control(local) && no_space_or_control(remote))
        .then_some(state)
        .filter(|st| no_space_or_control(st))
}

/// True when no byte of `b` is at or below `b' '` (so none is whitespace), eight bytes
/// at a time: `x - 0x21…21` sets a byte's top bit where that byte is below 0x21, and
/// `!x` clears it for bytes of 0x80 and up. A borrow can only flag a byte above one that
/// is already flagged, so "any flagged" is exact.
fn no_space_or_control(b: &[u8]) -> bool {
    const ONES: u64 = 0x2121_2121_2121_2121;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut words = b.chunks_exact(8);
    let words_ok = words.all(|w| {
        let x = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        x.wrapping_sub(ONES) & !x & HIGH == 0
    });
    words_ok && words.remainder().iter().all(|&c| c > b' ')
}

/// The next non-empty whitespace-separated field of `line` from `*pos`, moving `*pos`
/// past it.
fn next_field<'l>(line: &'l [u8], pos: &mut usize) -> Option<&'l [u8]> {
    let mut i = *pos;
    while line.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    let start = i;
    while line.get(i).is_some_and(|b| !b.is_ascii_whitespace()) {
        i += 1;
    }
    *pos = i;
    (i > start).then(|| &line[start..i])
}

fn parse_hex_state(field: &[u8]) -> Option<usize> {
    if field.is_empty() || field.len() > 2 {
        return None;
    }
    field.iter().try_fold(0usize, |v, &b| {
        let d = (b as char).to_digit(16)?;
        Some(v * 16 + d as usize)
    })
}

/// Count a whole /proc/net/tcp (or tcp6) already in memory; for tests and fuzzing, the
/// agent streams it with [`TcpStates::add_line`]. Errors when no line is a socket line
/// and the input is not just the header.
pub fn parse_tcp(bytes: &[u8]) -> Result<TcpStates> {
    let mut t = TcpStates::default();
    let mut other = 0usize;
    for line in lines(bytes) {
        let before = t.total;
        t.add_line(line);
        if t.total == before
            && !line.trim_ascii().is_empty()
            && !line.trim_ascii_start().starts_with(b"sl")
        {
            other += 1;
        }
    }
    if t.total == 0 && other > 0 {
        return Err(Error::other("net/tcp: no socket lines"));
    }
    Ok(t)
}

/// The two /proc/net/snmp Tcp counters the retransmission ratio needs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SnmpTcp {
    pub out_segs: u64,
    pub retrans_segs: u64,
}

/// Parse /proc/net/snmp: the first `Tcp:` line names the columns, the next one holds the
/// values; columns are found by name, so added columns do not matter.
pub fn parse_snmp(bytes: &[u8]) -> Result<SnmpTcp> {
    let mut tcp_lines = lines(bytes).filter(|l| l.starts_with(b"Tcp:"));
    let (Some(header), Some(values)) = (tcp_lines.next(), tcp_lines.next()) else {
        return Err(Error::other("snmp: no Tcp header and values lines"));
    };
    let (mut out, mut retrans) = (None, None);
    for (name, value) in fields(header).zip(fields(values)).skip(1) {
        match name {
            b"OutSegs" => out = parse_u64(value),
            b"RetransSegs" => retrans = parse_u64(value),
            _ => {}
        }
    }
    match (out, retrans) {
        (Some(out_segs), Some(retrans_segs)) => Ok(SnmpTcp {
            out_segs,
            retrans_segs,
        }),
        _ => Err(Error::other("snmp: Tcp OutSegs or RetransSegs missing")),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TcpSample {
    /// `None` when neither tcp nor tcp6 could be read.
    pub states: Option<TcpStates>,
    /// `None` when /proc/net/snmp could not be read or parsed.
    pub snmp: Option<SnmpTcp>,
}

pub fn read(r: &mut Reader, s: &Settings) -> Option<TcpSample> {
    let mut states = TcpStates::default();
    let mut any_table = false;
    for table in ["net/tcp", "net/tcp6"] {
        let path = s.proc_root.join(table);
        match r.for_each_line(&path, |line| states.add_line(line)) {
            Ok(()) => any_table = true,
            Err(e) => log::debug!("cannot read {}: {e}", path.display()),
        }
    }
    let path = s.proc_root.join("net/snmp");
    let snmp = r
        .read_cached_or_log(&path)
        .and_then(|b| match parse_snmp(b) {
            Ok(x) => Some(x),
            Err(e) => {
                log::debug!("{}: {e}", path.display());
                None
            }
        });
    let states = any_table.then_some(states);
    (states.is_some() || snmp.is_some()).then_some(TcpSample { states, snmp })
}

pub fn gauges(s: &TcpSample, out: &mut Vec<Metric>) {
    let Some(t) = &s.states else { return };
    out.push(Metric::new("net_tcp_total", "Count", t.total as f64));
    for (name, &count) in STATE_METRICS.iter().zip(&t.by_state).skip(1) {
        out.push(Metric::new(name, "Count", count as f64));
    }
}

/// `net_tcp_retrans` = 100·ΔRetransSegs/ΔOutSegs over the interval, clamped to 100.
pub fn rates(a: &TcpSample, b: &TcpSample, out: &mut Vec<Metric>) {
    let (Some(x), Some(y)) = (&a.snmp, &b.snmp) else {
        return;
    };
    let (Some(d_out), Some(d_retrans)) = (
        delta(x.out_segs, y.out_segs),
        delta(x.retrans_segs, y.retrans_segs),
    ) else {
        log::debug!("snmp Tcp counters went backwards: new baseline");
        return;
    };
    let value = match (d_out, d_retrans) {
        (0, 0) => 0.0,
        // Linux's OutSegs excludes retransmissions: only retransmissions were sent.
        (0, _) => 100.0,
        _ => (100.0 * d_retrans as f64 / d_out as f64).min(100.0),
    };
    out.push(Metric::new("net_tcp_retrans", "%", value));
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &[u8] = b"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 640 1 000000009cf49544 100 0 0 10 0\n\
   1: 020200C0:D456 507100CB:01BB 01 00000000:00000000 00:00000000 00000000     0        0 11255 1 000000000 22 4 1 25 146\n\
   2: 020200C0:D458 507100CB:01BB 06 00000000:00000000 00:00000000 00000000     0        0 0 1\n\
  10: 020200C0:D459 507100CB:01BB 0C 0\n";

    #[test]
    fn counts_states() {
        let t = parse_tcp(TCP).unwrap();
        // listen (0A), established (01), time_wait (06), and NEW_SYN_RECV (0C, unnamed).
        assert_eq!(t.total, 4);
        assert_eq!((t.by_state[1], t.by_state[6], t.by_state[10]), (1, 1, 1));
        let mut out = Vec::new();
        gauges(
            &TcpSample {
                states: Some(t),
                snmp: None,
            },
            &mut out,
        );
        assert_eq!(out.len(), 12);
        assert_eq!(out[0].name, "net_tcp_total");
        assert_eq!(out[10].name, "net_tcp_listen");
        assert_eq!(out[10].value, 1.0);
    }

    #[test]
    fn tcp_garbage() {
        assert_eq!(parse_tcp(b"").unwrap().total, 0);
        assert!(parse_tcp(b"garbage\nmore garbage").is_err());
        for input in [
            &b"   0: a b ZZ"[..],
            b"x: a b 01",
            b"0 a b 01",
            b"   0: a b 123",
            b"\xff: a b 01",
            b":",
        ] {
            assert_eq!(
                parse_tcp(input).map(|t| t.total).unwrap_or(0),
                0,
                "{input:?}"
            );
        }
        // Hex states in either case; a field of other hex-looking text is not a state.
        assert_eq!(parse_hex_state(b"0a"), Some(10));
        assert_eq!(parse_hex_state(b"0B"), Some(11));
        assert_eq!(parse_hex_state(b"+1"), None);
        assert_eq!(parse_hex_state(b""), None);
        // Tabs and runs of spaces separate fields like single spaces.
        assert_eq!(parse_tcp(b"\t7:\ta  b\t\t06").unwrap().by_state[6], 1);
        // The kernel layout with a tab, NUL or DEL inside an address: the same answer as
        // the plain field scan (a tab splits the field, so "0A" is no longer the state).
        let v4 = b"   0: 00000000:07E8 00000000:0000 0A 00000000";
        for (at, byte, total) in [(8, b'\t', 0), (30, 0u8, 1), (30, 0x7f, 1), (30, 0xff, 1)] {
            let mut line = v4.to_vec();
            line[at] = byte;
            assert_eq!(parse_tcp(&line).map(|t| t.total).unwrap_or(0), total);
        }
        assert!(no_space_or_control(b"0123456789ABCDEF:xyz\x7f\x80\xff"));
        for bad in [
            &b"01234567 9"[..],
            b"\x000000000",
            b"0000000\x01",
            b"00000000\r",
        ] {
            assert!(!no_space_or_control(bad), "{bad:?}");
        }
        let v6 = b"   1: 0000000000000000FFFF00000F02000A:0400 0000000000000000FFFF00000100000A:01BB 08 0";
        assert_eq!(parse_tcp(v6).unwrap().by_state[8], 1);
        // Truncated mid-line after the state: still a socket.
        assert_eq!(
            parse_tcp(b"   0: 00000000:07E8 00000000:0000 0A 0000")
                .unwrap()
                .total,
            1
        );
    }

    /// The state as the plain field scan finds it, to check the fixed-layout shortcut.
    fn reference_state(line: &[u8]) -> Option<usize> {
        let mut f = fields(line);
        let (sl, _, _, st) = (f.next()?, f.next()?, f.next()?, f.next()?);
        if sl.last() != Some(&b':') || parse_u64(&sl[..sl.len() - 1]).is_none() {
            return None;
        }
        parse_hex_state(st)
    }

    #[test]
    fn fixed_layout_shortcut_agrees_with_field_scan() {
        let v4 = &b"   0: 00000000:07E8 00000000:0000 0A 00000000:00000000"[..];
        let v6 = &b"  12: 0000000000000000FFFF00000F02000A:0400 0000000000000000FFFF00000100000A:01BB 01 0"[..];
        let bytes = [b' ', b'\t', b'\r', 0, 0x0b, 0x0c, b'x', b':', 0xff];
        let mut checked = 0;
        for line in [v4, v6] {
            for at in 0..line.len() {
                for b in bytes {
                    let mut l = line.to_vec();
                    l[at] = b;
                    assert_eq!(socket_state(&l), reference_state(&l), "{l:?}");
                    l.insert(at, b);
                    assert_eq!(socket_state(&l), reference_state(&l), "{l:?}");
                    checked += 2;
                }
                let cut = &line[..at];
                assert_eq!(socket_state(cut), reference_state(cut), "{cut:?}");
            }
        }
        assert!(checked > 1000);
    }

    const SNMP: &[u8] = b"Ip: Forwarding DefaultTTL\nIp: 1 64\n\
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors\n\
Tcp: 1 200 120000 -1 23 2 2 4 2 7795 4474 1 0 17 0\n";

    #[test]
    fn snmp_by_name() {
        assert_eq!(
            parse_snmp(SNMP).unwrap(),
            SnmpTcp {
                out_segs: 4474,
                retrans_segs: 1
            }
        );
        assert!(parse_snmp(b"").is_err());
        assert!(parse_snmp(b"Tcp: OutSegs RetransSegs\n").is_err());
        assert!(parse_snmp(b"Tcp: OutSegs RetransSegs\nTcp: 1").is_err());
        assert!(parse_snmp(b"Tcp: OutSegs RetransSegs\nTcp: x 1").is_err());
        assert!(parse_snmp(b"Tcp: OutSegs RetransSegs\nTcp: 5 1").is_ok());
    }

    fn snmp(out_segs: u64, retrans_segs: u64) -> TcpSample {
        TcpSample {
            states: None,
            snmp: Some(SnmpTcp {
                out_segs,
                retrans_segs,
            }),
        }
    }

    #[test]
    fn retrans_ratio() {
        let mut out = Vec::new();
        rates(&snmp(1000, 10), &snmp(3000, 30), &mut out); // 100·20/2000 = 1 %
        rates(&snmp(1000, 10), &snmp(1000, 10), &mut out); // idle → 0
        rates(&snmp(1000, 10), &snmp(500, 10), &mut out); // reset → nothing
        let v: Vec<f64> = out.iter().map(|m| m.value).collect();
        assert_eq!(v, vec![1.0, 0.0]);
    }
}
