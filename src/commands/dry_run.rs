//! What `--dry-run` prints for the verbs that make or change images (create, register, copy,
//! share): the calls a real run would make, each with AWS's own DryRun answer where the action
//! has one. Nothing is changed: the clients of a dry run refuse any other call (`aws::guard`).

use serde::Serialize;

use crate::cli::NewImageArgs;
use crate::error::Outcome;
use crate::model::DryRunCheck;
use crate::output::{Render, TableStyle};

#[derive(Debug, Serialize)]
pub struct DryRunReport {
    /// Always true: tells this document from the verb's real result.
    pub dry_run: bool,
    pub calls: Vec<PlannedCall>,
    pub notes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct PlannedCall {
    pub region: String,
    /// `ec2:CreateImage`, ...
    pub call: String,
    /// What the call acts on, and with what.
    pub target: String,
    /// `check`: allowed | denied | not_checked, with `reason` for the last two.
    #[serde(flatten)]
    pub aws: DryRunCheck,
}

impl DryRunReport {
    pub fn new() -> DryRunReport {
        DryRunReport {
            dry_run: true,
            calls: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn call(&mut self, region: &str, call: &str, target: impl Into<String>, aws: DryRunCheck) {
        self.calls.push(PlannedCall {
            region: region.to_string(),
            call: call.to_string(),
            target: target.into(),
            aws,
        });
    }

    /// Protection and deprecation act on the new image, which a dry run does not make.
    pub fn new_image_follow_ups(&mut self, region: &str, args: &NewImageArgs) {
        let later = || DryRunCheck::NotChecked("the image does not exist yet".into());
        if args.protect {
            self.call(
                region,
                "ec2:EnableImageDeregistrationProtection",
                "the new image",
                later(),
            );
        }
        if let Some(after) = args.deprecate_after {
            self.call(
                region,
                "ec2:EnableImageDeprecation",
                format!("the new image, in {}", crate::duration::format(after)),
                later(),
            );
        }
    }

    /// A call AWS would refuse fails the dry run, as it would fail the real one.
    pub fn outcome(&self) -> Outcome {
        if self
            .calls
            .iter()
            .any(|call| matches!(call.aws, DryRunCheck::Denied(_)))
        {
            Outcome::Failed
        } else {
            Outcome::Success
        }
    }
}

impl Render for DryRunReport {
    fn render(&self, style: &TableStyle) -> String {
        let mut table = style.table(&["REGION", "CALL", "TARGET", "AWS DRY RUN"]);
        for call in &self.calls {
            let (check, color) = match &call.aws {
                DryRunCheck::Allowed => ("allowed".to_string(), None),
                DryRunCheck::Denied(why) => {
                    (format!("denied: {why}"), Some(comfy_table::Color::Red))
                }
                DryRunCheck::NotChecked(why) => (format!("not checked: {why}"), None),
            };
            table.add_row(vec![
                style.cell(&call.region, None),
                style.cell(&call.call, None),
                style.cell(&call.target, None),
                style.cell(check, color),
            ]);
        }
        let mut out = format!("Dry run: these calls would be made; nothing was changed.\n{table}");
        for note in &self.notes {
            out.push_str(&format!("\nnote: {note}"));
        }
        out
    }
}

/// A verb's document: its real result, or what its dry run found.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum OrDryRun<T> {
    Real(T),
    DryRun(DryRunReport),
}

impl<T: Render> Render for OrDryRun<T> {
    fn render(&self, style: &TableStyle) -> String {
        match self {
            OrDryRun::Real(output) => output.render(style),
            OrDryRun::DryRun(report) => report.render(style),
        }
    }
}
