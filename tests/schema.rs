//! Every verb's `--output json` document, real and dry run, against its JSON Schema in
//! docs/schema (what a CI script may rely on). Every other test's JSON goes through
//! `common::json`, which holds it to the schema of the verb that printed it too.

use crate::common::{Account, json, schema};
use crate::dry_run::{case, estate, verbs};

/// The schema of what `verb` prints; None for verbs that print no JSON document.
fn schema_of(verb: &str, dry_run: bool) -> Option<&'static str> {
    let name = match verb {
        "completions" | "man" => return None,
        "create" | "register" | "copy" | "share" if dry_run => "dry-run",
        other => other,
    };
    Some(
        schema::DOCUMENTS
            .iter()
            .find(|document| **document == name)
            .unwrap_or_else(|| panic!("no schema in docs/schema for `ami {verb}`: add one")),
    )
}

#[tokio::test]
async fn every_verb_prints_the_document_its_schema_describes() {
    let account = Account::new();
    let estate = estate(&account).await;
    let verbs = verbs();
    let run = |args: Vec<String>, extra: &[&str]| {
        let output = account
            .ami()
            .args(&args)
            .args(["--output", "json"])
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "ami {args:?} {extra:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        json(
            &[
                args.as_slice(),
                &extra.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            ]
            .concat(),
            &output,
        )
    };
    // Dry runs first: they change nothing.
    for verb in &verbs {
        if let Some(name) = schema_of(verb, true) {
            let document = run(case(verb, &estate), &["--dry-run"]);
            schema::check(name, &document);
        }
    }
    let bin = run(vec!["list".into(), "--recycle-bin".into()], &[]);
    schema::check("recycle-bin", &bin);
    assert_eq!(bin["recycle_bin"].as_array().unwrap().len(), 1, "{bin}");
    // Then for real, in an order where each verb still finds what it acts on.
    let order = [
        "list",
        "restore",
        "share",
        "copy",
        "register",
        "create",
        "launch",
        "release",
        "deregister",
        "cleanup",
        "apply",
    ];
    for verb in verbs.iter().filter(|verb| schema_of(verb, false).is_some()) {
        assert!(
            order.contains(&verb.as_str()),
            "`ami {verb}` prints JSON: give it a place in this test's order"
        );
    }
    for verb in order {
        let document = run(case(verb, &estate), &["--yes"]);
        schema::check(verb, &document);
    }
}

/// The schemas are strict: a field the binary does not print, or a value outside an enum, is
/// refused, so a change to the output cannot slip past them.
#[test]
fn the_schemas_refuse_what_the_binary_does_not_print() {
    let share = serde_json::json!({
        "image_id": "ami-0123456789abcdef0",
        "action": "grant",
        "regions": [],
        "notes": []
    });
    assert_eq!(schema::violation("share", &share), None);
    let mut unknown_field = share.clone();
    unknown_field["shared"] = true.into();
    assert!(schema::violation("share", &unknown_field).is_some());
    let mut unknown_action = share.clone();
    unknown_action["action"] = "give".into();
    assert!(schema::violation("share", &unknown_action).is_some());
    let mut missing = share;
    missing.as_object_mut().unwrap().remove("notes");
    assert!(schema::violation("share", &missing).is_some());
}
