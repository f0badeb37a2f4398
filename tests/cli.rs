//! Global options, configuration errors and exit codes, through the real binary.

use crate::common::Account;

/// The run failed with `code`, printed exactly one line on stderr that contains every needle,
/// and nothing on stdout.
fn assert_one_line_error(output: &std::process::Output, code: i32, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "stderr: {stderr}");
    assert!(
        output.stdout.is_empty(),
        "stdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one line expected: {stderr}"
    );
    for needle in needles {
        assert!(stderr.contains(needle), "missing {needle:?} in: {stderr}");
    }
}

#[test]
fn missing_region_is_an_actionable_usage_error() {
    let output = Account::new()
        .ami()
        .env_remove("AWS_REGION")
        .arg("list")
        .output()
        .unwrap();
    assert_one_line_error(&output, 2, &["no AWS region", "--region", "AWS_REGION"]);
}

/// Only a region's form is checked: a region `ami` has never heard of (a new partition's, such
/// as the European Sovereign Cloud's) goes to the endpoint, which answers for it.
#[test]
fn a_region_of_a_new_partition_is_not_refused() {
    let account = Account::new();
    let output = account.run(["list", "--region", "eusc-de-east-1"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(output.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("region '"), "{stderr}");
    assert!(
        account.requests().contains_key("ec2:DescribeImages"),
        "the request never reached the endpoint: {stderr}"
    );
}

#[test]
fn aws_default_region_is_honoured() {
    let output = Account::new()
        .ami()
        .env_remove("AWS_REGION")
        .env("AWS_DEFAULT_REGION", "eu-west-1")
        .args(["list", "--output", "json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        crate::common::json(&["list"], &output)["regions"][0],
        "eu-west-1"
    );
}

#[test]
fn region_from_the_profile_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::write(&config, "[profile ops]\nregion = ap-southeast-2\n").unwrap();
    let output = Account::new()
        .ami()
        .env_remove("AWS_REGION")
        .env("AWS_CONFIG_FILE", &config)
        .args(["list", "--profile", "ops", "--output", "json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        crate::common::json(&["list"], &output)["regions"][0],
        "ap-southeast-2"
    );
}

#[test]
fn malformed_region_is_refused_by_name() {
    let output = Account::new().run(["list", "--region", "us-east"]);
    assert_one_line_error(&output, 2, &["invalid region 'us-east'"]);
}

#[test]
fn missing_credentials_are_an_actionable_usage_error() {
    let output = Account::new()
        .ami()
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .arg("list")
        .output()
        .unwrap();
    assert_one_line_error(
        &output,
        2,
        &["no AWS credentials found", "AWS_ACCESS_KEY_ID"],
    );
}

#[test]
fn unknown_profile_is_reported_as_missing_credentials() {
    let output = Account::new()
        .ami()
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .args(["list", "--profile", "nope"])
        .output()
        .unwrap();
    assert_one_line_error(&output, 2, &["no AWS credentials found", "'nope'"]);
}

#[test]
fn unreachable_endpoint_fails_on_one_line() {
    // Port 1 on loopback: nothing listens there.
    let output = Account::new().run(["list", "--endpoint-url", "http://127.0.0.1:1"]);
    assert_one_line_error(
        &output,
        1,
        &["DescribeImages in us-east-1", "cannot reach the endpoint"],
    );
}

#[test]
fn a_region_the_endpoint_does_not_serve_fails_on_one_line_naming_it() {
    let output = Account::new().run(["list", "--region", "us-nowhere-9"]);
    assert_one_line_error(&output, 1, &["DescribeImages in us-nowhere-9 failed"]);
}

#[test]
fn malformed_endpoint_in_the_environment_is_a_usage_error() {
    let output = Account::new()
        .ami()
        .env("AWS_ENDPOINT_URL", "garbage")
        .arg("list")
        .output()
        .unwrap();
    assert_one_line_error(&output, 2, &["invalid AWS_ENDPOINT_URL 'garbage'"]);
}

#[test]
fn empty_environment_variables_count_as_unset() {
    // As with the AWS CLI: an empty AWS_ENDPOINT_URL means AWS's own endpoint, an empty
    // AWS_REGION means no region.
    let output = Account::new()
        .ami()
        .env("AWS_ENDPOINT_URL", "")
        .env("AWS_REGION", "")
        .arg("list")
        .output()
        .unwrap();
    assert_one_line_error(&output, 2, &["no AWS region"]);
}

#[test]
fn malformed_endpoint_is_a_usage_error() {
    let output = Account::new().run(["list", "--endpoint-url", "127.0.0.1:5000"]);
    assert_one_line_error(&output, 2, &["invalid --endpoint-url '127.0.0.1:5000'"]);
}

#[test]
fn bad_filters_are_usage_errors() {
    let account = Account::new();
    let output = account.run(["list", "--tag", "novalue"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("expected KEY=VALUE, got 'novalue'"));

    let output = account.run(["list", "--owner", "12345"]);
    assert_one_line_error(&output, 2, &["invalid --owner '12345'"]);
}

#[test]
fn help_lists_only_built_verbs() {
    let output = Account::new().ami().arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(help.contains("list"), "{help}");
    for global in [
        "--region",
        "--profile",
        "--endpoint-url",
        "--output",
        "--dry-run",
        "--max-attempts",
    ] {
        assert!(help.contains(global), "missing {global}: {help}");
    }
    // No stubs: verbs that are not built yet are not offered.
    let commands = help
        .split("Commands:")
        .nth(1)
        .unwrap()
        .split("Options:")
        .next()
        .unwrap();
    // A verb's line is indented by two; wrapped descriptions by more.
    let verbs: Vec<&str> = commands
        .lines()
        .filter(|line| line.starts_with("  ") && !line.starts_with("   "))
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert_eq!(
        verbs,
        [
            "list",
            "create",
            "register",
            "copy",
            "share",
            "launch",
            "release",
            "deregister",
            "cleanup",
            "apply",
            "restore",
            "completions",
            "man",
            "help"
        ],
        "{help}"
    );
}

#[test]
fn unknown_verb_is_a_usage_error() {
    let output = Account::new().ami().arg("frobnicate").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn json_output_is_one_document_on_stdout() {
    let account = Account::new();
    let output = account.run(["list", "--output", "json", "-vv"]);
    assert!(output.status.success());
    // Logs went to stderr; stdout still parses as exactly one document.
    let document = crate::common::json(&["list"], &output);
    assert!(document["images"].as_array().unwrap().is_empty());
    assert!(!output.stderr.is_empty(), "-vv logs on stderr");
}

/// Bad input of every kind: exit 2, a message naming the bad value, and not one call that
/// changes anything (even with --yes, and with a real image in reach).
#[tokio::test]
async fn bad_arguments_name_the_value_and_change_nothing() {
    let account = Account::new();
    let (image, _) = account.image(crate::common::REGION, "stays-put").await;
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let typo = dir.path().join("typo.toml");
    std::fs::write(&typo, "[[rule]]\nkeep = 2\nolder_then = \"90d\"\n").unwrap();
    let unknown_top = dir.path().join("top.toml");
    std::fs::write(
        &unknown_top,
        "region = [\"us-east-1\"]\n[[rule]]\nkeep = 2\n",
    )
    .unwrap();
    let (empty, typo, unknown_top) = (
        empty.to_str().unwrap(),
        typo.to_str().unwrap(),
        unknown_top.to_str().unwrap(),
    );
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["deregister", "snap-0123456789abcdef0"],
            "snap-0123456789abcdef0",
        ),
        (vec!["deregister", "ami-xyz", &image], "ami-xyz"),
        (
            vec!["deregister", "i-0123456789abcdef0"],
            "i-0123456789abcdef0",
        ),
        (vec!["share", &image, "--account", "12345"], "12345"),
        (
            vec!["share", &image, "--account", "1234567890123"],
            "1234567890123",
        ),
        (
            vec!["share", &image, "--org-arn", "arn:aws:iam::1:role/x"],
            "arn:aws:iam::1:role/x",
        ),
        (
            vec!["copy", &image, "--to-region", "Not_A_Region"],
            "Not_A_Region",
        ),
        (
            vec!["deregister", &image, "--region", "mars_north"],
            "mars_north",
        ),
        (
            vec!["cleanup", "--keep", "1", "--region", "zz-east"],
            "zz-east",
        ),
        (
            vec![
                "deregister",
                &image,
                "--region",
                "us-east-1",
                "--region",
                "x",
            ],
            "'x'",
        ),
        (
            vec!["cleanup", "--keep", "2", "--older-than", "3fortnights"],
            "3fortnights",
        ),
        (vec!["cleanup", "--keep", "1", "--unused-for", "0"], "'0'"),
        (vec!["cleanup", "--keep", "many"], "many"),
        (vec!["cleanup", "--policy", empty], "no [[rule]]"),
        (vec!["cleanup", "--policy", typo], "older_then"),
        (vec!["cleanup", "--policy", unknown_top], "region"),
        (
            vec!["cleanup", "--policy", "/nonexistent/policy.toml"],
            "/nonexistent/policy.toml",
        ),
        (
            vec![
                "register",
                "--name",
                "ok-name",
                "--root-snapshot",
                "vol-0123456789abcdef0",
            ],
            "vol-0123456789abcdef0",
        ),
        (
            vec![
                "create",
                "--instance-id",
                "ami-0123456789abcdef0",
                "--name",
                "n1",
            ],
            "ami-0123456789abcdef0",
        ),
        (
            vec!["apply", "/nonexistent/plan.json"],
            "/nonexistent/plan.json",
        ),
    ];
    account.reset_requests();
    for (args, needle) in cases {
        let output = account.ami().args(&args).arg("--yes").output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: {needle:?} not in {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
    assert_eq!(account.mutating_calls(), Vec::<String>::new());
    assert!(account.image_ids().await.contains(&image));
}

/// Known secret values in the environment never show, at any verbosity, on any path.
#[tokio::test]
async fn credentials_never_appear_in_output_or_logs() {
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY1";
    const TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN0123456789";
    let account = Account::new();
    let (image, _) = account.image(crate::common::REGION, "secretive").await;
    let runs: Vec<Vec<&str>> = vec![
        vec!["list", "-vv"],
        vec!["list", "-vv", "--output", "json"],
        vec!["deregister", &image, "--cleanup", "--dry-run", "-vv"],
        vec![
            "cleanup",
            "--keep",
            "0",
            "--older-than",
            "1d",
            "--dry-run",
            "-vv",
        ],
        vec![
            "share",
            &image,
            "--account",
            "123456789012",
            "--dry-run",
            "-vv",
        ],
        // Failure paths print errors with context.
        vec!["deregister", "ami-0123456789abcdef0", "--yes", "-vv"],
        vec!["list", "-vv", "--endpoint-url", "http://127.0.0.1:9"],
    ];
    let mut logged = 0;
    for args in runs {
        for filter in [None, Some("trace")] {
            let mut command = account.ami();
            command
                .env("AWS_SECRET_ACCESS_KEY", SECRET)
                .env("AWS_SESSION_TOKEN", TOKEN)
                .args(&args);
            if let Some(filter) = filter {
                command.env("AMI_LOG", filter);
            }
            let output = command.output().unwrap();
            let all = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            logged += output.stderr.len();
            for secret in [SECRET, TOKEN, &SECRET[..20], &TOKEN[..20]] {
                assert!(
                    !all.contains(secret),
                    "{args:?} ({filter:?}) printed a secret"
                );
            }
        }
    }
    // The runs did log (debug and trace, SDK included): the check above looked at something.
    assert!(logged > 100_000, "only {logged} bytes of logs");
}

const VERBS: [&str; 10] = [
    "list",
    "create",
    "register",
    "copy",
    "share",
    "launch",
    "release",
    "deregister",
    "cleanup",
    "apply",
];

/// Completions and man pages come from the clap definitions: every verb is in them, with no
/// region or credentials needed.
#[test]
fn completions_and_man_pages_cover_every_verb() {
    let account = Account::new();
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let output = account
            .ami()
            .env_remove("AWS_REGION")
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(output.status.success(), "{shell}");
        let script = String::from_utf8(output.stdout).unwrap();
        for verb in VERBS {
            assert!(script.contains(verb), "{shell} completions lack {verb}");
        }
        assert!(script.contains("to-region"), "{shell}: flags too");
    }
    let output = account
        .ami()
        .env_remove("AWS_REGION")
        .arg("man")
        .output()
        .unwrap();
    assert!(output.status.success());
    let page = String::from_utf8(output.stdout).unwrap();
    assert!(
        page.starts_with(".ie") || page.contains(".TH ami 1"),
        "{page}"
    );
    for verb in VERBS {
        assert!(page.contains(verb), "the man page lacks {verb}");
        let output = account.run(["man", verb]);
        assert!(output.status.success(), "{verb}");
        let page = String::from_utf8(output.stdout).unwrap();
        assert!(
            page.contains(&format!(".TH ami-{verb} 1")),
            "{verb}: {page}"
        );
    }
    let output = account.run(["man", "frobnicate"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("'frobnicate' is not a verb"));
}

/// `ami --version` names the git revision it was built from.
#[test]
fn version_names_the_git_revision() {
    let output = Account::new().ami().arg("--version").output().unwrap();
    assert!(output.status.success());
    let version = String::from_utf8(output.stdout).unwrap();
    assert!(
        version.starts_with(&format!("ami {} (", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match head {
        Some(head) => assert!(
            version.contains(&format!("({head})")),
            "{version} vs {head}"
        ),
        None => assert!(version.contains("(unknown)"), "{version}"),
    }
}

/// `max_attempts = 3` in the profile means 3 (it used to be taken for "unset" and become 10).
#[test]
fn the_profile_max_attempts_is_honoured_even_when_it_is_three() {
    let account = Account::new();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::write(&config, "[profile ops]\nmax_attempts = 3\n").unwrap();
    account.configure(serde_json::json!({
        "faults": {"error": 1.0, "actions": ["ec2:DescribeImages"]}
    }));
    let output = account
        .ami()
        .env_remove("AWS_MAX_ATTEMPTS")
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_PROFILE", "ops")
        .args(["list", "--no-shares"])
        .output()
        .unwrap();
    account.configure(serde_json::json!({"faults": null}));
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        account.requests().get("ec2:DescribeImages"),
        Some(&3),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// On a terminal a long reason wraps within its width; piped, every row stays on one line.
#[tokio::test]
async fn tables_fit_the_terminal_and_stay_one_row_a_line_when_piped() {
    let account = Account::new();
    let (image, _) = account.image(crate::common::REGION, "wrapped").await;
    for n in 0..3 {
        account.launch_instance(crate::common::REGION, &image).await;
        account.launch_template(&format!("wrap{n}"), &image).await;
    }
    let args = [
        "deregister",
        &image,
        "--cleanup",
        "--dry-run",
        "--color",
        "never",
    ];

    let piped = account.run(args);
    let stdout = String::from_utf8_lossy(&piped.stdout);
    let row = stdout
        .lines()
        .find(|line| line.contains(&image) && line.contains("keep"))
        .unwrap_or_else(|| panic!("no row for {image}:\n{stdout}"));
    assert!(
        row.matches("launch template").count() == 3 && row.len() > 200,
        "piped, the whole reason stays on the image's row: {row}"
    );

    // The same command in a pseudo-terminal 70 columns wide (script(1) gives it one).
    let binary = account.ami_process();
    let mut command = std::process::Command::new("script");
    command.env_clear();
    for (key, value) in binary.get_envs() {
        if let Some(value) = value {
            command.env(key, value);
        }
    }
    let shell_line = format!(
        "stty cols 70 rows 50; '{}' {}",
        binary.get_program().to_string_lossy(),
        args.join(" ")
    );
    let output = command
        .args(["-q", "-e", "-c", &shell_line, "/dev/null"])
        .output()
        .expect("script(1) from util-linux");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains(&image) && text.contains("keep"), "{text}");
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        assert!(
            line.chars().count() <= 70,
            "wider than the 70-column terminal: {line:?}\n{text}"
        );
    }
}

#[test]
fn a_bad_rate_scale_is_refused_by_name() {
    for bad in ["abc", "0", "-2"] {
        let output = Account::new()
            .ami()
            .env("AMI_EC2_RATE_SCALE", bad)
            .arg("list")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{bad}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("AMI_EC2_RATE_SCALE"), "{stderr}");
    }
}
