//! Every way an operator signs in: `ami list` must reach the account each credential source names.
//! The emulator serves each source (STS for assumed roles and web identity, and in
//! tests/emulator/credentials.py the ECS container endpoint, IMDSv2 and the SSO portal).

use crate::common::{Account, REGION, emulator, json};
use std::path::Path;

/// `ami list` as `caller`, with the environment's keys removed and `setup` applied; the ids of
/// the images it lists.
fn images_listed(caller: &Account, setup: impl FnOnce(&mut assert_cmd::Command)) -> Vec<String> {
    let mut command = caller.ami();
    command
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY");
    setup(&mut command);
    let output = command.args(["list", "--output", "json"]).output().unwrap();
    assert!(
        output.status.success(),
        "ami list: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    json(&["list"], &output)["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|image| image["image_id"].as_str().unwrap().to_string())
        .collect()
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
}

struct Target {
    account: Account,
    image: String,
    dir: tempfile::TempDir,
}

async fn target() -> Target {
    let account = Account::new();
    let (image, _) = account.image(REGION, "signed-in").await;
    Target {
        account,
        image,
        dir: tempfile::tempdir().unwrap(),
    }
}

#[tokio::test]
async fn environment_and_profiles_with_keys_or_a_credential_process() {
    let target = target().await;
    let id = &target.account.id;
    // The environment, as every other test signs in.
    let stranger = Account::new();
    let env_keys = |account: &Account| {
        let key = account.access_key();
        move |cmd: &mut assert_cmd::Command| {
            cmd.env("AWS_ACCESS_KEY_ID", &key)
                .env("AWS_SECRET_ACCESS_KEY", "x");
        }
    };
    assert_eq!(
        images_listed(&stranger, env_keys(&target.account)),
        vec![target.image.clone()]
    );
    assert!(images_listed(&stranger, env_keys(&stranger)).is_empty());

    // A profile with static keys, in the credentials file.
    let credentials = target.dir.path().join("credentials");
    write(
        &credentials,
        &format!("[keys]\naws_access_key_id = AKIATEST{id}\naws_secret_access_key = x\n"),
    );
    // A profile whose credentials come from a process.
    let script = target.dir.path().join("creds.sh");
    write(
        &script,
        &format!(
            "#!/bin/sh\necho '{{\"Version\": 1, \"AccessKeyId\": \"AKIATEST{id}\", \"SecretAccessKey\": \"x\"}}'\n"
        ),
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = target.dir.path().join("config");
    write(
        &config,
        &format!(
            "[profile process]\ncredential_process = {}\n",
            script.display()
        ),
    );
    for profile in ["keys", "process"] {
        let listed = images_listed(&stranger, |cmd| {
            cmd.env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
                .env("AWS_CONFIG_FILE", &config)
                .args(["--profile", profile]);
        });
        assert_eq!(listed, vec![target.image.clone()], "--profile {profile}");
    }
}

#[tokio::test]
async fn an_assumed_role_profile_and_web_identity_reach_the_role_account() {
    let target = target().await;
    let tooling = Account::new();
    let role = format!("arn:aws:iam::{}:role/ImageReader", target.account.id);
    let config = target.dir.path().join("config");
    write(
        &config,
        &format!(
            "[profile base]\naws_access_key_id = {}\naws_secret_access_key = x\n\n\
             [profile reader]\nrole_arn = {role}\nsource_profile = base\n",
            tooling.access_key()
        ),
    );
    let listed = images_listed(&tooling, |cmd| {
        cmd.env("AWS_CONFIG_FILE", &config)
            .args(["--profile", "reader"]);
    });
    assert_eq!(listed, vec![target.image.clone()], "assumed-role profile");
    assert!(tooling.requests().contains_key("sts:AssumeRole"));

    // Web identity (EKS service accounts, CI OIDC): AssumeRoleWithWebIdentity.
    let token = target.dir.path().join("token");
    write(&token, "eyJhbGciOiJSUzI1NiJ9.e30.c2lnbmF0dXJl");
    let listed = images_listed(&tooling, |cmd| {
        cmd.env("AWS_ROLE_ARN", &role)
            .env("AWS_WEB_IDENTITY_TOKEN_FILE", &token)
            .env("AWS_ROLE_SESSION_NAME", "ci");
    });
    assert_eq!(listed, vec![target.image.clone()], "web identity");
}

#[tokio::test]
async fn container_and_instance_credentials() {
    let target = target().await;
    let id = &target.account.id;
    let stranger = Account::new();
    // ECS: the container credentials endpoint.
    let listed = images_listed(&stranger, |cmd| {
        cmd.env(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            format!(
                "{}/_emulator/container-credentials/{id}",
                emulator().endpoint
            ),
        );
    });
    assert_eq!(listed, vec![target.image.clone()], "container credentials");

    // EC2: the instance's role through IMDSv2 (token first).
    target
        .account
        .configure(serde_json::json!({"instance_role": true}));
    let listed = images_listed(&stranger, |cmd| {
        cmd.env_remove("AWS_EC2_METADATA_DISABLED").env(
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            format!("{}/", emulator().endpoint),
        );
    });
    assert_eq!(listed, vec![target.image.clone()], "instance role");
}

#[tokio::test]
async fn an_sso_profile_uses_the_cached_login() {
    let target = target().await;
    let home = target.dir.path();
    let config = home.join("config");
    write(
        &config,
        &format!(
            "[profile corp]\nsso_session = corp\nsso_account_id = {}\nsso_role_name = ImageAdmin\n\n\
             [sso-session corp]\nsso_start_url = https://example.awsapps.com/start\nsso_region = {REGION}\n",
            target.account.id
        ),
    );
    // What `aws sso login` leaves: the token, cached under the SHA-1 of the session's name.
    let digest = std::process::Command::new("sha1sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(b"corp")?;
            child.wait_with_output()
        })
        .expect("sha1sum");
    let digest = String::from_utf8_lossy(&digest.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let cache = home.join(".aws/sso/cache");
    std::fs::create_dir_all(&cache).unwrap();
    write(
        &cache.join(format!("{digest}.json")),
        &format!(
            "{{\"accessToken\": \"emulator-sso-cached\", \"expiresAt\": \"2099-01-01T00:00:00Z\", \
             \"region\": \"{REGION}\", \"startUrl\": \"https://example.awsapps.com/start\"}}"
        ),
    );
    let stranger = Account::new();
    let listed = images_listed(&stranger, |cmd| {
        cmd.env("HOME", home)
            .env("AWS_CONFIG_FILE", &config)
            .args(["--profile", "corp"]);
    });
    assert_eq!(listed, vec![target.image.clone()], "SSO profile");
}

/// The emulator's role sessions end as AWS's do (tests/emulator/sessions.py), so a run that never
/// renews its credentials cannot pass for one that does: DurationSeconds within 900 and the role's
/// MaxSessionDuration, and a request signed after the session's Expiration refused with
/// ExpiredToken.
#[tokio::test]
async fn role_sessions_end_as_on_aws() {
    use aws_sdk_ec2::error::ProvideErrorMetadata;
    let (caller, target) = (Account::new(), Account::new());
    let role = format!("arn:aws:iam::{}:role/Admin", target.id);
    let assume = || {
        caller
            .sts()
            .assume_role()
            .role_arn(&role)
            .role_session_name("test")
    };
    // 3,600 is the MaxSessionDuration of a role that does not raise it.
    for seconds in [899, 3_601] {
        let err = assume().duration_seconds(seconds).send().await.unwrap_err();
        assert_eq!(err.code(), Some("ValidationError"), "{seconds}: {err:?}");
    }
    target.configure(serde_json::json!({"session_seconds": 1}));
    let session = assume().send().await.unwrap();
    let credentials = session.credentials().unwrap();
    let ec2 = aws_sdk_ec2::Client::from_conf(crate::common::ec2_config(
        REGION,
        aws_credential_types::Credentials::new(
            credentials.access_key_id(),
            credentials.secret_access_key(),
            Some(credentials.session_token().to_string()),
            None,
            "test",
        ),
    ));
    ec2.describe_images().owners("self").send().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let err = ec2
        .describe_images()
        .owners("self")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ExpiredToken"), "{err:?}");
}
