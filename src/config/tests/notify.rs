//! `[[notify.webhook]]`: defaults, every key, and each error naming its key.

use std::time::Duration;

use super::*;

fn hooks(body: &str) -> String {
    format!("{BASE}\n{body}\n")
}

#[test]
fn webhook_defaults_and_keys() {
    assert!(ok(BASE).webhooks.is_empty());
    let c = ok(&hooks(
        "[[notify.webhook]]\nurl = \"http://127.0.0.1:9/hook\"\n\n[[notify.webhook]]\nurl = \"https://hooks.example.net/s/T0K3N\"\nevents = [\"reload\", \"health\", \"reload\"]\nsecret = \"s3cret\"\ntimeout = \"2s\"\nqueue = 10\n",
    ));
    let [a, b] = &c.webhooks[..] else {
        panic!("two webhooks: {:?}", c.webhooks)
    };
    assert_eq!(a.url, "http://127.0.0.1:9/hook");
    assert_eq!(a.events, EventKind::ALL);
    assert_eq!(a.secret, None);
    assert_eq!((a.timeout, a.queue), (Webhook::TIMEOUT, Webhook::QUEUE));
    assert_eq!(b.events, [EventKind::Health, EventKind::Reload]);
    assert_eq!(b.secret.as_deref(), Some("s3cret"));
    assert_eq!((b.timeout, b.queue), (Duration::from_secs(2), 10));
    // neither the secret nor the URL's token is printed
    let shown = format!("{b:?}");
    assert!(
        !shown.contains("s3cret") && !shown.contains("T0K3N"),
        "{shown}"
    );
}

#[test]
fn webhook_secret_file_drops_the_line_end() {
    let dir = std::env::temp_dir().join(format!("signpost-notify-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hook.secret"), "abc123\n").unwrap();
    let text =
        hooks("[[notify.webhook]]\nurl = \"http://127.0.0.1:9/\"\nsecret_file = \"hook.secret\"\n");
    let c = match parse(&text, &dir.join("signpost.toml")) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(c.webhooks[0].secret.as_deref(), Some("abc123"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn webhook_errors_name_their_key() {
    let hook = "[[notify.webhook]]\nurl = \"http://127.0.0.1:9/\"\n";
    // (body, key, reason fragment)
    let cases = [
        (
            "[[notify.webhook]]\nurl = \"ftp://h/x\"",
            "notify.webhook[0].url",
            "not http or https",
        ),
        (
            "[[notify.webhook]]\nurl = \"hooks.example.net\"",
            "notify.webhook[0].url",
            "not a URL",
        ),
        (
            "[[notify.webhook]]\nurl = \"http://h/#x\"",
            "notify.webhook[0].url",
            "fragment",
        ),
        (
            "[[notify.webhook]]\nurl = \"http://h/\"\nevents = [\"health\", \"drains\"]",
            "notify.webhook[0].events",
            "unknown event \"drains\" (known: health, drain, dial, reload, cluster)",
        ),
        (
            "[[notify.webhook]]\nurl = \"http://h/\"\nevents = []",
            "notify.webhook[0].events",
            "no event",
        ),
        (
            "[[notify.webhook]]\nurl = \"http://h/\"\nsecret = \"a\"\nsecret_file = \"f\"",
            "notify.webhook[0]",
            "not both",
        ),
        (
            "[[notify.webhook]]\nurl = \"http://h/\"\nsecret = \"\"",
            "notify.webhook[0]",
            "empty",
        ),
        (
            "[[notify.webhook]]\nurl = \"http://h/\"\nsecret_file = \"/nonexistent/s\"",
            "notify.webhook[0].secret_file",
            "/nonexistent/s",
        ),
        (
            "[[notify.webhook]]\nurl = \"http://h/\"\ntimeout = \"0s\"",
            "notify.webhook[0].timeout",
            "longer than 0",
        ),
        (
            "[[notify.webhook]]\nurl = \"http://h/\"\ntimeout = \"2m\"",
            "notify.webhook[0].timeout",
            "at most 1m",
        ),
        (
            "[[notify.webhook]]\nurl = \"http://h/\"\ntimeout = \"soon\"",
            "notify.webhook[0].timeout",
            "invalid duration",
        ),
        (
            "[[notify.webhook]]\nurl = \"http://h/\"\nqueue = 0",
            "notify.webhook[0].queue",
            "not between 1 and 100000",
        ),
        (
            &format!("{hook}\n[[notify.webhook]]\nurl = \"http://127.0.0.1:9/\""),
            "notify.webhook[1].url",
            "the same URL as notify.webhook[0]",
        ),
        (
            "[[notify.webhook]]\nurl = \"http://h/\"\nretries = 3",
            "notify.webhook[0]",
            "unknown field",
        ),
        (
            "[[notify.webhook]]\nevents = [\"reload\"]",
            "notify.webhook[0]",
            "missing field `url`",
        ),
        ("[notify]\nwebhooks = []", "notify", "unknown field"),
    ];
    for (body, key, reason) in cases {
        let errs = errors(&hooks(body));
        assert!(
            errs.iter().any(|e| e.contains(key) && e.contains(reason)),
            "{body}: {errs:?}"
        );
    }
}

#[test]
fn webhooks_are_not_part_of_what_nodes_share() {
    let a = ok(BASE);
    let b = ok(&hooks(
        "[[notify.webhook]]\nurl = \"http://127.0.0.1:9/\"\nsecret = \"x\"",
    ));
    assert_eq!(a.shared_text, b.shared_text);
}
