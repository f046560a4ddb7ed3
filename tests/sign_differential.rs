//! Differential test: 1200 deterministic pseudo-random requests signed by our signer and
//! by the official Python SDK's `Signer` (huaweicloudsdkcore, pinned in
//! tests/requirements.txt) must give identical Authorization headers.
//!
//! CLOUDEYE_SDK_PYTHON must name a Python with that package (the Makefile's venv);
//! without it the test fails, because CI always sets it. All requests go to one Python
//! process as JSON lines (tests/sign_diff.py).

use cloudeye_agent::sign::{self, Options, Request};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

const COUNT: usize = 1200;

/// splitmix64: small, deterministic, good enough to spread test cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// Pieces for paths and query strings: ASCII, unicode, spaces, reserved characters and
/// percent sequences (valid, invalid, and ones that decode to invalid UTF-8).
const ATOMS: &[&str] = &[
    "a",
    "Z",
    "0",
    "metric-data",
    "V1.0",
    "_",
    ".",
    "~",
    "-",
    " ",
    "  ",
    "ü",
    "一",
    "€",
    "😀",
    "!",
    "*",
    "'",
    "(",
    ")",
    ";",
    ":",
    "@",
    "&",
    "=",
    "+",
    "$",
    ",",
    "?",
    "#",
    "[",
    "]",
    "\"",
    "<",
    ">",
    "{",
    "}",
    "|",
    "\\",
    "^",
    "`",
    "%41",
    "%2F",
    "%20",
    "%zz",
    "%",
    "%4",
    "%C3%BC",
    "%FF",
    "%E4%B8",
    "é",
    "\u{7f}",
    "\t",
];

fn atoms(rng: &mut Rng, max: usize) -> String {
    (0..rng.below(max + 1)).map(|_| rng.pick(ATOMS)).collect()
}

fn path(rng: &mut Rng) -> String {
    let mut p = String::new();
    for _ in 0..1 + rng.below(4) {
        p.push('/');
        p += &atoms(rng, 3);
    }
    if rng.chance(20) {
        p.push('/');
    }
    p
}

fn query(rng: &mut Rng) -> Vec<(String, String)> {
    let mut q: Vec<(String, String)> = Vec::new();
    for _ in 0..rng.below(5) {
        let key = if !q.is_empty() && rng.chance(25) {
            q[rng.below(q.len())].0.clone() // repeated key
        } else {
            atoms(rng, 3)
        };
        let value = if rng.chance(15) {
            String::new()
        } else {
            atoms(rng, 3)
        };
        q.push((key, value));
    }
    q
}

const HEADER_NAMES: &[&str] = &[
    "X-Project-Id",
    "X-Security-Token",
    "x-custom",
    "Accept",
    "X_Underscore",
    "TEST_UNDERSCORE",
    "X-Domain-Id",
    "user-agent",
    "X-Trace",
    "content-length-ish",
];
const HEADER_VALUES: &[&str] = &[
    "v",
    " padded ",
    "a b  c",
    "0123456789abcdef",
    "text/plain; charset=utf-8",
    "x=1;y=2",
    "tab\tinside",
    "",
    "UPPER",
    "!#$%&'*+-.^_`|~",
];
const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/json;charset=UTF-8",
    "application/bson",
    "text/plain",
    "application/octet-stream",
    "multipart/form-data",
];

fn sdk_date(rng: &mut Rng) -> String {
    // Any second between 2001 and 2033.
    sign::sdk_date((1_000_000_000 + rng.below(1_000_000_000) as i64) * 1000)
}

fn headers(rng: &mut Rng) -> Vec<(String, String)> {
    let mut h = vec![("X-Sdk-Date".to_string(), sdk_date(rng))];
    let mut names: Vec<&str> = HEADER_NAMES.to_vec();
    for _ in 0..rng.below(5) {
        let name = names.remove(rng.below(names.len()));
        h.push((name.to_string(), rng.pick(HEADER_VALUES).to_string()));
    }
    if rng.chance(50) {
        // The SDK looks up exactly "Content-Type".
        h.push((
            "Content-Type".to_string(),
            rng.pick(CONTENT_TYPES).to_string(),
        ));
    }
    if rng.chance(10) {
        h.push(("Host".to_string(), "override.example.com".to_string()));
    }
    h
}

