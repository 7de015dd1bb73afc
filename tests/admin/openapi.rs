//! `GET /v1/openapi.json` (SPEC §11): the description is OpenAPI 3.1 and
//! valid by the specification's own schema (tests/data/openapi), every
//! `$ref` in it resolves, it describes exactly the routes src/admin/
//! serves (read from the source, not from a list kept here), and real
//! answers fit the schemas it gives for them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::*;

const OAS_SCHEMA: &str = include_str!("../data/openapi/oas-3.1-schema-2022-10-07.json");
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn document(s: &Server) -> Value {
    get_json(&format!("{}/v1/openapi.json", s.admin_url()))
}

/// Every `(path, method)` the document describes.
fn described(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS.iter().filter(|m| item.get(**m).is_some()) {
            out.insert((path.clone(), m.to_string()));
        }
    }
    out
}

/// Every `"$ref"` in `v`, with where it is.
fn refs(v: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("$ref", Value::String(r)) => out.push((at.to_string(), r.clone())),
                    _ => refs(x, &format!("{at}/{k}"), out),
                }
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                refs(x, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn errors(validator: &jsonschema::Validator, v: &Value) -> Vec<String> {
    validator
        .iter_errors(v)
        .map(|e| format!("at {}: {e}", e.instance_path()))
        .collect()
}

#[test]
fn the_document_is_valid_openapi_3_1_and_every_ref_resolves() {
    let s = start("openapi-valid", &static_config(""));
    let doc = document(&s);
    let version = doc["openapi"].as_str().expect("openapi");
    assert!(version.starts_with("3.1"), "openapi = {version:?}");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(doc["info"]["title"].is_string() && doc["info"]["description"].is_string());

    // the specification's schema: the document's structure
    let oas: Value = serde_json::from_str(OAS_SCHEMA).unwrap();
    let validator = jsonschema::validator_for(&oas).expect("the OpenAPI 3.1 schema compiles");
    let bad = errors(&validator, &doc);
    assert!(bad.is_empty(), "not valid OpenAPI 3.1:\n{}", bad.join("\n"));
    // (the schema does judge: a document without its info, or with an
    // operation's responses a list, is not valid)
    let mut broken = doc.clone();
    broken.as_object_mut().unwrap().remove("info");
    assert!(!validator.is_valid(&broken));
    let mut broken = doc.clone();
    broken["paths"]["/v1/status"]["get"]["responses"] = serde_json::json!([]);
    assert!(!validator.is_valid(&broken));
    // ... which takes Schema Objects as they come: each is JSON Schema 2020-12
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    assert!(schemas.len() > 20, "{}", schemas.len());
    for (name, schema) in schemas {
        if let Err(e) = jsonschema::draft202012::meta::validate(schema) {
            panic!("components/schemas/{name} is not JSON Schema 2020-12: {e}\n{schema:#}");
        }
    }

    // every reference points into the document, at something
    let mut all = Vec::new();
    refs(&doc, "#", &mut all);
    assert!(all.len() > 50, "{} refs", all.len());
    for (at, r) in &all {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{at}: $ref {r:?} leaves the document"));
        assert!(
            doc.pointer(pointer).is_some(),
            "{at}: $ref {r:?} resolves to nothing"
        );
    }

    // a generated client names each call by its operationId
    let mut ids = BTreeSet::new();
    for (path, m) in described(&doc) {
        let op = &doc["paths"][&path][&m];
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{m} {path}"));
        assert!(ids.insert(id.to_string()), "operationId {id} twice");
        assert!(
            op["tags"].as_array().is_some_and(|t| !t.is_empty()),
            "{m} {path}: no tag"
        );
        assert!(op["responses"]["200"].is_object(), "{m} {path}: no 200");
    }
}

/// The Rust files of src/admin/, with comments taken out.
fn admin_sources() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        for e in std::fs::read_dir(dir).expect("src/admin readable") {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                let code: Vec<&str> = text
                    .lines()
                    .map(|l| match l.find("//") {
                        Some(i) if !l[..i].contains('"') => &l[..i],
                        _ => l,
                    })
                    .collect();
                out.push((p, code.join("\n")));
            }
        }
    }
    let mut out = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/admin"),
        &mut out,
    );
    out
}

