//! Syntax and type errors, unreadable files, durations.

use std::time::Duration;

use super::*;

/// 1-based (line, column) of the first `needle` in `text`.
fn position(text: &str, needle: &str) -> (usize, usize) {
    let off = text.find(needle).expect("needle in text");
    let line = text[..off].matches('\n').count() + 1;
    let col = off - text[..off].rfind('\n').map_or(0, |p| p + 1) + 1;
    (line, col)
}
#[test]
fn unknown_keys_are_syntax_errors_with_line_and_column() {
    // (text, where the error points, key path and message start)
    let cases = [
        (
            edit(
                r#"admin = "127.0.0.1:9053""#,
                "admin = \"127.0.0.1:9053\"\ncolour = 1",
            ),
            "colour = 1",
            "server.colour: unknown field `colour`",
        ),
        (
            edit(
                "check = \"web\"\nendpoints = [{ address = \"192.0.2.1\" }]",
                "check = \"web\"\nendpoints = [{ address = \"192.0.2.1\", wieght = 2 }]",
            ),
            "wieght = 2",
            "regions.us-east.endpoints[0].wieght: unknown field `wieght`",
        ),
        (
            edit(
                "location = { lat = 39.04, lon = -77.49 }",
                "location = { lat = 39.04, lon = -77.49, alt = 3 }",
            ),
            "alt = 3",
            "regions.us-east.location.alt: unknown field `alt`",
        ),
        (
            format!("{BASE}\n[metrics]\nport = 1\n"),
            "metrics]",
            "metrics: unknown field `metrics`",
        ),
        (edit("[server]", "[server"), "\nlisten", "unclosed table"),
        (
            edit("port = 8080", "port = \"8080\""),
            "\"8080\"",
            "checks.web.port: invalid type",
        ),
    ];
    for (text, at, rest) in cases {
        let (line, col) = position(&text, at);
        let want = format!("{FILE}:{line}:{col}: {rest}");
        let errs = errors(&text);
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(
            errs[0].starts_with(&want),
            "got {:?}, want prefix {want:?}",
            errs[0]
        );
    }
}
#[test]
fn syntax_error_key_paths_quote_dotted_names() {
    let text = edit(
        r#"regions = ["us-east", "eu-west"]"#,
        "regions = [\"us-east\", \"eu-west\"]\nttl = \"thirty\"",
    );
    let (line, col) = position(&text, "\"thirty\"");
    let want = format!(r#"{FILE}:{line}:{col}: services."www.example.test.".ttl: invalid type"#);
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].starts_with(&want),
        "got {:?}, want {want:?}",
        errs[0]
    );
}
#[test]
fn all_errors_are_reported_at_once() {
    let text = edit(
        r#"regions = ["us-east", "eu-west"]"#,
        "regions = [\"us-east\", \"eu-wets\"]\nanswers = 0",
    )
    .replacen(r#"type = "http""#, r#"type = "icmp""#, 1);
    let errs = errors(&text);
    assert_eq!(errs.len(), 3, "{errs:#?}");
    for want in [
        "signpost.toml: checks.web.type: ",
        r#"signpost.toml: services."www.example.test.".regions[1]: "#,
        r#"signpost.toml: services."www.example.test.".answers: "#,
    ] {
        assert!(
            errs.iter().any(|e| e.starts_with(want)),
            "{want:?} missing from {errs:#?}"
        );
    }
    // and the whole set prints one per line
    let e = parse(&text, Path::new(FILE)).unwrap_err();
    assert_eq!(e.to_string().lines().count(), 3);
}
#[test]
fn load_reports_unreadable_files() {
    let path = Path::new("/nonexistent/dir/signpost.toml");
    let e = load(path).unwrap_err();
    assert_eq!(e.0.len(), 1);
    let msg = e.to_string();
    assert!(
        msg.starts_with("/nonexistent/dir/signpost.toml: cannot read: "),
        "{msg}"
    );
}
#[test]
fn line_col_is_one_based() {
    let text = "ab\ncd\n\nef";
    for (off, want) in [
        (0, (1, 1)),
        (1, (1, 2)),
        (2, (1, 3)),
        (3, (2, 1)),
        (6, (3, 1)),
        (7, (4, 1)),
        (9, (4, 3)),
        (100, (4, 3)),
    ] {
        assert_eq!(raw::line_col(text, off), want, "offset {off}");
    }
}
#[test]
fn durations_take_the_documented_units() {
    for (text, want) in [
        ("500ms", Duration::from_millis(500)),
        ("2s", Duration::from_secs(2)),
        ("1m", Duration::from_secs(60)),
        ("90s", Duration::from_secs(90)),
    ] {
        let c = ok(&edit(
            r#"admin = "127.0.0.1:9053""#,
            &format!("admin = \"127.0.0.1:9053\"\ntcp_idle_timeout = \"{text}\""),
        ));
        assert_eq!(c.server.tcp_idle_timeout, want, "{text}");
    }
    let c = ok(&edit(
        "path = \"/health\"",
        "path = \"/health\"\ninterval = \"1m\"\ntimeout = \"500ms\"",
    ));
    assert_eq!(c.checks["web"].interval, Duration::from_secs(60));
    assert_eq!(c.checks["web"].timeout, Duration::from_millis(500));
}
