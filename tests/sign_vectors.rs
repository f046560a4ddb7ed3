//! Every published SDK-HMAC-SHA256 vector (huawei-cloud-api.md §1.5), reproduced by
//! `cloudeye_agent::sign`. AK `AccessKey` / SK `SecretKey` unless stated.

use cloudeye_agent::sign::{self, Options, Request};

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn auth(sig: &str, signed: &str) -> String {
    format!("SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders={signed}, Signature={sig}")
}

struct Case<'a> {
    method: &'a str,
    host: Option<&'a str>,
    path: &'a str,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: &'a [u8],
}

impl Case<'_> {
    fn sign(&self, ak: &str, sk: &str, opts: Options) -> sign::Signed {
        let req = Request {
            method: self.method,
            host: self.host,
            path: self.path,
            query: &self.query,
            headers: &self.headers,
            body: self.body,
        };
        // The date argument is ignored: every vector carries its own X-Sdk-Date header.
        sign::sign(&req, "19700101T000000Z", ak, sk, opts)
    }
}

const GO_DATE: &str = "20060102T150405Z";
const JAVA_DATE: &str = "20191115T033655Z";
const JAVA_HOST: &str = "service.region.example.com";
const VPC_PATH: &str = "/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs";
const VPC_POST: &str = "/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpc/123";

fn go(method: &str, query: (&str, &str), extra: &[(&str, &str)], body: &'static [u8]) -> String {
    let mut headers = h(&[("X-Sdk-Date", GO_DATE), ("TEST_UNDERSCORE", "TEST_VALUE")]);
    headers.extend(h(extra));
    let case = Case {
        method,
        host: None, // the Go SDK signs without a host header
        path: "/path",
        query: h(&[query]),
        headers,
        body,
    };
    case.sign("AccessKey", "SecretKey", Options::default())
        .authorization
}

#[test]
fn g1_go_get() {
    assert_eq!(
        go("GET", ("limit", "1"), &[], b""),
        auth(
            "5a2ce64c865e0e6046321c6f3d5a77ba8413eeaf355c3166c03d58d02ac79624",
            "x-sdk-date"
        )
    );
}

#[test]
fn g2_go_post_json_with_trailing_newline() {
    // Go's json.Encoder appends "\n"; Content-Type is present but not signed.
    assert_eq!(
        go(
            "POST",
            ("key", "value"),
            &[("Content-Type", "application/json")],
            b"{\"Name\":\"test\",\"Id\":1}\n"
        ),
        auth(
            "cecc2af119b18ab70b4d094c0750f3b42c02f254903179a0fc2cc72fc9db4f59",
            "x-sdk-date"
        )
    );
}

#[test]
fn g1_intermediates() {
    let case = Case {
        method: "GET",
        host: None,
        path: "/path",
        query: h(&[("limit", "1")]),
        headers: h(&[("X-Sdk-Date", GO_DATE), ("TEST_UNDERSCORE", "TEST_VALUE")]),
        body: b"",
    };
    let s = case.sign("AccessKey", "SecretKey", Options::default());
    assert_eq!(
        s.canonical_request,
        format!(
            "GET\n/path/\nlimit=1\nx-sdk-date:{GO_DATE}\n\nx-sdk-date\n{}",
            sign::EMPTY_BODY_HASH
        )
    );
    assert_eq!(
        s.string_to_sign,
        format!("SDK-HMAC-SHA256\n{GO_DATE}\n85c3b7730f308aee452b16138a42a914397e43a8f0d732dfa521c0ef2afa98a4")
    );
}

fn py(method: &str, body: &'static [u8]) -> sign::Signed {
    Case {
        method,
        host: Some("service.endpoint.myhuaweicloud.com"),
        path: "/resources",
        query: h(&[("size", "1")]),
        headers: h(&[
            ("X-Sdk-Date", "20200608T023900Z"),
            ("TEST_UNDERSCORE", "TEST_VALUE"),
        ]),
        body,
    }
    .sign("AccessKey", "SecretKey", Options::default())
}

