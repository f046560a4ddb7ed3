//! Custom metrics from a drop directory: what a script can put there and what the agent
//! makes of it. Every bad input must be skipped with a warning naming the file, never
//! crash, hang, or blow the memory caps, and the good inputs beside it must still go.

mod common;

use cloudeye_agent::custom::{collect_custom, CustomStats, MAX_FILES, MAX_FILE_BYTES};
use cloudeye_agent::metric::Metric;
use std::path::Path;
use std::time::{Duration, SystemTime};

const NS: &str = "CUSTOM.HOST";
const MAX_AGE: Duration = Duration::from_secs(120);

fn collect(dir: &Path) -> (Vec<Metric>, CustomStats) {
    let mut out = Vec::new();
    let stats = collect_custom(dir, NS, MAX_AGE, SystemTime::now(), &mut out);
    (out, stats)
}

fn write(dir: &Path, name: &str, body: &str) {
    std::fs::write(dir.join(name), body).unwrap();
}

fn names(metrics: &[Metric]) -> Vec<String> {
    let mut v: Vec<String> = metrics.iter().map(|m| m.name.to_string()).collect();
    v.sort();
    v
}

#[test]
fn good_items_become_metrics_with_namespace_and_dims() {
    let dir = common::temp_dir("custom-good");
    write(
        &dir,
        "app.json",
        r#"[{"metric_name":"queue_depth","value":17,"unit":"count","dimensions":{"queue":"mail"}},
            {"metric_name":"latency-p99","value":0.25,"namespace":"APP.WEB"}]"#,
    );
    write(&dir, "b.json", r#"[{"metric_name":"b1","value":-3}]"#);
    let (out, stats) = collect(&dir);
    assert_eq!(stats.files_read, 2);
    assert_eq!(stats.metrics, 3);
    assert!(stats.warnings.is_empty(), "{:?}", stats.warnings);
    // Files are read in name order: app.json, then b.json.
    assert_eq!(out[0].name, "queue_depth");
    assert_eq!(out[0].value, 17.0);
    assert_eq!(out[0].unit, "count");
    assert_eq!(out[0].namespace.as_deref(), Some(NS));
    assert_eq!(out[0].dims.len(), 1);
    assert_eq!(
        (&*out[0].dims[0].name, &*out[0].dims[0].value),
        ("queue", "mail")
    );
    assert_eq!(out[1].name, "latency-p99");
    assert_eq!(out[1].unit, "");
    assert_eq!(out[1].namespace.as_deref(), Some("APP.WEB"));
    assert_eq!(out[2].name, "b1");
    assert_eq!(out[2].value, -3.0);
}

