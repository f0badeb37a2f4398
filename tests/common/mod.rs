//! Test support: one emulator per test binary (or the one named by AMI_EMULATOR_ENDPOINT), and an
//! `Account` per test so tests never see each other's resources.
//!
//! The emulator maps an access key id ending in 12 digits to that account id (see
//! tests/emulator/README.md), so every test gets a fresh, empty account on the shared server.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command as StdCommand, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sdk_ec2::config::{BehaviorVersion, Region};

pub const REGION: &str = "us-east-1";

pub struct Emulator {
    pub endpoint: String,
    /// Where the server writes its log (moto's tracebacks, the fidelity layer's errors).
    pub log: PathBuf,
    // Held so the server lives as long as the test binary; it also exits when we do.
    _child: Option<Child>,
}

static EMULATOR: OnceLock<Emulator> = OnceLock::new();

pub fn emulator() -> &'static Emulator {
    EMULATOR.get_or_init(|| {
        let emulator = match std::env::var("AMI_EMULATOR_ENDPOINT") {
            Ok(endpoint) => Emulator {
                endpoint,
                log: std::env::var("AMI_EMULATOR_LOG")
                    .map(PathBuf::from)
                    .unwrap_or_else(|_| PathBuf::from("(the log of whoever started it)")),
                _child: None,
            },
            Err(_) => start_emulator(),
        };
        // A failing test names the emulator's log, where the server side of the story is.
        let log = emulator.log.display().to_string();
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            default_hook(info);
            eprintln!("emulator log: {log}");
        }));
        emulator
    })
}

/// The emulator venv's Python (it has boto3 too).
pub fn python() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    std::env::var("AMI_EMULATOR_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join(".emulator/venv/bin/python"))
}

fn start_emulator() -> Emulator {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = python();
    assert!(
        python.exists(),
        "emulator venv missing at {}: run `scripts/emulator.sh setup` (scripts/test.sh does)",
        python.display()
    );
    let log = root.join(format!("target/emulator-{}.log", std::process::id()));
    let log_file = std::fs::File::create(&log)
        .unwrap_or_else(|err| panic!("cannot create {}: {err}", log.display()));
    let mut child = StdCommand::new(&python)
        .arg(root.join("tests/emulator/server.py"))
        .args(["--port", "0", "--parent-pid"])
        .arg(std::process::id().to_string())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()
        .expect("start the emulator");
    let stdout = child.stdout.take().expect("emulator stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the emulator's endpoint");
    let endpoint = line
        .trim()
        .strip_prefix("endpoint=")
        .unwrap_or_else(|| panic!("emulator did not print its endpoint, got {line:?}"))
        .to_string();
    Emulator {
        endpoint,
        log,
        _child: Some(child),
    }
}

/// The SDK clients' HTTP client, as the binary builds it (the SDK crates' default client is off).
fn http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// EC2 in `region` with these credentials, never refreshed.
pub fn ec2_config(region: &str, credentials: Credentials) -> aws_sdk_ec2::Config {
    aws_sdk_ec2::Config::builder()
        .http_client(http_client())
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .endpoint_url(&emulator().endpoint)
        .credentials_provider(credentials)
        .build()
}

/// A fresh AWS account on the emulator.
pub struct Account {
    pub id: String,
}

static NEXT_ACCOUNT: AtomicU64 = AtomicU64::new(0);

impl Account {
    pub fn new() -> Account {
        // Unique across test binaries sharing one server: a time-based base plus a counter.
        static BASE: OnceLock<u64> = OnceLock::new();
        let base = *BASE.get_or_init(|| {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64;
            (nanos % 100_000_000) * 10_000
        });
        let n = NEXT_ACCOUNT.fetch_add(1, Ordering::SeqCst);
        Account {
            id: format!("{:012}", base + n),
        }
    }

    pub fn access_key(&self) -> String {
        format!("AKIATEST{}", self.id)
    }

    /// The real binary, configured the way a user would: environment variables only.
    pub fn ami(&self) -> assert_cmd::Command {
        assert_cmd::Command::from_std(self.ami_process())
    }