/// Every `(path, method)` src/admin/ serves: each handler registered with
/// `routes!(...)`, at the method and path of its `#[utoipa::path(...)]`.
/// Anything that would serve a path around `routes!` fails here.
fn served() -> BTreeSet<(String, String)> {
    let sources = admin_sources();
    for (file, code) in &sources {
        for bypass in [
            ".route(",
            ".route_service(",
            ".nest(",
            ".nest_service(",
            ".merge(",
            ".fallback_service(",
        ] {
            assert!(
                !code.contains(bypass),
                "{}: `{bypass}` serves a path without describing it; register the handler \
                 with .routes(routes!(..)) in admin::api",
                file.display()
            );
        }
    }
    let mut out = BTreeSet::new();
    let mut registered = 0;
    for (_, code) in &sources {
        for (i, _) in code.match_indices("routes!(") {
            let list = &code[i + "routes!(".len()..];
            let list = &list[..list.find(')').expect("routes!( closed")];
            for handler in list.split(',').map(str::trim).filter(|h| !h.is_empty()) {
                let name = handler.rsplit("::").next().unwrap();
                out.insert(route_of(&sources, name));
                registered += 1;
            }
        }
    }
    assert_eq!(registered, out.len(), "a handler registered twice");
    assert!(
        out.len() > 10,
        "routes!(..) not found in src/admin: {out:?}"
    );
    out
}