#[test]
fn garbage_files_are_skipped_and_good_ones_still_go() {
    let dir = common::temp_dir("custom-garbage");
    std::fs::write(dir.join("bin.json"), [0u8, 159, 146, 150, 255, 10]).unwrap();
    write(&dir, "obj.json", r#"{"metric_name":"x","value":1}"#);
    write(&dir, "trunc.json", r#"[{"metric_name":"x","val"#);
    write(&dir, "empty.json", "");
    write(&dir, "ok.json", r#"[{"metric_name":"fine","value":1}]"#);
    let (out, stats) = collect(&dir);
    assert_eq!(names(&out), ["fine"]);
    assert_eq!(stats.files_read, 1);
    assert_eq!(stats.files_skipped, 4);
    assert_eq!(stats.warnings.len(), 4);
    for f in ["bin.json", "obj.json", "trunc.json", "empty.json"] {
        let w = stats.warnings.iter().find(|w| w.contains(f)).unwrap();
        assert!(w.contains("skipped"), "{w}");
    }
    let obj = stats
        .warnings
        .iter()
        .find(|w| w.contains("obj.json"))
        .unwrap();
    assert!(obj.contains("must be a JSON array"), "{obj}");
    let trunc = stats
        .warnings
        .iter()
        .find(|w| w.contains("trunc.json"))
        .unwrap();
    assert!(trunc.contains("invalid JSON"), "{trunc}");
}

/// Write one file holding `item` and return the warning it produced (exactly one).
fn rejection(item: &str) -> String {
    let dir = common::temp_dir("custom-rule");
    write(&dir, "one.json", &format!("[{item}]"));
    let (out, stats) = collect(&dir);
    assert!(out.is_empty(), "{item} was accepted");
    assert_eq!(stats.items_skipped, 1, "{item}");
    assert_eq!(stats.warnings.len(), 1, "{item}: {:?}", stats.warnings);
    let w = stats.warnings[0].clone();
    assert!(
        w.contains("one.json") && w.contains("item 0 skipped"),
        "{w}"
    );
    w
}

#[test]
fn each_cloud_eye_rule_rejects_the_item_with_a_reason() {
    let long_name = "a".repeat(97);
    let long_dim = "d".repeat(33);
    let long_value = "v".repeat(257);
    let long_unit = "u".repeat(33);
    let cases: Vec<(String, &str)> = vec![
        (
            r#"{"metric_name":"1abc","value":1}"#.into(),
            "must start with a letter",
        ),
        (
            r#"{"metric_name":"a.b","value":1}"#.into(),
            "must start with a letter",
        ),
        (r#"{"metric_name":"","value":1}"#.into(), "1-96 characters"),
        (
            format!(r#"{{"metric_name":"{long_name}","value":1}}"#),
            "1-96",
        ),
        (r#"{"value":1}"#.into(), "\"metric_name\" is missing"),
        (r#"{"metric_name":7,"value":1}"#.into(), "must be a string"),
        (r#"{"metric_name":"m"}"#.into(), "\"value\" is missing"),
        (
            r#"{"metric_name":"m","value":"12"}"#.into(),
            "finite JSON number",
        ),
        (
            r#"{"metric_name":"m","value":null}"#.into(),
            "finite JSON number",
        ),
        (
            r#"{"metric_name":"m","value":true}"#.into(),
            "finite JSON number",
        ),
        (
            r#"{"metric_name":"m","value":1,"dimensions":{"a":"1","b":"2","c":"3","d":"4"}}"#
                .into(),
            "4 dimensions: at most 3",
        ),
        (
            r#"{"metric_name":"m","value":1,"dimensions":{"9x":"1"}}"#.into(),
            "dimension name \"9x\"",
        ),
        (
            format!(r#"{{"metric_name":"m","value":1,"dimensions":{{"{long_dim}":"1"}}}}"#),
            "1-32 characters",
        ),
        (
            r#"{"metric_name":"m","value":1,"dimensions":{"a":""}}"#.into(),
            "1-256 characters",
        ),
        (
            format!(r#"{{"metric_name":"m","value":1,"dimensions":{{"a":"{long_value}"}}}}"#),
            "1-256 characters",
        ),
        (
            r#"{"metric_name":"m","value":1,"dimensions":{"a":5}}"#.into(),
            "string value",
        ),
        (
            r#"{"metric_name":"m","value":1,"dimensions":{"instance_id":"i-9"}}"#.into(),
            "reserved",
        ),
        (
            r#"{"metric_name":"m","value":1,"dimensions":[{"name":"a","value":"b"}]}"#.into(),
            "must be an object",
        ),
        (
            format!(r#"{{"metric_name":"m","value":1,"unit":"{long_unit}"}}"#),
            "longer than 32",
        ),
        (
            r#"{"metric_name":"m","value":1,"namespace":"SYS.ECS"}"#.into(),
            "reserved",
        ),
        (
            r#"{"metric_name":"m","value":1,"namespace":"nodot"}"#.into(),
            "SERVICE.ITEM",
        ),
        (
            r#"{"metric_name":"m","value":1,"dimension":{"a":"b"}}"#.into(),
            "unknown key \"dimension\"",
        ),
        ("42".into(), "must be a JSON object"),
    ];
    for (item, reason) in &cases {
        let w = rejection(item);
        assert!(w.contains(reason), "{item}: expected {reason:?} in {w}");
    }
}

#[test]
fn limits_themselves_are_accepted() {
    let dir = common::temp_dir("custom-limits");
    let item = format!(
        r#"[{{"metric_name":"{}","value":1e308,"unit":"{}","dimensions":{{"{}":"{}","b":"x","c":"y"}}}}]"#,
        "a".repeat(96),
        "u".repeat(32),
        "d".repeat(32),
        "v".repeat(256)
    );
    write(&dir, "edge.json", &item);
    let (out, stats) = collect(&dir);
    assert!(stats.warnings.is_empty(), "{:?}", stats.warnings);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].dims.len(), 3);
    assert_eq!(out[0].value, 1e308);
}

#[test]
fn bad_items_are_skipped_one_by_one_and_warnings_are_capped() {
    let dir = common::temp_dir("custom-mixed");
    // 2 good items around 8 bad ones: 5 warnings for the first bad items, 1 summary.
    let mut items = vec![r#"{"metric_name":"good1","value":1}"#.to_string()];
    for _ in 0..8 {
        items.push(r#"{"metric_name":"1bad","value":1}"#.to_string());
    }
    items.push(r#"{"metric_name":"good2","value":2}"#.to_string());
    write(&dir, "mixed.json", &format!("[{}]", items.join(",")));
    let (out, stats) = collect(&dir);
    assert_eq!(names(&out), ["good1", "good2"]);
    assert_eq!(stats.items_skipped, 8);
    assert_eq!(stats.warnings.len(), 6, "{:?}", stats.warnings);
    assert!(
        stats.warnings[5].contains("3 more bad items"),
        "{}",
        stats.warnings[5]
    );
}

#[test]
fn non_finite_values_never_get_through() {
    let dir = common::temp_dir("custom-inf");
    // serde_json refuses 1e999 ("number out of range") rather than making it inf, so the
    // whole file is invalid JSON; NaN and Infinity are not JSON at all.
    write(&dir, "inf.json", r#"[{"metric_name":"a","value":1e999}]"#);
    write(
        &dir,
        "neginf.json",
        r#"[{"metric_name":"a","value":-1e999}]"#,
    );
    write(&dir, "nan.json", r#"[{"metric_name":"a","value":NaN}]"#);
    write(
        &dir,
        "infinity.json",
        r#"[{"metric_name":"a","value":Infinity}]"#,
    );
    write(
        &dir,
        "ok.json",
        r#"[{"metric_name":"tiny","value":1e-320}]"#,
    );
    let (out, stats) = collect(&dir);
    assert_eq!(names(&out), ["tiny"]);
    assert!(out.iter().all(|m| m.value.is_finite()));
    assert_eq!(stats.files_skipped, 4);
    let inf = stats
        .warnings
        .iter()
        .find(|w| w.contains("/inf.json"))
        .unwrap();
    assert!(inf.contains("invalid JSON"), "{inf}");
}

#[test]
fn huge_files_are_refused_without_reading_them_whole() {
    let dir = common::temp_dir("custom-huge");
    // 200 KiB of a valid-looking array: over the 64 KiB cap.
    let big = format!(
        "[{}]",
        vec![r#"{"metric_name":"x","value":1}"#; 7000].join(",")
    );
    assert!(big.len() as u64 > MAX_FILE_BYTES);
    write(&dir, "big.json", &big);
    // A sparse 8 GiB file: metadata says huge, reading it whole would be fatal.
    let sparse = std::fs::File::create(dir.join("sparse.json")).unwrap();
    sparse.set_len(8 << 30).unwrap();
    // Exactly at the cap is fine: a 1-item array padded with spaces to 65536 bytes.
    let item = r#"[{"metric_name":"edge","value":1}]"#;
    let padded = format!("{item}{}", " ".repeat(MAX_FILE_BYTES as usize - item.len()));
    write(&dir, "edge.json", &padded);
    let (out, stats) = collect(&dir);
    assert_eq!(names(&out), ["edge"]);
    assert_eq!(stats.files_skipped, 2);
    for f in ["big.json", "sparse.json"] {
        let w = stats.warnings.iter().find(|w| w.contains(f)).unwrap();
        assert!(w.contains("larger than 65536 bytes"), "{w}");
    }
}

#[test]
fn directory_budget_caps_bytes_per_cycle() {
    let dir = common::temp_dir("custom-budget");
    // 20 files of 60,000 bytes: 17 * 60,000 = 1,020,000 <= 1,048,576 (1 MiB) but
    // 18 * 60,000 = 1,080,000 > 1 MiB, so files 18..20 are over budget.
    for i in 0..20 {
        let item = format!(r#"[{{"metric_name":"m{i:02}","value":{i}}}]"#);
        let body = format!("{item}{}", " ".repeat(60_000 - item.len()));
        write(&dir, &format!("f{i:02}.json"), &body);
    }
    let (out, stats) = collect(&dir);
    assert_eq!(stats.files_read, 17);
    assert_eq!(stats.files_skipped, 3);
    assert_eq!(out.len(), 17);
    assert_eq!(out[16].name, "m16");
    assert!(stats.warnings[0].contains("f17.json") && stats.warnings[0].contains("budget"));
}

#[test]
fn file_count_is_capped() {
    let dir = common::temp_dir("custom-count");
    // 300 files: 256 read, 300 - 256 = 44 ignored with one warning.
    for i in 0..300 {
        write(
            &dir,
            &format!("f{i:03}.json"),
            r#"[{"metric_name":"m","value":1}]"#,
        );
    }
    let (out, stats) = collect(&dir);
    assert_eq!(stats.files_read, MAX_FILES);
    assert_eq!(out.len(), 256);
    assert_eq!(stats.files_skipped, 44);
    assert_eq!(stats.warnings.len(), 1);
    assert!(
        stats.warnings[0].contains("44 ignored"),
        "{}",
        stats.warnings[0]
    );
}

#[test]
fn metric_count_is_capped() {
    let dir = common::temp_dir("custom-metric-cap");
    // 5 files of 1000 items (about 31 KB each): 4096 taken, 5000 - 4096 = 904 skipped.
    let body = format!(
        "[{}]",
        vec![r#"{"metric_name":"m","value":1}"#; 1000].join(",")
    );
    for i in 0..5 {
        write(&dir, &format!("f{i}.json"), &body);
    }
    let (out, stats) = collect(&dir);
    assert_eq!(out.len(), 4096);
    assert_eq!(stats.items_skipped, 904);
    assert!(stats.warnings.iter().any(|w| w.contains("at most 4096")));
}

fn set_mtime(path: &Path, secs_ago: i64) {
    let now = SystemTime::now();
    let t = if secs_ago >= 0 {
        now - Duration::from_secs(secs_ago as u64)
    } else {
        now + Duration::from_secs(secs_ago.unsigned_abs())
    };
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(t).unwrap();
}

#[test]
fn stale_files_are_ignored() {
    let dir = common::temp_dir("custom-stale");
    write(&dir, "old.json", r#"[{"metric_name":"old","value":1}]"#);
    write(
        &dir,
        "recent.json",
        r#"[{"metric_name":"recent","value":1}]"#,
    );
    write(
        &dir,
        "future.json",
        r#"[{"metric_name":"future","value":1}]"#,
    );
    set_mtime(&dir.join("old.json"), 3 * 3600); // 3 h old, max age 120 s
    set_mtime(&dir.join("recent.json"), 60); // 60 s old: fresh
    set_mtime(&dir.join("future.json"), -600); // clock skew: not stale
    let (out, stats) = collect(&dir);
    assert_eq!(names(&out), ["future", "recent"]);
    assert_eq!(stats.files_stale, 1);
    assert!(
        stats.warnings.is_empty(),
        "stale is not a warning: {:?}",
        stats.warnings
    );
    // Seen from 10 minutes later, recent.json (then 660 s old) is stale too.
    let mut out = Vec::new();
    let later = SystemTime::now() + Duration::from_secs(600);
    let stats = collect_custom(&dir, NS, MAX_AGE, later, &mut out);
    assert_eq!(names(&out), ["future"]);
    assert_eq!(stats.files_stale, 2);
}

#[test]
fn only_visible_json_files_are_read() {
    let dir = common::temp_dir("custom-names");
    let body = r#"[{"metric_name":"m","value":1}]"#;
    for name in [
        "a.txt",
        "a.json.tmp",
        ".hidden.json",
        "json",
        "a.JSON",
        "a.json~",
    ] {
        write(&dir, name, body);
    }
    std::fs::create_dir(dir.join("sub")).unwrap();
    write(&dir.join("sub"), "nested.json", body);
    let (out, stats) = collect(&dir);
    assert!(out.is_empty());
    assert_eq!(stats, CustomStats::default());
}

#[test]
fn unreadable_and_special_files_are_skipped_without_hanging() {
    let dir = common::temp_dir("custom-special");
    std::os::unix::fs::symlink(dir.join("nowhere"), dir.join("dangling.json")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.join("zero.json")).unwrap();
    std::fs::create_dir(dir.join("dir.json")).unwrap();
    // Opening a FIFO for reading blocks until a writer comes, unless O_NONBLOCK.
    nix::unistd::mkfifo(
        &dir.join("fifo.json"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    write(&dir, "ok.json", r#"[{"metric_name":"ok","value":1}]"#);
    let (out, stats) = collect(&dir);
    assert_eq!(names(&out), ["ok"]);
    assert_eq!(stats.files_skipped, 4);
    let find = |f: &str| {
        stats
            .warnings
            .iter()
            .find(|w| w.contains(f))
            .unwrap()
            .clone()
    };
    assert!(find("dangling.json").contains("cannot open"));
    assert!(find("zero.json").contains("not a regular file"));
    assert!(find("dir.json").contains("not a regular file"));
    assert!(find("fifo.json").contains("not a regular file"));
}

#[test]
fn permission_denied_is_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { nix::libc::geteuid() } == 0 {
        // root reads mode-000 files; nothing to test here.
        return;
    }
    let dir = common::temp_dir("custom-perm");
    write(&dir, "secret.json", r#"[{"metric_name":"m","value":1}]"#);
    let path = dir.join("secret.json");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
    let (out, stats) = collect(&dir);
    assert!(out.is_empty());
    assert!(
        stats.warnings[0].contains("Permission denied"),
        "{:?}",
        stats.warnings
    );
}

#[test]
fn missing_directory_is_one_warning() {
    let dir = common::temp_dir("custom-missing").join("absent");
    let (out, stats) = collect(&dir);
    assert!(out.is_empty());
    assert_eq!(stats.warnings.len(), 1);
    assert!(
        stats.warnings[0].contains("cannot read"),
        "{}",
        stats.warnings[0]
    );
}

/// A writer replaces the file over and over, sometimes atomically (write temp, rename),
/// sometimes in place in two halves. Every read must give either a whole version or a
/// skipped file, never a mix or a partial list.
#[test]
fn file_replaced_while_being_read_never_gives_garbage() {
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let dir = common::temp_dir("custom-race");
    let item = |v: u32| format!(r#"{{"metric_name":"m","value":{v},"unit":"count"}}"#);
    let version = |v: u32| format!("[{}]", vec![item(v); 50].join(",\n"));
    let (a, b) = (version(1), version(2));
    write(&dir, "r.json", &a);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (dir, stop) = (dir.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let body = if n % 2 == 0 { &a } else { &b };
                if n % 4 < 2 {
                    let tmp = dir.join(".r.json.tmp");
                    std::fs::write(&tmp, body).unwrap();
                    std::fs::rename(&tmp, dir.join("r.json")).unwrap();
                } else {
                    let mut f = std::fs::File::create(dir.join("r.json")).unwrap();
                    let (h1, h2) = body.as_bytes().split_at(body.len() / 2);
                    f.write_all(h1).unwrap();
                    std::thread::yield_now();
                    f.write_all(h2).unwrap();
                }
                n += 1;
            }
        })
    };
    let (mut whole, mut skipped) = (0, 0);
    for _ in 0..400 {
        let (out, stats) = collect(&dir);
        if out.is_empty() {
            assert_eq!(stats.files_skipped, 1, "{:?}", stats);
            skipped += 1;
        } else {
            assert_eq!(out.len(), 50, "a partial list got through");
            let v = out[0].value;
            assert!(v == 1.0 || v == 2.0);
            assert!(out.iter().all(|m| m.value == v), "two versions mixed");
            whole += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    eprintln!("race: {whole} whole, {skipped} skipped");
    assert!(whole > 0, "never read a whole version ({skipped} skipped)");
}