    /// Runs `ami ARGS` to the end.
    pub fn run<I, S>(&self, args: I) -> std::process::Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.ami().args(args).output().unwrap()
    }

    /// The same, as a plain process (to spawn and kill it).
    pub fn ami_process(&self) -> StdCommand {
        let mut cmd = StdCommand::new(assert_cmd::cargo::cargo_bin("ami"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", std::env::temp_dir())
            .env("AWS_ACCESS_KEY_ID", self.access_key())
            .env("AWS_SECRET_ACCESS_KEY", "test-secret")
            .env("AWS_REGION", REGION)
            .env("AWS_ENDPOINT_URL", &emulator().endpoint)
            .env("AWS_CONFIG_FILE", empty_file())
            .env("AWS_SHARED_CREDENTIALS_FILE", empty_file())
            // No instance metadata service here: never let the SDK look for one.
            .env("AWS_EC2_METADATA_DISABLED", "true")
            // One attempt: the emulator's 500s for unimplemented calls are not transient.
            .env("AWS_MAX_ATTEMPTS", "1")
            // The emulator meters nothing unless a test asks it to: pace as an account with
            // raised limits, so estates of hundreds of images do not wait on AWS's real rates.
            .env("AMI_EC2_RATE_SCALE", "100");
        cmd
    }

    fn credentials(&self) -> Credentials {
        Credentials::new(self.access_key(), "test-secret", None, None, "tests")
    }

    fn sdk_config(&self, region: &str) -> aws_sdk_ec2::Config {
        ec2_config(region, self.credentials())
    }

    /// STS, as this account.
    pub fn sts(&self) -> aws_sdk_sts::Client {
        aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::Config::builder()
                .http_client(http_client())
                .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
                .region(aws_sdk_sts::config::Region::new(REGION))
                .endpoint_url(&emulator().endpoint)
                .credentials_provider(self.credentials())
                .build(),
        )
    }

    pub fn ec2(&self) -> aws_sdk_ec2::Client {
        self.ec2_in(REGION)
    }

    pub fn ec2_in(&self, region: &str) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::from_conf(self.sdk_config(region))
    }

    pub fn autoscaling(&self) -> aws_sdk_autoscaling::Client {
        let config = aws_sdk_autoscaling::Config::builder()
            .http_client(http_client())
            .behavior_version(aws_sdk_autoscaling::config::BehaviorVersion::latest())
            .region(aws_sdk_autoscaling::config::Region::new(REGION))
            .endpoint_url(&emulator().endpoint)
            .credentials_provider(self.credentials())
            .build();
        aws_sdk_autoscaling::Client::from_conf(config)
    }

    pub fn organizations(&self) -> aws_sdk_organizations::Client {
        aws_sdk_organizations::Client::from_conf(
            aws_sdk_organizations::Config::builder()
                .http_client(http_client())
                .behavior_version(aws_sdk_organizations::config::BehaviorVersion::latest())
                .region(aws_sdk_organizations::config::Region::new(REGION))
                .endpoint_url(&emulator().endpoint)
                .credentials_provider(self.credentials())
                .build(),
        )
    }

    pub fn s3(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::Config::builder()
            .http_client(http_client())
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new(REGION))
            .endpoint_url(&emulator().endpoint)
            .force_path_style(true)
            .credentials_provider(self.credentials())
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// Requests this account made, per `service:Action`.
    pub fn requests(&self) -> BTreeMap<String, u64> {
        let body = admin(
            "GET",
            &format!("/_emulator/requests?account={}", self.id),
            "",
        );
        serde_json::from_str(&body).expect("request counters")
    }

    pub fn reset_requests(&self) {
        admin(
            "POST",
            &format!("/_emulator/requests/reset?account={}", self.id),
            "{}",
        );
    }

    /// Makes DescribeImages / DescribeSnapshots serve at most `size` items a page.
    pub fn set_page_size(&self, size: u32) {
        admin(
            "POST",
            "/_emulator/config",
            &format!(r#"{{"account":"{}","page_size":{size}}}"#, self.id),
        );
    }

    /// Emulator settings for this account: `faults`, `throttle`, `latency_ms`, `page_size` (see
    /// tests/emulator/README.md); `null` removes one.
    pub fn configure(&self, settings: serde_json::Value) {
        let mut body = settings;
        body["account"] = serde_json::Value::String(self.id.clone());
        admin("POST", "/_emulator/config", &body.to_string());
    }

    /// Marks an image as made by an AWS service (`backup`, `dlm`, `image-builder`), as the
    /// service itself would (tests/emulator/lineage.py).
    pub fn mark_managed(&self, region: &str, image_id: &str, service: &str) {
        let body = serde_json::json!({
            "account": self.id,
            "region": region,
            "image_id": image_id,
            "service": service,
        });
        admin("POST", "/_emulator/managed", &body.to_string());
    }

    /// Faults the emulator injected into this account's calls, per `service:Action:kind`.
    pub fn faults_injected(&self) -> BTreeMap<String, u64> {
        let body = admin("GET", &format!("/_emulator/faults?account={}", self.id), "");
        serde_json::from_str(&body).expect("fault counters")
    }

    /// The benchmark's estate (bench/estate.py): `images` images in `families` name families over
    /// two years, ~15% with a data volume, ~5% sharing a root snapshot, one in use per family.
    pub fn seed_estate(&self, images: usize, families: usize) -> serde_json::Value {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let output = StdCommand::new(python())
            .arg(root.join("bench/estate.py"))
            .args([&emulator().endpoint, &self.id])
            .args([images.to_string(), families.to_string()])
            .output()
            .expect("run bench/estate.py");
        assert!(
            output.status.success(),
            "estate.py failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("estate summary")
    }

    /// Every image of the account in the region (all pages, every state): name → snapshot ids.
    pub async fn images_by_name(&self) -> BTreeMap<String, Vec<String>> {
        let mut pages = self
            .ec2()
            .describe_images()
            .owners("self")
            .include_disabled(true)
            .max_results(1000)
            .into_paginator()
            .send();
        let mut found = BTreeMap::new();
        while let Some(page) = pages.next().await {
            for image in page.expect("describe images").images() {
                let snapshots = image
                    .block_device_mappings()
                    .iter()
                    .filter_map(|m| m.ebs().and_then(|e| e.snapshot_id()).map(String::from))
                    .collect();
                found.insert(image.name().unwrap_or_default().to_string(), snapshots);
            }
        }
        found
    }

    /// Every snapshot of the account in the region, all pages.
    pub async fn all_snapshot_ids(&self) -> std::collections::BTreeSet<String> {
        let mut pages = self
            .ec2()
            .describe_snapshots()
            .owner_ids("self")
            .max_results(1000)
            .into_paginator()
            .send();
        let mut found = std::collections::BTreeSet::new();
        while let Some(page) = pages.next().await {
            for snapshot in page.expect("describe snapshots").snapshots() {
                found.extend(snapshot.snapshot_id().map(String::from));
            }
        }
        found
    }

    /// Sets an image's CreationDate or a snapshot's StartTime (RFC 3339).
    pub fn backdate(&self, region: &str, resource_id: &str, time: &str) {
        admin(
            "POST",
            "/_emulator/backdate",
            &format!(
                r#"{{"account":"{}","region":"{region}","resource_id":"{resource_id}","time":"{time}"}}"#,
                self.id
            ),
        );
    }

    /// Locks one of the account's snapshots in governance mode for `days`.
    pub async fn lock_snapshot(&self, region: &str, snapshot_id: &str, days: i32) {
        self.ec2_in(region)
            .lock_snapshot()
            .snapshot_id(snapshot_id)
            .lock_mode(aws_sdk_ec2::types::LockMode::Governance)
            .lock_duration(days)
            .send()
            .await
            .expect("lock snapshot");
    }

    /// Sets an image's LastLaunchedTime, as if its last launch had been at `time`.
    pub fn backdate_launch(&self, region: &str, image_id: &str, time: &str) {
        admin(
            "POST",
            "/_emulator/backdate",
            &serde_json::json!({
                "account": self.id, "region": region, "resource_id": image_id,
                "time": time, "field": "last_launched",
            })
            .to_string(),
        );
    }

    /// DescribeImageAttribute calls since the last reset, per `Attribute` read.
    pub fn attribute_reads(&self) -> BTreeMap<String, u64> {
        let body = admin(
            "GET",
            &format!("/_emulator/requests/attributes?account={}", self.id),
            "",
        );
        serde_json::from_str(&body).expect("attribute counters")
    }

    /// The account's images in the region, every state.
    pub async fn image_ids(&self) -> std::collections::BTreeSet<String> {
        self.ec2()
            .describe_images()
            .owners("self")
            .include_disabled(true)
            .send()
            .await
            .expect("describe images")
            .images()
            .iter()
            .filter_map(|image| image.image_id().map(String::from))
            .collect()
    }

    /// The account's snapshots in the region.
    pub async fn snapshot_ids(&self) -> std::collections::BTreeSet<String> {
        self.ec2()
            .describe_snapshots()
            .owner_ids("self")
            .send()
            .await
            .expect("describe snapshots")
            .snapshots()
            .iter()
            .filter_map(|snapshot| snapshot.snapshot_id().map(String::from))
            .collect()
    }

    /// Calls that changed something (anything but Describe/Get/List/Head, and EC2's DryRun
    /// permission checks, which the emulator counts as `ec2:Action(DryRun)`).
    pub fn mutating_calls(&self) -> Vec<String> {
        self.requests()
            .into_keys()
            .filter(|action| !action.ends_with("(DryRun)"))
            .filter(|action| {
                let name = action.split(':').nth(1).unwrap_or_default();
                !["Describe", "Get", "List", "Head"]
                    .iter()
                    .any(|read| name.starts_with(read))
            })
            .collect()
    }

    // --- seeding, through the SDK as any AWS client would -------------------------------

    pub async fn snapshot(&self, region: &str, size_gib: i32) -> String {
        let ec2 = self.ec2_in(region);
        let volume = ec2
            .create_volume()
            .availability_zone(format!("{region}a"))
            .size(size_gib)
            .send()
            .await
            .expect("create volume");
        ec2.create_snapshot()
            .volume_id(volume.volume_id().unwrap())
            .send()
            .await
            .expect("create snapshot")
            .snapshot_id()
            .unwrap()
            .to_string()
    }

    /// An image on a fresh 8 GiB snapshot of its own: (image id, snapshot id).
    pub async fn image(&self, region: &str, name: &str) -> (String, String) {
        let snapshot = self.snapshot(region, 8).await;
        let image = self
            .register_ebs(region, name, &[("/dev/xvda", &snapshot)])
            .await;
        (image, snapshot)
    }

    /// An EBS image; the first device is the root.
    pub async fn register_ebs(&self, region: &str, name: &str, devices: &[(&str, &str)]) -> String {
        use aws_sdk_ec2::types::{BlockDeviceMapping, EbsBlockDevice};
        let mut request = self
            .ec2_in(region)
            .register_image()
            .name(name)
            .root_device_name(devices[0].0)
            .architecture(aws_sdk_ec2::types::ArchitectureValues::X8664);
        for (device, snapshot) in devices {
            request = request.block_device_mappings(
                BlockDeviceMapping::builder()
                    .device_name(*device)
                    .ebs(EbsBlockDevice::builder().snapshot_id(*snapshot).build())
                    .build(),
            );
        }
        request
            .send()
            .await
            .expect("register EBS image")
            .image_id()
            .unwrap()
            .to_string()
    }

    pub async fn register_manifest(&self, region: &str, name: &str, location: &str) -> String {
        self.ec2_in(region)
            .register_image()
            .name(name)
            .image_location(location)
            .send()
            .await
            .expect("register instance-store image")
            .image_id()
            .unwrap()
            .to_string()
    }

    /// An SSM parameter (String, data type aws:ec2:image), through boto3: the tests have no
    /// Rust SSM client.
    pub fn put_parameter(&self, region: &str, name: &str, value: &str) {
        let script = "import boto3, sys\n\
            endpoint, key, region, name, value = sys.argv[1:]\n\
            boto3.client('ssm', endpoint_url=endpoint, region_name=region, aws_access_key_id=key,\n\
            aws_secret_access_key='test-secret').put_parameter(Name=name, Value=value, Type='String',\n\
            DataType='aws:ec2:image', Overwrite=True)\n";
        let output = StdCommand::new(python())
            .args([
                "-c",
                script,
                &emulator().endpoint,
                &self.access_key(),
                region,
                name,
                value,
            ])
            .output()
            .expect("run python for put_parameter");
        assert!(
            output.status.success(),
            "put_parameter failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// A Recycle Bin retention rule in `region`: for `resource` (`EC2_IMAGE`, `EBS_SNAPSHOT`),
    /// `days` long; with `tags`, a tag-level rule (key, optional value). Returns its id.
    pub async fn recycle_rule(
        &self,
        region: &str,
        resource: &str,
        days: i32,
        tags: &[(&str, Option<&str>)],
    ) -> String {
        use aws_sdk_rbin::types::{
            ResourceTag, ResourceType, RetentionPeriod, RetentionPeriodUnit,
        };
        let config = aws_sdk_rbin::Config::builder()
            .http_client(http_client())
            .behavior_version(aws_sdk_rbin::config::BehaviorVersion::latest())
            .region(aws_sdk_rbin::config::Region::new(region.to_string()))
            .endpoint_url(&emulator().endpoint)
            .credentials_provider(self.credentials())
            .build();
        let tags = tags
            .iter()
            .map(|(key, value)| {
                ResourceTag::builder()
                    .resource_tag_key(*key)
                    .set_resource_tag_value(value.map(str::to_string))
                    .build()
                    .unwrap()
            })
            .collect::<Vec<_>>();
        aws_sdk_rbin::Client::from_conf(config)
            .create_rule()
            .resource_type(ResourceType::from(resource))
            .retention_period(
                RetentionPeriod::builder()
                    .retention_period_value(days)
                    .retention_period_unit(RetentionPeriodUnit::Days)
                    .build()
                    .unwrap(),
            )
            .set_resource_tags((!tags.is_empty()).then_some(tags))
            .send()
            .await
            .expect("create rule")
            .identifier()
            .unwrap()
            .to_string()
    }

    /// An SSM parameter's value, or None when there is no such parameter.
    pub async fn parameter(&self, region: &str, name: &str) -> Option<String> {
        let config = aws_sdk_ssm::Config::builder()
            .http_client(http_client())
            .behavior_version(aws_sdk_ssm::config::BehaviorVersion::latest())
            .region(aws_sdk_ssm::config::Region::new(region.to_string()))
            .endpoint_url(&emulator().endpoint)
            .credentials_provider(self.credentials())
            .build();
        match aws_sdk_ssm::Client::from_conf(config)
            .get_parameter()
            .name(name)
            .send()
            .await
        {
            Ok(output) => output.parameter().and_then(|p| p.value()).map(String::from),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_parameter_not_found()) =>
            {
                None
            }
            Err(err) => panic!("get parameter {name}: {err:?}"),
        }
    }

    /// A launch template (named after the account, so names never collide) whose first
    /// version launches `image`; its id.
    pub async fn launch_template(&self, name: &str, image: &str) -> String {
        use aws_sdk_ec2::types::RequestLaunchTemplateData;
        self.ec2()
            .create_launch_template()
            .launch_template_name(format!("{name}-{}", self.id))
            .launch_template_data(RequestLaunchTemplateData::builder().image_id(image).build())
            .send()
            .await
            .unwrap()
            .launch_template()
            .and_then(|template| template.launch_template_id())
            .expect("launch template id")
            .to_string()
    }

    /// A new (latest, not default) version of `template` that launches `image`.
    pub async fn launch_template_version(&self, template: &str, image: &str) {
        use aws_sdk_ec2::types::RequestLaunchTemplateData;
        self.ec2()
            .create_launch_template_version()
            .launch_template_id(template)
            .launch_template_data(RequestLaunchTemplateData::builder().image_id(image).build())
            .send()
            .await
            .unwrap();
    }

    /// One instance launched from `image` in `region`: its id.
    pub async fn launch_instance(&self, region: &str, image: &str) -> String {
        self.ec2_in(region)
            .run_instances()
            .image_id(image)
            .min_count(1)
            .max_count(1)
            .send()
            .await
            .expect("run instances")
            .instances()[0]
            .instance_id()
            .expect("an instance id")
            .to_string()
    }

    /// A smoke test (`ami launch IMAGE --terminate-after`) interrupted with Ctrl-C while its
    /// RunInstances call is in flight (slowed down here by `latency_ms`): it exits 130 and
    /// strands no instance.
    pub async fn interrupted_launch_strands_no_instance(&self, image: &str, latency_ms: u64) {
        let out = self.interrupted_while(
            &["launch", image, "--terminate-after"],
            "ec2:RunInstances",
            latency_ms,
        );
        assert_eq!(out["terminated"], true, "{out}");
        let live = self.live_instances().await;
        assert!(live.is_empty(), "stranded: {live:?}");
    }

    /// `ami ARGS --output json` in a process group of its own (as a terminal's foreground job),
    /// with every `action` call slowed down by `latency_ms`, interrupted with Ctrl-C 300 ms after
    /// the first one reached the emulator, so that the call is in flight. It must exit 130; its
    /// document.
    pub fn interrupted_while(
        &self,
        args: &[&str],
        action: &str,
        latency_ms: u64,
    ) -> serde_json::Value {
        use std::os::unix::process::CommandExt;
        self.configure(serde_json::json!({"faults": {
            "latency": 1.0, "latency_ms": latency_ms, "actions": [action]
        }}));
        self.reset_requests();
        let child = self
            .ami_process()
            .process_group(0)
            .args(args)
            .args(["--output", "json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        // The emulator counts the call as it arrives, before the slow answer.
        while !self.requests().contains_key(action) {
            assert!(started.elapsed() < std::time::Duration::from_secs(60));
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        interrupt_group(&child);
        let output = child.wait_with_output().unwrap();
        self.configure(serde_json::json!({"faults": null}));
        assert_eq!(
            output.status.code(),
            Some(130),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        json(args, &output)
    }

    /// The account's instances in REGION that are not terminated.
    pub async fn live_instances(&self) -> Vec<String> {
        self.ec2()
            .describe_instances()
            .send()
            .await
            .unwrap()
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter(|i| {
                i.state()
                    .and_then(|s| s.name())
                    .is_some_and(|n| n.as_str() != "terminated")
            })
            .filter_map(|i| i.instance_id().map(String::from))
            .collect()
    }

    /// Grants `account_id` launch permission on one of this account's images in REGION.
    pub async fn share_with(&self, image: &str, account_id: &str) {
        use aws_sdk_ec2::types::{LaunchPermission, LaunchPermissionModifications};
        self.ec2()
            .modify_image_attribute()
            .image_id(image)
            .launch_permission(
                LaunchPermissionModifications::builder()
                    .add(LaunchPermission::builder().user_id(account_id).build())
                    .build(),
            )
            .send()
            .await
            .expect("share the image");
    }

    /// A resource's tags, key → value.
    pub async fn tags_of(&self, region: &str, resource_id: &str) -> BTreeMap<String, String> {
        self.ec2_in(region)
            .describe_tags()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("resource-id")
                    .values(resource_id)
                    .build(),
            )
            .send()
            .await
            .expect("describe tags")
            .tags()
            .iter()
            .filter_map(|tag| Some((tag.key()?.to_string(), tag.value()?.to_string())))
            .collect()
    }

    pub async fn tag(&self, region: &str, resource_id: &str, key: &str, value: &str) {
        self.ec2_in(region)
            .create_tags()
            .resources(resource_id)
            .tags(
                aws_sdk_ec2::types::Tag::builder()
                    .key(key)
                    .value(value)
                    .build(),
            )
            .send()
            .await
            .expect("tag");
    }

    /// An instance-store bundle: `{prefix}{name}.manifest.xml` listing `parts`, and each part
    /// (one byte) under the prefix. The manifest's key.
    pub async fn put_bundle(
        &self,
        bucket: &str,
        prefix: &str,
        name: &str,
        parts: &[&str],
    ) -> String {
        let manifest_key = format!("{prefix}{name}.manifest.xml");
        self.put_object(bucket, &manifest_key, &bundle_manifest(parts))
            .await;
        for part in parts {
            self.put_object(bucket, &format!("{prefix}{part}"), b"0")
                .await;
        }
        manifest_key
    }

    pub async fn put_object(&self, bucket: &str, key: &str, body: &[u8]) {
        let s3 = self.s3();
        // Creating a bucket we already own is fine; anything else is a test bug.
        if let Err(err) = s3.create_bucket().bucket(bucket).send().await {
            let text = format!("{err:?}");
            assert!(
                text.contains("BucketAlreadyOwnedByYou"),
                "create bucket {bucket}: {text}"
            );
        }
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .body(body.to_vec().into())
            .send()
            .await
            .expect("put object");
    }
}

/// Ctrl-C as a terminal sends it: SIGINT to the process group of `child` (spawned with
/// `process_group(0)`).
pub fn interrupt_group(child: &Child) {
    let sent = StdCommand::new("kill")
        .args(["-INT", "--", &format!("-{}", child.id())])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -INT failed");
}

/// A unique bucket name (S3 bucket names are global, even on the emulator).
pub fn bucket_name(account: &Account, purpose: &str) -> String {
    format!("{purpose}-{}", account.id)
}

fn empty_file() -> PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("ami-tests-empty-{}", std::process::id()));
        std::fs::write(&path, "").expect("write empty config file");
        path
    })
    .clone()
}

/// A minimal HTTP/1.1 client for the emulator's admin routes.
fn admin(method: &str, path: &str, body: &str) -> String {
    let address = emulator()
        .endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut stream = TcpStream::connect(&address).expect("connect to the emulator");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send admin request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read admin response");
    let (head, payload) = response
        .split_once("\r\n\r\n")
        .expect("admin response has a body");
    assert!(
        head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
        "admin {method} {path} failed: {response}"
    );
    payload.to_string()
}

/// A bundle manifest (as ec2-bundle-image writes them) listing these part file names.
pub fn bundle_manifest(parts: &[&str]) -> Vec<u8> {
    let parts: String = parts
        .iter()
        .enumerate()
        .map(|(i, name)| {
            format!("<part index=\"{i}\"><filename>{name}</filename><digest algorithm=\"SHA1\">00</digest></part>")
        })
        .collect();
    format!(
        "<?xml version=\"1.0\"?><manifest><version>2007-10-10</version><image><name>img</name>\
         <parts count=\"{}\">{parts}</parts></image></manifest>",
        parts.len()
    )
    .into_bytes()
}

pub mod documents;

/// Parses the binary's stdout as exactly one JSON document, which must match the schema of the
/// verb `args` ran (`schema::of_args`) and read into its typed struct (`documents`): a test
/// reads only what the verb documents.
pub fn json<S: AsRef<str>>(args: &[S], output: &std::process::Output) -> serde_json::Value {
    let document: serde_json::Value =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
            panic!(
                "stdout is not one JSON document ({err}):\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        });
    let name = schema::of_args(args);
    schema::check(name, &document);
    documents::read(name, &document);
    document
}

/// The JSON Schemas of docs/schema/: every document a test parses must match one of them, and
/// `schema::check` holds a document to the schema of the verb that printed it.
pub mod schema {
    use std::sync::OnceLock;

    const BASE: &str = "https://ami.invalid/schema/";
    /// The documents a verb can print (common.json only holds shared definitions).
    pub const DOCUMENTS: [&str; 15] = [
        "list",
        "recycle-bin",
        "restore",
        "create",
        "register",
        "copy",
        "share",
        "launch",
        "release",
        "deregister",
        "cleanup",
        "apply",
        "dry-run",
        "fleet",
        "fleet-line",
    ];

    struct Compiled {
        schemas: boon::Schemas,
        index: Vec<(&'static str, boon::SchemaIndex)>,
    }

    fn compiled() -> &'static Compiled {
        static COMPILED: OnceLock<Compiled> = OnceLock::new();
        COMPILED.get_or_init(|| {
            let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/schema");
            let mut compiler = boon::Compiler::new();
            compiler.enable_format_assertions();
            for entry in std::fs::read_dir(dir).expect("docs/schema") {
                let path = entry.expect("docs/schema entry").path();
                let name = path.file_name().unwrap().to_string_lossy().to_string();
                let text = std::fs::read_to_string(&path).expect("schema file");
                let value: serde_json::Value = serde_json::from_str(&text)
                    .unwrap_or_else(|err| panic!("docs/schema/{name} is not JSON: {err}"));
                compiler
                    .add_resource(&format!("{BASE}{name}"), value)
                    .unwrap_or_else(|err| panic!("docs/schema/{name}: {err}"));
            }
            let mut schemas = boon::Schemas::new();
            let index = DOCUMENTS
                .iter()
                .map(|name| {
                    let url = format!("{BASE}{name}.json");
                    let index = compiler
                        .compile(&url, &mut schemas)
                        .unwrap_or_else(|err| panic!("docs/schema/{name}.json: {err:#}"));
                    (*name, index)
                })
                .collect();
            Compiled { schemas, index }
        })
    }

    /// Why `document` does not match the schema of `name`, if it does not.
    pub fn violation(name: &str, document: &serde_json::Value) -> Option<String> {
        let compiled = compiled();
        let (_, index) = compiled
            .index
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no schema docs/schema/{name}.json"));
        compiled
            .schemas
            .validate(document, *index)
            .err()
            .map(|err| format!("{err:#}"))
    }

    /// Panics unless `document` matches docs/schema/`name`.json.
    pub fn check(name: &str, document: &serde_json::Value) {
        if let Some(why) = violation(name, document) {
            panic!(
                "output does not match docs/schema/{name}.json:\n{why}\ndocument:\n{}",
                serde_json::to_string_pretty(document).unwrap_or_default()
            );
        }
    }

    /// The schema of what `ami ARGS --output json` prints: the verb's own, its dry run's
    /// `DryRunReport` for the verbs that make or change images, `fleet` across accounts.
    pub fn of_args<S: AsRef<str>>(args: &[S]) -> &'static str {
        let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
        let has = |flag: &str| args.contains(&flag);
        let verb = args
            .iter()
            .copied()
            .find(|arg| VERBS.contains(arg))
            .unwrap_or_else(|| panic!("no verb in {args:?}"));
        if has("--accounts") || has("--accounts-from-org") {
            return "fleet";
        }
        let grants = ["--account", "--org-arn", "--ou-arn", "--public"]
            .iter()
            .any(|flag| has(flag));
        match verb {
            "create" | "register" | "copy" if has("--dry-run") => "dry-run",
            "share" if has("--dry-run") && grants => "dry-run",
            "list" if has("--recycle-bin") => "recycle-bin",
            other => DOCUMENTS
                .iter()
                .copied()
                .find(|document| *document == other)
                .unwrap_or_else(|| panic!("`ami {other}` prints no documented JSON")),
        }
    }

    /// The verbs that print a JSON document.
    const VERBS: [&str; 11] = [
        "list",
        "restore",
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
}