#[test]
fn p1_python_get() {
    let s = py("GET", b"");
    assert_eq!(
        s.authorization,
        auth(
            "cfb4171acec81de07d50e53d57eb77edd537414d66ddb1d7d780f128e12cd842",
            "host;x-sdk-date"
        )
    );
    // The signer added the Host header the request must carry.
    assert!(s
        .added_headers
        .contains(&("Host".into(), "service.endpoint.myhuaweicloud.com".into())));
}

#[test]
fn p2_python_post() {
    let s = py("POST", b"{\"name\":\"test\",\"id\":1}");
    assert_eq!(
        s.authorization,
        auth(
            "436b1ac0a1ae03705934bb70ef2f2e09f7bfed2117d731a38235053199323a1f",
            "host;x-sdk-date"
        )
    );
    assert_eq!(
        s.canonical_request,
        "POST\n/resources/\nsize=1\nhost:service.endpoint.myhuaweicloud.com\nx-sdk-date:20200608T023900Z\n\nhost;x-sdk-date\n8ed555081b9961769014bc1182c629bb0fe68d7b01c1fc1caab4dc791f377e8c"
    );
}

fn java(
    method: &str,
    host: &str,
    path: &str,
    query: &[(&str, &str)],
    extra: &[(&str, &str)],
    body: &'static [u8],
) -> sign::Signed {
    let mut headers = h(&[
        ("X-Sdk-Date", JAVA_DATE),
        ("Content-Type", "application/json"),
        ("TEST_UNDERSCORE", "TEST_VALUE"),
    ]);
    headers.extend(h(extra));
    Case {
        method,
        host: Some(host),
        path,
        query: h(query),
        headers,
        body,
    }
    .sign("AccessKey", "SecretKey", Options::default())
}

const J1_QUERY: &[(&str, &str)] = &[
    ("limit", "2"),
    ("marker", "13551d6b-755d-4757-b956-536f674975c0"),
];

#[test]
fn j1_java_get() {
    let s = java("GET", JAVA_HOST, VPC_PATH, J1_QUERY, &[], b"");
    assert_eq!(
        s.authorization,
        auth(
            "fd95e7da6f695cfb4cabbb9d6b0968aec155bc576b064835282473539ae9ea1d",
            "host;x-sdk-date"
        )
    );
    assert!(s
        .string_to_sign
        .ends_with("\n0e84e7853cf87931d965c80e83bffb15aa865326db3a6f57aa2560a7601dfe18"));
}

#[test]
fn j2_java_post() {
    let s = java(
        "POST",
        JAVA_HOST,
        VPC_POST,
        &[],
        &[],
        b"{\"key\":\"value\"}",
    );
    assert_eq!(
        s.authorization,
        auth(
            "b5649aa774f6cac7437631662f08815fc65c70e40e486df6db2436ce68902771",
            "host;x-sdk-date"
        )
    );
    assert_eq!(
        s.canonical_request,
        format!("POST\n{VPC_POST}/\n\nhost:{JAVA_HOST}\nx-sdk-date:{JAVA_DATE}\n\nhost;x-sdk-date\ne43abcf3375244839c012f9633f95862d232a95b00d5bc7348b3098b9fed7f32")
    );
    assert!(s
        .string_to_sign
        .ends_with("\n79be7a43859f485df125c417ebb8821754c7ed42f6742ce8b0fd74b2b303446d"));
}

#[test]
fn j3_java_explicit_host_empty_path() {
    let s = java("GET", JAVA_HOST, "", &[], &[("Host", "example.com")], b"");
    assert_eq!(
        s.authorization,
        auth(
            "919ad8b75d4ad49da0d377e63ee21c4a7a54b752f6bf2878b4adbe9c19927da6",
            "host;x-sdk-date"
        )
    );
    assert!(s
        .canonical_request
        .starts_with("GET\n/\n\nhost:example.com\n"));
    assert!(s.added_headers.iter().all(|(k, _)| k != "Host"));
}