fn body(rng: &mut Rng) -> Vec<u8> {
    match rng.below(4) {
        0 => Vec::new(),
        1 => {
            br#"[{"metric":{"namespace":"AGT.ECS","metric_name":"cpu_usage"},"value":1}]"#.to_vec()
        }
        2 => atoms(rng, 20).into_bytes(),
        _ => (0..rng.below(300)).map(|_| rng.next() as u8).collect(),
    }
}

struct Case {
    method: String,
    host: String,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    ak: String,
    sk: String,
}

fn case(rng: &mut Rng, i: usize) -> Case {
    Case {
        method: rng
            .pick(&["GET", "POST", "PUT", "DELETE", "PATCH", "post", "get"])
            .to_string(),
        host: rng
            .pick(&[
                "ces.cn-north-4.myhuaweicloud.com",
                "127.0.0.1:8080",
                "example.com",
                "h",
            ])
            .to_string(),
        path: path(rng),
        query: query(rng),
        headers: headers(rng),
        body: body(rng),
        ak: format!("AK{i:05}"),
        sk: rng
            .pick(&["SecretKey", "sk with space", "ü-secret", "0"])
            .to_string(),
    }
}

fn ours(c: &Case) -> String {
    let req = Request {
        method: &c.method,
        host: Some(&c.host),
        path: &c.path,
        query: &c.query,
        headers: &c.headers,
        body: &c.body,
    };
    // The Python SDK signs Content-Type (only names with '_' are left out).
    sign::sign(
        &req,
        "unused",
        &c.ak,
        &c.sk,
        Options {
            sign_content_type: true,
        },
    )
    .authorization
}

fn spec(c: &Case) -> Value {
    let headers: serde_json::Map<String, Value> = c
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({
        "method": c.method, "host": c.host, "path": c.path,
        "query": c.query.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
        "headers": headers, "body_hex": sign::hex(&c.body), "ak": c.ak, "sk": c.sk,
    })
}

fn pinned_version() -> String {
    let req = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/requirements.txt"
    ))
    .unwrap();
    req.lines()
        .find_map(|l| l.trim().strip_prefix("huaweicloudsdkcore=="))
        .expect("huaweicloudsdkcore pin in tests/requirements.txt")
        .trim()
        .to_string()
}

#[test]
fn signer_matches_official_python_sdk() {
    let python = std::env::var("CLOUDEYE_SDK_PYTHON").unwrap_or_default();
    assert!(
        !python.is_empty(),
        "CLOUDEYE_SDK_PYTHON is not set: it must name a Python with huaweicloudsdkcore installed \
         (make venv creates target/venv; then CLOUDEYE_SDK_PYTHON=$PWD/target/venv/bin/python)"
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sign_diff.py");
    let mut child = Command::new(&python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run CLOUDEYE_SDK_PYTHON={python}: {e}"));

    let mut rng = Rng(0x5EED_CE5A_9E47);
    let cases: Vec<Case> = (0..COUNT).map(|i| case(&mut rng, i)).collect();
    let input: String = cases.iter().map(|c| spec(c).to_string() + "\n").collect();
    let mut stdin = child.stdin.take().unwrap();
    // Write from a thread: the replies fill the stdout pipe while we are still writing.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));

    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: Value =
        serde_json::from_str(&lines.next().expect("SDK helper said nothing").unwrap()).unwrap();
    let version = first["sdk_version"].as_str().unwrap_or("?").to_string();
    println!("differential signing against huaweicloudsdkcore {version}: {COUNT} requests");

    let mut mismatches = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("SDK helper stopped after {i} replies"))
            .unwrap();
        let reply: Value = serde_json::from_str(&line).unwrap();
        let theirs = match reply["authorization"].as_str() {
            Some(a) => a.to_string(),
            None => panic!("SDK failed on case {i} ({}): {}", spec(c), reply["error"]),
        };
        if theirs != ours(c) {
            mismatches.push(format!(
                "case {i}: {}\n  sdk:  {theirs}\n  ours: {}",
                spec(c),
                ours(c)
            ));
        }
    }
    writer.join().unwrap().unwrap();
    let _ = child.wait();
    assert!(
        mismatches.is_empty(),
        "{} of {COUNT} differ (SDK {version}):\n{}",
        mismatches.len(),
        mismatches
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(
        version,
        pinned_version(),
        "the SDK in CLOUDEYE_SDK_PYTHON is not the pinned one"
    );
}
