//! The reviewed-change workflow: `ami cleanup --plan-out FILE` writes what it would do; `ami apply
//! FILE` does it later, after re-checking every item against the account as it is then. Nothing
//! outside the file is ever deleted, and anything that changed meanwhile is skipped with the reason.

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::Path;

use crate::error::usage;
use crate::model::Image;
use crate::plan::retention::RetireAction;
use crate::plan::retention::{Decision, Verdict};
use crate::plan::{Approval, ItemAction};

use super::CleanupOutput;
use crate::commands::policy::Rule;

const FORMAT: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanFile {
    pub format: u32,
    pub account_id: String,
    pub created: DateTime<Utc>,
    pub regions: Vec<RegionReview>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionReview {
    pub region: String,
    pub images: Vec<ReviewedImage>,
    /// Snapshots the plan deletes.
    pub snapshots: Vec<String>,
    /// S3 objects the plan deletes.
    pub objects: Vec<ReviewedObject>,
    /// Orphaned snapshots the plan deletes.
    pub orphans: Vec<String>,
    /// The keep tags (`KEY=VALUE`) of the rules that made the plan: an image tagged with one
    /// since the review stays. Plans written before this field keep `retain=true`.
    #[serde(default = "default_keep_tags")]
    pub keep_tags: Vec<String>,
}

fn default_keep_tags() -> Vec<String> {
    vec!["retain=true".into()]
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewedImage {
    pub image_id: String,
    pub name: Option<String>,
    pub action: RetireAction,
    /// An image is the one reviewed only if it still has this creation date (ids are not reused,
    /// but this catches a plan applied to the wrong estate).
    pub creation_date: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewedObject {
    pub bucket: String,
    pub key: String,
}

impl PlanFile {
    pub fn from_output(output: &CleanupOutput, rules: &[Rule]) -> Result<PlanFile> {
        let mut keep_tags: Vec<String> = rules
            .iter()
            .map(|rule| {
                let (key, value) = &rule.retention.keep_tag;
                format!("{key}={value}")
            })
            .collect();
        keep_tags.sort();
        keep_tags.dedup();
        let mut account_id = None;
        let mut regions = Vec::new();
        for region in &output.regions {
            if let Some(error) = &region.error {
                return Err(anyhow::anyhow!(
                    "{} could not be planned ({error}); no plan written",
                    region.region
                ));
            }
            account_id = account_id.or(region.account_id.clone());
            let mut images = Vec::new();
            let mut snapshots = Vec::new();
            let mut objects = Vec::new();
            let created = |id: &str| {
                region
                    .decisions
                    .iter()
                    .find(|d| d.image_id == id)
                    .and_then(|d| d.creation_date)
            };
            if let Some(report) = &region.retire {
                for image in report
                    .images
                    .iter()
                    .filter(|i| i.plan.action == crate::plan::ImageAction::Deregister)
                {
                    images.push(ReviewedImage {
                        image_id: image.plan.image_id.clone(),
                        name: image.plan.name.clone(),
                        action: RetireAction::Deregister,
                        creation_date: created(&image.plan.image_id),
                    });
                }
                snapshots.extend(
                    report
                        .snapshots
                        .iter()
                        .filter(|s| s.plan.action == ItemAction::Delete)
                        .map(|s| s.plan.snapshot_id.clone()),
                );
                for bundle in report
                    .bundles
                    .iter()
                    .filter(|b| b.plan.action == ItemAction::Delete)
                {
                    objects.extend(bundle.plan.objects.iter().map(|key| ReviewedObject {
                        bucket: bundle.plan.bucket.clone(),
                        key: key.clone(),
                    }));
                }
            }
            for staged in &region.staged {
                images.push(ReviewedImage {
                    image_id: staged.image_id.clone(),
                    name: None,
                    action: staged.action,
                    creation_date: created(&staged.image_id),
                });
            }
            let orphans = region
                .orphans
                .iter()
                .filter(|o| o.plan.action == ItemAction::Delete)
                .map(|o| o.plan.snapshot_id.clone())
                .collect();
            regions.push(RegionReview {
                region: region.region.clone(),
                images,
                snapshots,
                objects,
                orphans,
                keep_tags: keep_tags.clone(),
            });
        }
        Ok(PlanFile {
            format: FORMAT,
            account_id: account_id.unwrap_or_default(),
            created: Utc::now(),
            regions,
        })
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text + "\n")
            .map_err(|err| anyhow::anyhow!("cannot write the plan to {}: {err}", path.display()))
    }

    pub fn read(path: &Path) -> Result<PlanFile> {
        let shown = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|err| usage(format!("cannot read plan {shown}: {err}")))?;
        let file: PlanFile = serde_json::from_str(&text).map_err(|err| {
            usage(format!(
                "{shown} is not a plan written by `ami cleanup --plan-out`: {err}"
            ))
        })?;
        if file.format != FORMAT {
            return Err(usage(format!(
                "{shown} has plan format {}, this ami reads format {FORMAT}",
                file.format
            )));
        }
        for region in &file.regions {
            crate::config::validate_region(&region.region)?;
            crate::ids::image_ids(
                &region
                    .images
                    .iter()
                    .map(|i| i.image_id.clone())
                    .collect::<Vec<_>>(),
            )?;
        }
        Ok(file)
    }
}

impl RegionReview {
    /// Each reviewed image as it is now: still there and unchanged → retire (the planner then
    /// re-checks its users and protection); otherwise kept with the reason.
    pub fn recheck(&self, images: &[Image]) -> Vec<(Decision, RetireAction)> {
        self.images
            .iter()
            .map(|reviewed| {
                let now = images.iter().find(|i| i.image_id == reviewed.image_id);
                let (verdict, reason) = match now {
                    None => (Verdict::Keep, "gone since the plan was made".to_string()),
                    Some(image) if image.creation_date != reviewed.creation_date => (
                        Verdict::Keep,
                        "changed since the plan was made (creation date differs)".to_string(),
                    ),
                    Some(image) => match self.keep_tag_on(image) {
                        Some(tag) => (
                            Verdict::Keep,
                            format!("tagged {tag} since the plan was made"),
                        ),
                        None => (Verdict::Retire, "in the reviewed plan".to_string()),
                    },
                };
                let decision = Decision {
                    rule: Some("reviewed plan".into()),
                    image_id: reviewed.image_id.clone(),
                    name: now.and_then(|i| i.name.clone()).or(reviewed.name.clone()),
                    family: None,
                    creation_date: now.and_then(|i| i.creation_date),
                    verdict,
                    reason,
                };
                (decision, reviewed.action)
            })
            .collect()
    }

    /// The first of the plan's keep tags the image carries now.
    fn keep_tag_on(&self, image: &Image) -> Option<&str> {
        self.keep_tags
            .iter()
            .find(|tag| {
                tag.split_once('=').is_some_and(|(key, value)| {
                    image.tags.get(key).map(String::as_str) == Some(value)
                })
            })
            .map(String::as_str)
    }

    /// What the reviewed plan approves: its images are re-checked by `recheck`, and nothing
    /// but its snapshots and S3 objects may be deleted.
    pub fn approval(&self) -> Approval {
        Approval {
            images: None,
            snapshots: self.snapshots.iter().map(|id| (id.clone(), None)).collect(),
            objects: self
                .objects
                .iter()
                .map(|o| (o.bucket.clone(), o.key.clone()))
                .collect::<BTreeSet<_>>(),
        }
    }
}
