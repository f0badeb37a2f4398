//! `ami share AMI_ID`: launch permissions for accounts, organizations, OUs or everyone, and
//! create-volume permission on the image's snapshots. With no grantee, shows who has access.

use anyhow::{Result, anyhow};
use futures::{StreamExt, stream};
use serde::Serialize;
use std::io::{BufRead, Write};

use crate::aws::settle::Fresh;
use crate::aws::sharing::Grantees;
use crate::aws::{Aws, Ec2};
use crate::cli::{GranteeArgs, ShareArgs};
use crate::config::Settings;
use crate::error::{Outcome, one_line, usage};
use crate::model::LaunchPermissions;
use crate::output::{Render, TableStyle};

use super::dry_run::{DryRunReport, OrDryRun, PlannedCall};

const REGION_CONCURRENCY: usize = 8;

/// What `share` was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShareAction {
    /// Only show who may launch the image.
    Show,
    Grant,
    Revoke,
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
    let mut images = vec![image.clone()];
    let mut unread = 0;
    if args.all_copies {
        let copies = super::copies::copies_everywhere(&aws, region, &image).await?;
        images.extend(copies.images.iter().cloned());
        if copies.images.is_empty() {
            notes.push(format!(
                "{} has no copies in the account's enabled regions (a copy made moments ago may \
                 not be listed yet)",
                image.image_id
            ));
        }
        unread = copies.unread.len();
        for (other, why) in copies.unread {
            notes.push(format!(
                "{other}: could not be searched for copies, none changed there: {why}"
            ));
        }
    }
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
    if action != ShareAction::Show && settings.dry_run {
        return dry_run(&aws, args, &grantees, places, notes, unread > 0).await;
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
        .buffer_unordered(REGION_CONCURRENCY)
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

/// The calls a grant or revoke would make in every place, with AWS's DryRun answer for each.
async fn dry_run(
    aws: &Aws,
    args: &ShareArgs,
    grantees: &Grantees,
    places: Vec<(String, String)>,
    notes: Vec<String>,
    incomplete: bool,
) -> Result<(OrDryRun<ShareOutput>, Outcome)> {
    let verb = if args.revoke { "remove" } else { "add" };
    let snapshot_grant = args.with_snapshots && (!grantees.accounts.is_empty() || grantees.public);
    // As the real run does (`to_send`): only what is missing is granted; every grantee named is
    // revoked.
    type Checked = (Vec<PlannedCall>, Option<String>);
    let checks: Vec<Result<Checked>> = stream::iter(places)
        .map(|(region, image_id)| {
            let ec2 = aws.ec2(&region);
            async move {
                let mut calls = Vec::new();
                let present = ec2.launch_permissions(&image_id).await?;
                let launch = to_send(grantees, &present, args.revoke);
                if !launch.is_empty() {
                    calls.push(PlannedCall {
                        region: region.clone(),
                        call: "ec2:ModifyImageAttribute".to_string(),
                        target: format!("{image_id} launchPermission {verb} {}", describe(&launch)),
                        aws: ec2
                            .check_launch_permissions(&image_id, &launch, args.revoke)
                            .await?,
                    });
                }
                if snapshot_grant {
                    let image = ec2
                        .describe_image(&image_id)
                        .await?
                        .ok_or_else(|| anyhow!("{image_id} not found in {region}"))?;
                    for snapshot in image
                        .block_devices
                        .iter()
                        .filter_map(|d| d.snapshot_id.as_ref())
                    {
                        let (accounts, public) = ec2.create_volume_permissions(snapshot).await?;
                        let volume = volume_to_send(grantees, accounts, public, args.revoke);
                        if volume.is_empty() {
                            continue;
                        }
                        let check = ec2
                            .check_create_volume_permission(
                                snapshot,
                                &volume.accounts,
                                volume.public,
                                args.revoke,
                            )
                            .await?;
                        calls.push(PlannedCall {
                            region: region.clone(),
                            call: "ec2:ModifySnapshotAttribute".to_string(),
                            target: format!(
                                "{snapshot} createVolumePermission {verb} {}",
                                describe(&volume)
                            ),
                            aws: check,
                        });
                    }
                }
                let unchanged = calls.is_empty().then(|| {
                    format!(
                        "{image_id} in {region} is already shared with {}: nothing to change",
                        describe(grantees)
                    )
                });
                Ok((calls, unchanged))
            }
        })
        .buffer_unordered(REGION_CONCURRENCY)
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
    if grantees.public && !args.revoke && !args.confirm_public {
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

/// Consumer accounts read at once, each through its own role.
const CONSUMER_CONCURRENCY: usize = 8;

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
        .buffer_unordered(CONSUMER_CONCURRENCY)
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
    let mut stderr = std::io::stderr();
    write!(
        stderr,
        "Make {} public: launchable by every AWS account{}? Type 'public' to confirm: ",
        list.join(", "),
        if args.with_snapshots {
            ", with its snapshots"
        } else {
            ""
        }
    )?;
    stderr.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() == "public" {
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

/// Shares (or unshares) one image, the one way `share` and `release` both do it: only what is
/// missing is granted and only what is there is revoked, so a re-run changes nothing. Granting
/// gives the snapshots first, revoking takes the image first: the image is never launchable
/// without its volumes. Then reads back what the image and its snapshots are shared with.
pub async fn share_image(
    ec2: &Ec2,
    image_id: &str,
    grantees: &Grantees,
    action: ShareAction,
    with_snapshots: bool,
) -> Result<Shared> {
    // The image may be one this run just made (release): AWS may not know it yet (`settle`).
    let image = ec2.new_image(image_id).await?;
    let snapshot_ids: Vec<String> = image
        .block_devices
        .iter()
        .filter_map(|device| device.snapshot_id.clone())
        .collect();
    // Organizations and OUs cannot be given create-volume permission.
    let snapshot_share = with_snapshots && (!grantees.accounts.is_empty() || grantees.public);
    let mut changed = false;
    let revoke = match action {
        ShareAction::Show => None,
        ShareAction::Grant => Some(false),
        ShareAction::Revoke => Some(true),
    };
    let volume_permissions = |snapshot: &str| {
        let snapshot = snapshot.to_string();
        async move {
            ec2.once_caught_up(Fresh::Snapshot, || ec2.create_volume_permissions(&snapshot))
                .await
                .map_err(anyhow::Error::from)
        }
    };
    if let Some(revoke) = revoke {
        let current = ec2
            .once_caught_up(Fresh::Image, || ec2.launch_permissions(image_id))
            .await?;
        let launch = to_send(grantees, &current, revoke);
        let modify_launch = || async {
            ec2.once_caught_up(Fresh::Image, || {
                ec2.modify_launch_permissions(image_id, &launch, revoke)
            })
            .await
        };
        if revoke && !launch.is_empty() {
            modify_launch().await?;
            changed = true;
        }
        if snapshot_share {
            for snapshot in &snapshot_ids {
                let (accounts, public) = volume_permissions(snapshot).await?;
                let volume = volume_to_send(grantees, accounts, public, revoke);
                if !volume.is_empty() {
                    ec2.modify_create_volume_permission(
                        snapshot,
                        &volume.accounts,
                        volume.public,
                        revoke,
                    )
                    .await?;
                    changed = true;
                }
            }
        }
        if !revoke && !launch.is_empty() {
            modify_launch().await?;
            changed = true;
        }
    }
    // Read back: right after a change AWS may still show the old value, so a read that does
    // not show the change yet is made again, within the bound (`settle`).
    let settled = |present: &LaunchPermissions| {
        revoke.is_none_or(|revoke| to_change(grantees, present, revoke).is_empty())
    };
    let launch_permissions = ec2
        .read_back(
            || ec2.launch_permissions(image_id),
            |p| !changed || settled(p),
        )
        .await?;
    let mut snapshots = Vec::new();
    if with_snapshots {
        for snapshot in snapshot_ids {
            let settled = |(accounts, public): &(Vec<String>, bool)| {
                !changed
                    || !snapshot_share
                    || revoke.is_none_or(|revoke| {
                        volume_change(grantees, accounts.clone(), *public, revoke).is_empty()
                    })
            };
            let (accounts, public) = ec2
                .read_back(|| volume_permissions(&snapshot), settled)
                .await?;
            snapshots.push(SnapshotShare {
                snapshot_id: snapshot,
                accounts,
                public,
            });
        }
    }
    // What AWS reports now must be what was asked: a grantee written differently from how AWS
    // reports it would otherwise be skipped as "already there" (or "not there") in silence.
    if let Some(revoke) = revoke {
        let mut wrong = Vec::new();
        let left = to_change(grantees, &launch_permissions, revoke);
        if !left.is_empty() {
            wrong.push(format!("launch permission for {}", describe(&left)));
        }
        if snapshot_share {
            for snapshot in &snapshots {
                let volume =
                    volume_change(grantees, snapshot.accounts.clone(), snapshot.public, revoke);
                if !volume.is_empty() {
                    wrong.push(format!(
                        "create-volume permission on {} for {}",
                        snapshot.snapshot_id,
                        describe(&volume)
                    ));
                }
            }
        }
        if !wrong.is_empty() {
            let state = if revoke {
                "still granted"
            } else {
                "not granted"
            };
            return Err(anyhow!(
                "{image_id} in {}: {state} after the change: {}",
                ec2.region(),
                wrong.join("; ")
            ));
        }
    }
    Ok(Shared {
        share: RegionShare {
            region: ec2.region().to_string(),
            image_id: image_id.to_string(),
            launch_permissions: Some(launch_permissions),
            snapshots,
            error: None,
        },
        changed,
    })
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

/// The same for a snapshot's create-volume permission, which only accounts and the public can
/// have (not organizations or OUs).
fn volume_change(
    grantees: &Grantees,
    accounts: Vec<String>,
    public: bool,
    revoke: bool,
) -> Grantees {
    let present = LaunchPermissions {
        public,
        accounts,
        ..Default::default()
    };
    Grantees {
        organizations: Vec::new(),
        organizational_units: Vec::new(),
        ..to_change(grantees, &present, revoke)
    }
}

/// What a grant or revoke sends. Granting: the grantees not yet present. Revoking: every grantee
/// named, present or not (removing one that is not there changes nothing): a grant made moments
/// ago may not show in the read yet, and must not survive the revoke.
fn to_send(grantees: &Grantees, present: &LaunchPermissions, revoke: bool) -> Grantees {
    if revoke {
        grantees.clone()
    } else {
        to_change(grantees, present, false)
    }
}

/// `to_send` for a snapshot's create-volume permission (accounts and the public only).
fn volume_to_send(
    grantees: &Grantees,
    accounts: Vec<String>,
    public: bool,
    revoke: bool,
) -> Grantees {
    if revoke {
        Grantees {
            accounts: grantees.accounts.clone(),
            organizations: Vec::new(),
            organizational_units: Vec::new(),
            public: grantees.public,
        }
    } else {
        volume_change(grantees, accounts, public, false)
    }
}

/// What differs from what was asked. Granting: the grantees not yet present. Revoking: the
/// grantees present.
fn to_change(grantees: &Grantees, present: &LaunchPermissions, revoke: bool) -> Grantees {
    let pick = |wanted: &[String], there: &[String]| -> Vec<String> {
        wanted
            .iter()
            .filter(|w| there.contains(w) == revoke)
            .cloned()
            .collect()
    };
    Grantees {
        accounts: pick(&grantees.accounts, &present.accounts),
        organizations: pick(&grantees.organizations, &present.organizations),
        organizational_units: pick(
            &grantees.organizational_units,
            &present.organizational_units,
        ),
        public: grantees.public && present.public == revoke,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn grantees(accounts: &[&str], organizations: &[&str], public: bool) -> Grantees {
        Grantees {
            accounts: accounts.iter().map(|a| a.to_string()).collect(),
            organizations: organizations.iter().map(|o| o.to_string()).collect(),
            organizational_units: Vec::new(),
            public,
        }
    }

    #[test]
    fn grant_adds_only_what_is_missing_and_revoke_removes_only_what_is_there() {
        const ORG: &str = "arn:aws:organizations::111111111111:organization/o-abc";
        let present = LaunchPermissions {
            public: true,
            accounts: vec!["111111111111".into()],
            organizations: vec![ORG.into()],
            organizational_units: Vec::new(),
        };
        let asked = grantees(&["111111111111", "222222222222"], &[ORG], true);
        // Table: revoke? → what changes.
        let cases = [
            (false, grantees(&["222222222222"], &[], false)),
            (true, grantees(&["111111111111"], &[ORG], true)),
        ];
        for (revoke, expected) in cases {
            assert_eq!(
                to_change(&asked, &present, revoke),
                expected,
                "revoke: {revoke}"
            );
        }
        // Nothing shared yet: a grant is everything asked, a revoke nothing.
        let nothing = LaunchPermissions::default();
        assert_eq!(to_change(&asked, &nothing, false), asked);
        assert!(to_change(&asked, &nothing, true).is_empty());
        // Snapshots: organizations and OUs are never asked of them.
        assert_eq!(
            volume_change(&asked, vec!["111111111111".into()], false, false),
            grantees(&["222222222222"], &[], true)
        );
        assert!(volume_change(&asked, Vec::new(), false, true).is_empty());
        // What is sent: a revoke names every grantee, whatever the (maybe stale) read shows.
        assert_eq!(to_send(&asked, &nothing, true), asked);
        assert_eq!(
            to_send(&asked, &present, false),
            grantees(&["222222222222"], &[], false)
        );
        assert_eq!(
            volume_to_send(&asked, Vec::new(), false, true),
            grantees(&["111111111111", "222222222222"], &[], true)
        );
    }
}
