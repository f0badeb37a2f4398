//! `ami share AMI_ID`: launch permissions for accounts, organizations, OUs or everyone, and
//! create-volume permission on the image's snapshots. With no grantee, shows who has access.

use anyhow::{Result, anyhow};
use futures::{StreamExt, stream};
use serde::Serialize;

use crate::aws::settle::Fresh;
use crate::aws::{Aws, Ec2};
use crate::cli::{GranteeArgs, ShareArgs};
use crate::config::Settings;
use crate::error::{Outcome, one_line, usage};
use crate::model::{Grantees, LaunchPermissions};
use crate::output::{Render, TableStyle};
use crate::plan::sharing::{self, Access, Change, Direction, VolumeAccess};

use super::dry_run::{DryRunReport, OrDryRun, PlannedCall};

/// What `share` was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShareAction {
    /// Only show who may launch the image.
    Show,
    Grant,
    Revoke,
}

impl ShareAction {
    /// Which way the share goes; None when it only shows.
    pub fn direction(self) -> Option<Direction> {
        match self {
            ShareAction::Show => None,
            ShareAction::Grant => Some(Direction::Grant),
            ShareAction::Revoke => Some(Direction::Revoke),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ShareOutput {
    pub image_id: String,
    pub action: ShareAction,
    pub regions: Vec<RegionShare>,
    pub notes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct RegionShare {
    pub region: String,
    pub image_id: String,
    /// Launch permissions after the change.
    pub launch_permissions: Option<LaunchPermissions>,
    /// Create-volume permissions of the image's snapshots (with --with-snapshots).
    pub snapshots: Vec<SnapshotShare>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SnapshotShare {
    pub snapshot_id: String,
    pub accounts: Vec<String>,
    pub public: bool,
}

pub async fn run(settings: &Settings, args: &ShareArgs) -> Result<Outcome> {
    crate::ids::image_id(&args.image_id)?;
    let mut grantees = grantees(&args.share)?;
    grantees.public = args.public;
    let [region] = settings.regions.as_slice() else {
        return Err(usage(
            "share takes the image's region: pass a single --region (and --all-copies for its copies)",
        ));
    };
    let action = match (grantees.is_empty(), args.revoke) {
        (true, true) => {
            return Err(usage(
                "--revoke needs --account, --org-arn, --ou-arn or --public",
            ));
        }
        (true, false) => ShareAction::Show,
        (false, false) => ShareAction::Grant,
        (false, true) => ShareAction::Revoke,
    };

    super::fleet::run(settings, &args.accounts, |aws| {
        share_in(aws, settings, args, region, grantees.clone(), action)
    })
    .await
}

async fn share_in(
    aws: Aws,
    settings: &Settings,
    args: &ShareArgs,
    region: &String,
    grantees: Grantees,
    action: ShareAction,
) -> Result<(OrDryRun<ShareOutput>, Outcome)> {
    let ec2 = aws.ec2(region);
    let image = ec2
        .describe_image(&args.image_id)
        .await?
        .ok_or_else(|| usage(format!("{} not found in {region}", args.image_id)))?;
    // Only the owner's images are ever changed: never attempt it on one shared with us.
    if action != ShareAction::Show {
        let caller = aws.account_id(region).await?;
        if image.owner_id.as_deref() != Some(caller.as_str()) {
            return Err(usage(format!(
                "{} is owned by account {}, not by this account ({caller}): only its owner can \
                 share it; nothing was changed",
                image.image_id,
                image.owner_id.as_deref().unwrap_or("unknown")
            )));
        }
    }
    let mut notes = Vec::new();

    // Every copy, by where AWS records each image came from: never by name, which an unrelated
    // image may share and a copy may not.
    let (images, unread) = match args.all_copies {
        true => with_copies(&aws, region, &image, &mut notes).await?,
        false => (vec![image.clone()], 0),
    };
    let places: Vec<(String, String)> = images
        .iter()
        .map(|image| (image.region.clone(), image.image_id.clone()))
        .collect();
    if action == ShareAction::Grant
        && let Some(role_name) = &args.accounts.role_name
    {
        let owner = aws.account_id(region).await?;
        notes.extend(allowed_warnings(&aws, role_name, &owner, &images, &grantees.accounts).await);
    }

    if args.with_snapshots
        && (!grantees.organizations.is_empty() || !grantees.organizational_units.is_empty())
    {
        notes.push(
            "organizations and OUs cannot be given create-volume permission on snapshots: \
             only accounts and public apply to the snapshots"
                .into(),
        );
    }
    if let Some(direction) = action.direction()
        && settings.dry_run
    {
        let dry = DryShare {
            direction,
            grantees: &grantees,
            with_snapshots: args.with_snapshots,
            confirm_public: args.confirm_public,
        };
        return dry_run(&aws, dry, places, notes, unread > 0).await;
    }
    if action == ShareAction::Grant && args.public {
        confirm_public(settings, args, &places, &ec2).await?;
    }

    let results: Vec<RegionShare> = stream::iter(places)
        .map(|(region, image_id)| {
            let ec2 = aws.ec2(&region);
            let grantees = &grantees;
            async move {
                match share_image(&ec2, &image_id, grantees, action, args.with_snapshots).await {
                    Ok(shared) => shared.share,
                    Err(err) => RegionShare {
                        region,
                        image_id,
                        launch_permissions: None,
                        snapshots: Vec::new(),
                        error: Some(one_line(&err)),
                    },
                }
            }
        })
        .buffer_unordered(crate::concurrency::REGIONS)
        .collect()
        .await;
    let mut regions = results;
    regions.sort_by(|a, b| a.region.cmp(&b.region));
    let failed = regions.iter().filter(|r| r.error.is_some()).count();
    let outcome = match failed {
        0 if unread == 0 => Outcome::Success,
        n if n == regions.len() => Outcome::Failed,
        _ => Outcome::Partial,
    };
    Ok((
        OrDryRun::Real(ShareOutput {
            image_id: args.image_id.clone(),
            action,
            regions,
            notes,
        }),
        outcome,
    ))
}

/// The image and every copy of it, by where AWS records each image came from: never by name,
/// which an unrelated image may share and a copy may not. Also how many regions could not be
/// searched (they leave the run partial).
async fn with_copies(
    aws: &Aws,
    region: &str,
    image: &crate::model::Image,
    notes: &mut Vec<String>,
) -> Result<(Vec<crate::model::Image>, usize)> {
    let copies = super::copies::copies_everywhere(aws, region, image).await?;
    if copies.images.is_empty() {
        notes.push(format!(
            "{} has no copies in the account's enabled regions (a copy made moments ago may \
             not be listed yet)",
            image.image_id
        ));
    }
    let unread = copies.unread.len();
    for (other, why) in copies.unread {
        notes.push(format!(
            "{other}: could not be searched for copies, none changed there: {why}"
        ));
    }
    let mut images = vec![image.clone()];
    images.extend(copies.images);
    Ok((images, unread))
}

/// What a dry run of a grant or revoke is asked.
struct DryShare<'a> {
    direction: Direction,
    grantees: &'a Grantees,
    with_snapshots: bool,
    confirm_public: bool,
}

/// The calls a grant or revoke would make in every place (`plan::sharing::changes`, as the
/// real run makes them), with AWS's DryRun answer for each.
async fn dry_run(
    aws: &Aws,
    share: DryShare<'_>,
    places: Vec<(String, String)>,
    notes: Vec<String>,
    incomplete: bool,
) -> Result<(OrDryRun<ShareOutput>, Outcome)> {
    let share = &share;
    type Checked = (Vec<PlannedCall>, Option<String>);
    let checks: Vec<Result<Checked>> = stream::iter(places)
        .map(|(region, image_id)| {
            let ec2 = aws.ec2(&region);
            async move {
                // The image's snapshots are read only when the share reaches them.
                let snapshots = if sharing::reaches_snapshots(share.grantees, share.with_snapshots)
                {
                    let image = ec2
                        .describe_image(&image_id)
                        .await?
                        .ok_or_else(|| anyhow!("{image_id} not found in {region}"))?;
                    snapshot_ids(&image)
                } else {
                    Vec::new()
                };
                let access = read_access(&ec2, &image_id, &snapshots).await?;
                let mut calls = Vec::new();
                for change in sharing::changes(share.direction, share.grantees, &access) {
                    calls.push(planned_call(&ec2, &change, share.direction).await?);
                }
                let unchanged = calls.is_empty().then(|| {
                    format!(
                        "{image_id} in {region} is already shared with {}: nothing to change",
                        describe(share.grantees)
                    )
                });
                Ok((calls, unchanged))
            }
        })
        .buffer_unordered(crate::concurrency::REGIONS)
        .collect()
        .await;
    let mut report = DryRunReport::new();
    report.notes = notes;
    // A region that could not be searched for copies leaves the dry run incomplete.
    let mut failed = incomplete;
    for result in checks {
        match result {
            Ok((calls, unchanged)) => {
                report.calls.extend(calls);
                report.notes.extend(unchanged);
            }
            Err(err) => {
                failed = true;
                report.notes.push(one_line(&err));
            }
        }
    }
    report
        .calls
        .sort_by(|a, b| (&a.region, &a.call).cmp(&(&b.region, &b.call)));
    if share.grantees.public && share.direction == Direction::Grant && !share.confirm_public {
        report.notes.push(
            "--public will also need --confirm-public (or a typed yes) when run for real".into(),
        );
    }
    let outcome = if failed {
        Outcome::Failed
    } else {
        report.outcome()
    };
    Ok((OrDryRun::DryRun(report), outcome))
}

/// One change as the dry run lists it, with AWS's DryRun answer.
async fn planned_call(ec2: &Ec2, change: &Change, direction: Direction) -> Result<PlannedCall> {
    let verb = if direction.revokes() { "remove" } else { "add" };
    let revoke = direction.revokes();
    let (call, target, aws) = match change {
        Change::Launch { image_id, grantees } => (
            "ec2:ModifyImageAttribute",
            format!("{image_id} launchPermission {verb} {}", describe(grantees)),
            ec2.check_launch_permissions(image_id, grantees, revoke)
                .await?,
        ),
        Change::Volume {
            snapshot_id,
            grantees,
        } => (
            "ec2:ModifySnapshotAttribute",
            format!(
                "{snapshot_id} createVolumePermission {verb} {}",
                describe(grantees)
            ),
            ec2.check_create_volume_permission(
                snapshot_id,
                &grantees.accounts,
                grantees.public,
                revoke,
            )
            .await?,
        ),
    };
    Ok(PlannedCall {
        region: ec2.region().to_string(),
        call: call.to_string(),
        target,
        aws,
    })
}

/// What the image and the given snapshots of it are shared with now. The image may be one this
/// run just made (release): AWS may not know it yet (`settle`).
async fn read_access(ec2: &Ec2, image_id: &str, snapshots: &[String]) -> Result<Access> {
    let launch = ec2
        .once_caught_up(Fresh::Image, || ec2.launch_permissions(image_id))
        .await?;
    let mut volumes = Vec::new();
    for snapshot_id in snapshots {
        volumes.push(volume_access(ec2, snapshot_id).await?);
    }
    Ok(Access {
        image_id: image_id.to_string(),
        launch,
        volumes,
    })
}

async fn volume_access(ec2: &Ec2, snapshot_id: &str) -> Result<VolumeAccess> {
    let (accounts, public) = ec2
        .once_caught_up(Fresh::Snapshot, || {
            ec2.create_volume_permissions(snapshot_id)
        })
        .await?;
    Ok(VolumeAccess {
        snapshot_id: snapshot_id.to_string(),
        accounts,
        public,
    })
}

fn snapshot_ids(image: &crate::model::Image) -> Vec<String> {
    image
        .block_devices
        .iter()
        .filter_map(|device| device.snapshot_id.clone())
        .collect()
}

/// A warning for each (account, image) whose Allowed AMIs settings would not let that account
/// see or launch the image, read through `role_name` in each account and region. Only a warning:
/// the settings are the consumer's; one that cannot be read is named, not guessed.
pub(super) async fn allowed_warnings(
    aws: &Aws,
    role_name: &str,
    owner: &str,
    images: &[crate::model::Image],
    accounts: &[String],
) -> Vec<String> {
    use crate::plan::allowed::{Verdict, judge};
    let pairs: Vec<(&String, &crate::model::Image)> = accounts
        .iter()
        .filter(|account| account.as_str() != owner)
        .flat_map(|account| images.iter().map(move |image| (account, image)))
        .collect();
    let mut warnings: Vec<String> = stream::iter(pairs)
        .map(|(account, image)| async move {
            let region = &image.region;
            let arn = crate::aws::accounts::role_arn(region, account, role_name);
            let settings = match aws.assume(&arn).await {
                Ok(consumer) => consumer
                    .ec2(region)
                    .allowed_images()
                    .await
                    .map_err(anyhow::Error::from),
                Err(err) => Err(err),
            };
            let who = format!("account {account} in {region}");
            match settings {
                Err(err) => Some(format!(
                    "{who}: could not read its Allowed AMIs settings, so whether it may use {} is \
                     unknown: {}",
                    image.image_id,
                    one_line(&err)
                )),
                Ok(settings) => match judge(&settings, image, owner, account, chrono::Utc::now()) {
                    Verdict::Allowed => None,
                    Verdict::Refused(why) => Some(format!(
                        "{who}: Allowed AMIs is enabled there and will not let it see or launch {}: \
                         {why}",
                        image.image_id
                    )),
                    Verdict::RefusedWhenEnabled(why) => Some(format!(
                        "{who}: Allowed AMIs is in audit mode there; once enabled it would refuse {}: \
                         {why}",
                        image.image_id
                    )),
                    Verdict::Unknown(why) => Some(format!(
                        "{who}: Allowed AMIs may not let it use {}: {why}",
                        image.image_id
                    )),
                },
            }
        })
        .buffer_unordered(crate::concurrency::CONSUMER_ACCOUNTS)
        .filter_map(std::future::ready)
        .collect()
        .await;
    warnings.sort();
    warnings
}

/// The grantees named on the command line, every id and ARN checked first.
pub fn grantees(args: &GranteeArgs) -> Result<Grantees> {
    for account in &args.account {
        crate::ids::account_id(account)?;
    }
    for arn in &args.org_arn {
        crate::ids::organization_arn(arn)?;
    }
    for arn in &args.ou_arn {
        crate::ids::organizational_unit_arn(arn)?;
    }
    Ok(Grantees {
        accounts: args.account.clone(),
        organizations: args.org_arn.clone(),
        organizational_units: args.ou_arn.clone(),
        public: false,
    })
}

/// Public sharing needs an explicit yes even with --yes: --confirm-public, or the prompt.
async fn confirm_public(
    settings: &Settings,
    args: &ShareArgs,
    places: &[(String, String)],
    ec2: &Ec2,
) -> Result<()> {
    // AWS refuses public sharing while image block public access is on: say so first.
    match ec2.image_block_public_access().await {
        Ok(state) if state == "block-new-sharing" => {
            return Err(anyhow!(
                "image block public access is on in {} (block-new-sharing): AWS would refuse to make {} public; \
                 nothing was changed",
                ec2.region(),
                args.image_id
            ));
        }
        Ok(_) => {}
        Err(why) => tracing::warn!(
            "could not read the image block public access state in {} ({why})",
            ec2.region()
        ),
    }
    if args.confirm_public {
        return Ok(());
    }
    let interactive = settings.can_prompt();
    if !interactive {
        return Err(usage(
            "--public makes the image launchable by every AWS account: add --confirm-public (--yes is not enough); nothing was changed",
        ));
    }
    let list: Vec<String> = places.iter().map(|(r, i)| format!("{i} in {r}")).collect();
    let answer = crate::output::prompt(&format!(
        "Make {} public: launchable by every AWS account{}? Type 'public' to confirm:",
        list.join(", "),
        if args.with_snapshots {
            ", with its snapshots"
        } else {
            ""
        }
    ))?;
    if answer == "public" {
        Ok(())
    } else {
        Err(anyhow!("not confirmed; nothing was changed"))
    }
}

/// What a share did in one region, and whether it changed anything.
pub struct Shared {
    pub share: RegionShare,
    pub changed: bool,
}

/// Shares (or unshares) one image, the one way `share` and `release` both do it: the changes
/// `plan::sharing` computes from what AWS shows now, in its order (the image is never
/// launchable without its volumes). Then reads back what the image and its snapshots are
/// shared with, and fails if that is not what was asked.
pub async fn share_image(
    ec2: &Ec2,
    image_id: &str,
    grantees: &Grantees,
    action: ShareAction,
    with_snapshots: bool,
) -> Result<Shared> {
    // The image may be one this run just made (release): AWS may not know it yet (`settle`).
    let image = ec2.new_image(image_id).await?;
    let reaches = sharing::reaches_snapshots(grantees, with_snapshots);
    let direction = action.direction();
    let mut changed = false;
    if let Some(direction) = direction {
        let snapshots = if reaches {
            snapshot_ids(&image)
        } else {
            Vec::new()
        };
        let access = read_access(ec2, image_id, &snapshots).await?;
        for change in sharing::changes(direction, grantees, &access) {
            make(ec2, &change, direction).await?;
            changed = true;
        }
    }
    // Read back: right after a change AWS may still show the old value, so a read that does
    // not show the change yet is made again, within the bound (`settle`).
    let launch_permissions = ec2
        .read_back(
            || ec2.launch_permissions(image_id),
            |present| {
                !changed
                    || direction.is_none_or(|d| sharing::differs(grantees, present, d).is_empty())
            },
        )
        .await?;
    let mut volumes = Vec::new();
    if with_snapshots {
        for snapshot_id in snapshot_ids(&image) {
            let settled = |volume: &VolumeAccess| {
                !changed
                    || !reaches
                    || direction
                        .is_none_or(|d| sharing::volume_differs(grantees, volume, d).is_empty())
            };
            volumes.push(
                ec2.read_back(|| volume_access(ec2, &snapshot_id), settled)
                    .await?,
            );
        }
    }
    if let Some(direction) = direction {
        verify(
            ec2,
            image_id,
            grantees,
            direction,
            &launch_permissions,
            reaches.then_some(&volumes),
        )?;
    }
    Ok(Shared {
        share: RegionShare {
            region: ec2.region().to_string(),
            image_id: image_id.to_string(),
            launch_permissions: Some(launch_permissions),
            snapshots: volumes
                .into_iter()
                .map(|volume| SnapshotShare {
                    snapshot_id: volume.snapshot_id,
                    accounts: volume.accounts,
                    public: volume.public,
                })
                .collect(),
            error: None,
        },
        changed,
    })
}

/// Makes one change; AWS may not know a just-made image yet (`settle`).
async fn make(ec2: &Ec2, change: &Change, direction: Direction) -> Result<()> {
    let revoke = direction.revokes();
    match change {
        Change::Launch { image_id, grantees } => {
            ec2.once_caught_up(Fresh::Image, || {
                ec2.modify_launch_permissions(image_id, grantees, revoke)
            })
            .await?
        }
        Change::Volume {
            snapshot_id,
            grantees,
        } => {
            ec2.modify_create_volume_permission(
                snapshot_id,
                &grantees.accounts,
                grantees.public,
                revoke,
            )
            .await?
        }
    }
    Ok(())
}

/// What AWS reports now must be what was asked: a grantee written differently from how AWS
/// reports it would otherwise be skipped as "already there" (or "not there") in silence.
fn verify(
    ec2: &Ec2,
    image_id: &str,
    grantees: &Grantees,
    direction: Direction,
    launch: &LaunchPermissions,
    volumes: Option<&Vec<VolumeAccess>>,
) -> Result<()> {
    let mut wrong = Vec::new();
    let left = sharing::differs(grantees, launch, direction);
    if !left.is_empty() {
        wrong.push(format!("launch permission for {}", describe(&left)));
    }
    for volume in volumes.into_iter().flatten() {
        let left = sharing::volume_differs(grantees, volume, direction);
        if !left.is_empty() {
            wrong.push(format!(
                "create-volume permission on {} for {}",
                volume.snapshot_id,
                describe(&left)
            ));
        }
    }
    if wrong.is_empty() {
        return Ok(());
    }
    let state = match direction {
        Direction::Revoke => "still granted",
        Direction::Grant => "not granted",
    };
    Err(anyhow!(
        "{image_id} in {}: {state} after the change: {}",
        ec2.region(),
        wrong.join("; ")
    ))
}

fn describe(grantees: &Grantees) -> String {
    let mut who: Vec<&str> = grantees
        .accounts
        .iter()
        .chain(&grantees.organizations)
        .chain(&grantees.organizational_units)
        .map(String::as_str)
        .collect();
    if grantees.public {
        who.push("everyone (public)");
    }
    who.join(", ")
}

impl Render for ShareOutput {
    fn render(&self, style: &TableStyle) -> String {
        let mut table = style.table(&[
            "REGION",
            "IMAGE ID",
            "PUBLIC",
            "ACCOUNTS",
            "ORGS / OUS",
            "SNAPSHOTS",
        ]);
        for region in &self.regions {
            let (public, accounts, orgs) = match &region.launch_permissions {
                Some(p) => (
                    if p.public { "yes" } else { "no" }.to_string(),
                    p.accounts.join("\n"),
                    p.organizations
                        .iter()
                        .chain(p.organizational_units.iter())
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("\n"),
                ),
                None => (
                    "-".into(),
                    region.error.clone().unwrap_or_default(),
                    String::new(),
                ),
            };
            let snapshots = region
                .snapshots
                .iter()
                .map(|s| {
                    let mut who = s.accounts.clone();
                    if s.public {
                        who.push("public".into());
                    }
                    format!(
                        "{}: {}",
                        s.snapshot_id,
                        if who.is_empty() {
                            "private".to_string()
                        } else {
                            who.join(", ")
                        }
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            table.add_row(vec![
                style.cell(&region.region, None),
                style.cell(&region.image_id, None),
                style.cell(public, None),
                style.cell(accounts, None),
                style.cell(orgs, None),
                style.cell(snapshots, None),
            ]);
        }
        let mut out = table.to_string();
        for note in &self.notes {
            out.push_str(&format!("\nnote: {note}"));
        }
        out
    }
}