const JD_HOST: &str = "service.test-region-1.myhuaweicloud.com";

#[test]
fn jd_basic1_and_basic2() {
    let s = java("GET", JD_HOST, VPC_PATH, &[], &[], b"");
    assert_eq!(
        s.authorization,
        auth(
            "fbfa53d70fa0dec48f511be2e9e522172f9dca6d56f8856d12d7e575b978d9be",
            "host;x-sdk-date"
        )
    );
    let s = java("POST", JD_HOST, VPC_POST, &[], &[], b"{\"key\":\"value\"}");
    assert_eq!(
        s.authorization,
        auth(
            "f65c535f8f86d95e963fbd795d6d41dbf59e675a8b4ae161356cf8cd93f1ec4c",
            "host;x-sdk-date"
        )
    );
}

fn j_old() -> sign::Signed {
    Case {
        method: "GET",
        host: Some(JAVA_HOST),
        path: VPC_PATH,
        query: h(J1_QUERY),
        headers: h(&[
            ("Content-Type", "application/json"),
            ("X-Sdk-Date", JAVA_DATE),
        ]),
        body: b"",
    }
    .sign(
        "QTWAOYTTINDUT2QVKYUC",
        "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc",
        Options {
            sign_content_type: true,
        },
    )
}

#[test]
fn j_old_documentation_example_signs_content_type() {
    let s = j_old();
    assert_eq!(
        s.authorization,
        "SDK-HMAC-SHA256 Access=QTWAOYTTINDUT2QVKYUC, SignedHeaders=content-type;host;x-sdk-date, Signature=7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe"
    );
    assert_eq!(
        s.canonical_request,
        format!("GET\n{VPC_PATH}/\nlimit=2&marker=13551d6b-755d-4757-b956-536f674975c0\ncontent-type:application/json\nhost:{JAVA_HOST}\nx-sdk-date:{JAVA_DATE}\n\ncontent-type;host;x-sdk-date\n{}", sign::EMPTY_BODY_HASH)
    );
}

#[test]
fn documentation_string_to_sign_hash() {
    // The doc shows "SDK-HMAC-SHA256 20191115T033655Z b25362e6…" (lines joined by spaces).
    assert_eq!(
        j_old().string_to_sign,
        "SDK-HMAC-SHA256\n20191115T033655Z\nb25362e603ee30f4f25e7858e8a7160fd36e803bb2dfe206278659d71a9bcd7a"
    );
}

#[test]
fn canonical_query_string_vector() {
    // GO TestSigner_canonicalQueryString / PY test_process_canonical_query_string, input
    // deliberately unsorted; the multi list becomes three pairs.
    let q = h(&[
        ("limit", "1"),
        ("test", "一 (&=?!#%.*)"),
        ("multi", "3"),
        ("enable", "true"),
        ("path", "/tmp/123"),
        ("multi", "1"),
        ("multi", "2"),
    ]);
    assert_eq!(
        sign::canonical_query(&q),
        "enable=true&limit=1&multi=1&multi=2&multi=3&path=%2Ftmp%2F123&test=%E4%B8%80%20%28%26%3D%3F%21%23%25.%2A%29"
    );
}

#[test]
fn security_token_and_project_id_are_signed() {
    let case = Case {
        method: "POST",
        host: Some("ces.cn-north-4.myhuaweicloud.com"),
        path: "/V1.0/pid/metric-data",
        query: vec![],
        headers: h(&[
            ("Content-Type", "application/json"),
            ("X-Project-Id", "pid"),
            ("X-Security-Token", "tok"),
        ]),
        body: b"[]",
    };
    let s = case.sign("AK", "SK", Options::default());
    assert_eq!(
        s.signed_headers,
        "host;x-project-id;x-sdk-date;x-security-token"
    );
    assert!(s
        .canonical_request
        .starts_with("POST\n/V1.0/pid/metric-data/\n\n"));
}