/// The `(path, method)` of handler `name`, from its `#[utoipa::path]`.
fn route_of(sources: &[(PathBuf, String)], name: &str) -> (String, String) {
    for (file, code) in sources {
        let Some(f) = code.find(&format!("async fn {name}(")) else {
            continue;
        };
        let at = code[..f]
            .rfind("#[utoipa::path(")
            .unwrap_or_else(|| panic!("{}: {name} has no #[utoipa::path]", file.display()));
        let attr = &code[at + "#[utoipa::path(".len()..f];
        assert!(
            !attr.contains(" fn "),
            "{}: {name} has no #[utoipa::path] of its own",
            file.display()
        );
        let method: String = attr
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect();
        let path = attr
            .split_once("path = \"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(p, _)| p.to_string())
            .unwrap_or_else(|| panic!("{}: {name}: no path = \"...\"", file.display()));
        assert!(
            METHODS.contains(&method.as_str()),
            "{name}: method {method:?}"
        );
        return (path, method);
    }
    panic!("handler {name} not found in src/admin");
}

#[test]
fn every_route_served_is_described_and_nothing_else() {
    let s = start("openapi-routes", &static_config(""));
    let a = s.admin_url();
    let doc = document(&s);
    let described = described(&doc);
    let served = served();
    let undescribed: Vec<_> = served.difference(&described).collect();
    let unserved: Vec<_> = described.difference(&served).collect();
    assert!(
        undescribed.is_empty() && unserved.is_empty(),
        "served but not described: {undescribed:?}\ndescribed but not served: {unserved:?}"
    );

    // and by the running server: each described call reaches a handler
    // (placeholders in paths; a handler may refuse them, the router may
    // not), and a method no operation has is refused by the router
    for path in doc["paths"].as_object().unwrap().keys() {
        let concrete: String = path
            .split('/')
            .map(|seg| {
                if seg.starts_with('{') {
                    "192.0.2.254"
                } else {
                    seg
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let url = format!("{a}{concrete}");
        for (p, m) in described.iter().filter(|(p, _)| p == path) {
            let (code, body) = http(&m.to_uppercase(), &url, None);
            assert!(
                code != 405 && !(code == 404 && body.contains("no such API path")),
                "{m} {p} is described but not routed: {code} {body}"
            );
        }
        let (code, body) = http("PUT", &url, None);
        assert_eq!(code, 405, "PUT {path}: {body}");
    }
}

/// `schema` made strict: an object schema that lists its properties
/// allows no others, so a field an answer has and the description lacks
/// fails too.
fn strict(schema: &mut Value) {
    match schema {
        Value::Object(m) => {
            if m.contains_key("properties") && !m.contains_key("additionalProperties") {
                m.insert("additionalProperties".into(), Value::Bool(false));
            }
            m.values_mut().for_each(strict);
        }
        Value::Array(a) => a.iter_mut().for_each(strict),
        _ => {}
    }
}

/// Checks answers against what the document says of them.
struct Described {
    doc: Value,
    checked: BTreeMap<String, usize>,
}

impl Described {
    /// Why `v` does not fit the JSON schema the document gives for the
    /// answer `code` to `method path` (empty: it fits).
    fn misfits(&self, method: &str, path: &str, code: u16, v: &Value) -> Vec<String> {
        let what = format!("{method} {path} {code}");
        let response =
            &self.doc["paths"][path][method.to_lowercase()]["responses"][code.to_string()];
        let schema = response["content"]["application/json"]["schema"].clone();
        assert!(schema.is_object(), "{what}: not described: {response}");
        let mut root = serde_json::json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": self.doc["components"].clone(),
        });
        root.as_object_mut()
            .unwrap()
            .extend(schema.as_object().unwrap().clone());
        strict(&mut root);
        let validator = jsonschema::validator_for(&root)
            .unwrap_or_else(|e| panic!("{what}: the schema does not compile: {e}"));
        errors(&validator, v)
    }

    /// Asserts that `body`, answered with `code` to `method path`, fits the
    /// JSON schema the document gives for that answer.
    fn check(&mut self, method: &str, path: &str, code: u16, body: &str) {
        let what = format!("{method} {path} {code}");
        let v: Value =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {body}"));
        let bad = self.misfits(method, path, code, &v);
        assert!(
            bad.is_empty(),
            "{what}: the answer does not fit its description:\n{}\n{v:#}",
            bad.join("\n")
        );
        *self.checked.entry(format!("{method} {path}")).or_default() += 1;
    }

    /// Calls `method url` expecting `code`, checks the answer against
    /// `path`'s description, and returns it.
    fn call(&mut self, method: &str, base: &str, path: &str, url: &str, code: u16) -> Value {
        let (c, body) = http(method, &format!("{base}{url}"), None);
        assert_eq!(c, code, "{method} {url}: {body}");
        self.check(method, path, code, &body);
        serde_json::from_str(&body).unwrap()
    }
}

#[test]
fn real_answers_fit_their_described_schemas() {
    // a probed region, a static one, a signed zone: most of what status
    // and explain can say is there to check
    let n = 5;
    let lb = FakeLb::start(lb_addr(n, 1, 0));
    let key = "Kexample.test.+015+22404";
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/dnssec/");
    let public = std::fs::read_to_string(format!("{data}{key}.key")).unwrap();
    let private = std::fs::read_to_string(format!("{data}{key}.private")).unwrap();
    let cfg = format!(
        r#"{}
[zones."example.test.".dnssec]
keys = ["keys/{key}.private"]
{}
[regions.eu-west]
location = {{ lat = 53.35, lon = -6.26 }}
check = "web"
endpoints = [{{ address = "127.92.{n}.1" }}]

[regions.us-east]
location = {{ lat = 39.04, lon = -77.49 }}
endpoints = [{{ address = "192.0.2.1" }}, {{ address = "2001:db8::1" }}]

[services."www.example.test."]
regions = ["us-east", "eu-west"]
ttl = 10
"#,
        head(""),
        web_check(lb.addr.port(), "")
    );
    let s = Server::start(
        "openapi-answers",
        &cfg,
        &[
            ("example.test.zone", ZONE),
            (&format!("keys/{key}.key"), &public),
            (&format!("keys/{key}.private"), &private),
        ],
    );
    let a = s.admin_url();
    let mut d = Described {
        doc: document(&s),
        checked: BTreeMap::new(),
    };
    wait_until(Duration::from_secs(10), || {
        endpoint(&status(&s), "eu-west", &format!("127.92.{n}.1"))["last_probe"].is_object()
    })
    .expect("eu-west probed");

    let st = d.call("GET", &a, "/v1/status", "/v1/status", 200);
    assert!(st["zones"][0]["dnssec"].is_object(), "{st}");
    // (the check does judge: a field the description lacks, a wrong type,
    // a missing required field)
    let mut odd = st.clone();
    let eu = odd["regions"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|r| r["name"] == "eu-west")
        .unwrap();
    assert!(eu["endpoints"][0]["last_probe"].is_object(), "{eu}");
    eu["endpoints"][0]["last_probe"]["extra"] = 1.into();
    assert!(!d.misfits("GET", "/v1/status", 200, &odd).is_empty());
    let mut odd = st.clone();
    odd["zones"][0]["serial"] = "2026112201".into();
    assert!(!d.misfits("GET", "/v1/status", 200, &odd).is_empty());
    let mut odd = st.clone();
    odd["regions"][1].as_object_mut().unwrap().remove("healthy");
    assert!(!d.misfits("GET", "/v1/status", 200, &odd).is_empty());
    let x = "/v1/explain";
    d.call(
        "GET",
        &a,
        x,
        &format!("{x}?name=www.example.test&client=193.0.6.1"),
        200,
    );
    d.call(
        "GET",
        &a,
        x,
        &format!("{x}?name=www.example.test&type=AAAA&client=2001:db8::7&down=eu-west"),
        200,
    );
    d.call(
        "GET",
        &a,
        x,
        &format!("{x}?name=nothing.example.test&client=193.0.6.1"),
        404,
    );
    d.call(
        "GET",
        &a,
        x,
        &format!("{x}?name=www.example.test&client=193.0.6.1&why=1"),
        400,
    );

    let r = "/v1/regions/{region}/drain";
    d.call("POST", &a, r, "/v1/regions/eu-west/drain?for=10m", 200);
    let st = d.call("GET", &a, "/v1/status", "/v1/status", 200);
    assert!(region(&st, "eu-west")["drain_until"].is_string(), "{st}");
    d.call("DELETE", &a, r, "/v1/regions/eu-west/drain", 200);
    d.call("POST", &a, r, "/v1/regions/nowhere/drain", 404);
    d.call("POST", &a, r, "/v1/regions/eu-west/drain?for=forever", 400);
    let e = "/v1/endpoints/{address}/drain";
    d.call("POST", &a, e, "/v1/endpoints/2001:db8::1/drain", 200);
    d.call("DELETE", &a, e, "/v1/endpoints/2001:db8::1/drain", 200);
    d.call("DELETE", &a, e, "/v1/endpoints/not-an-address/drain", 400);

    let audit = d.call("GET", &a, "/v1/audit", "/v1/audit", 200);
    assert!(audit["audit"].as_array().unwrap().len() >= 4, "{audit}");
    d.call("POST", &a, "/v1/reload", "/v1/reload", 200);
    answer(&s, WWW, RecordType::A, EU);
    d.call("GET", &a, "/v1/shares", "/v1/shares", 200);
    d.call("GET", &a, "/v1/lab", "/v1/lab", 404);

    // a reload of a broken file answers its own shape
    let good = std::fs::read_to_string(s.dir.join("signpost.toml")).unwrap();
    write(
        &s.dir.join("signpost.toml"),
        &format!("{good}\n[regions.broken]\n"),
    );
    d.call("POST", &a, "/v1/reload", "/v1/reload", 400);
    println!("checked: {:?}", d.checked);
}
