//! Checking identifiers and names before any call, so a typo is an error naming the value, with
//! nothing changed.

use anyhow::Result;

use crate::error::usage;

const KINDS: [(&str, &str); 9] = [
    ("ami-", "an AMI id"),
    ("subnet-", "a subnet id"),
    ("sg-", "a security group id"),
    ("snap-", "a snapshot id"),
    ("i-", "an instance id"),
    ("vol-", "a volume id"),
    ("lt-", "a launch template id"),
    ("aki-", "a kernel id"),
    ("ari-", "a ramdisk id"),
];

/// `PREFIX` followed by 8 or 17 lowercase hex digits, as EC2 ids are.
fn is_ec2_id(raw: &str, prefix: &str) -> bool {
    raw.strip_prefix(prefix).is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17)
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn check(raw: &str, prefix: &str, what: &str) -> Result<(), String> {
    if is_ec2_id(raw, prefix) {
        return Ok(());
    }
    let other = KINDS
        .iter()
        .find(|(other, _)| *other != prefix && raw.starts_with(other))
        .map(|(_, kind)| *kind);
    Err(match other {
        Some(kind) => format!("'{raw}' is {kind}, not {what}"),
        None => format!("'{raw}' is not {what} (expected {prefix} and 8 or 17 hex digits)"),
    })
}

/// Every id checked; all problems reported at once.
pub fn image_ids(ids: &[String]) -> Result<Vec<String>> {
    let problems: Vec<String> = ids
        .iter()
        .filter_map(|id| check(id, "ami-", "an AMI id").err())
        .collect();
    if !problems.is_empty() {
        return Err(usage(format!(
            "{}; nothing was changed",
            problems.join("; ")
        )));
    }
    let mut unique: Vec<String> = Vec::new();
    for id in ids {
        if !unique.contains(id) {
            unique.push(id.clone());
        }
    }
    Ok(unique)
}

pub fn image_id(raw: &str) -> Result<()> {
    check(raw, "ami-", "an AMI id").map_err(usage)
}

pub fn instance_id(raw: &str) -> Result<()> {
    check(raw, "i-", "an instance id").map_err(usage)
}

pub fn subnet_id(raw: &str) -> Result<()> {
    check(raw, "subnet-", "a subnet id").map_err(usage)
}

pub fn security_group_id(raw: &str) -> Result<()> {
    check(raw, "sg-", "a security group id").map_err(usage)
}

pub fn snapshot_id(raw: &str) -> Result<()> {
    check(raw, "snap-", "a snapshot id").map_err(usage)
}

pub fn account_id(raw: &str) -> Result<()> {
    if raw.len() == 12 && raw.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(usage(format!(
            "'{raw}' is not an AWS account id (12 digits)"
        )))
    }
}

/// AMI names: 3 to 128 characters of letters, digits and `( ) [ ] . / - ' @ _` and space.
pub fn image_name(raw: &str) -> Result<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "()[] ./-'@_".contains(c);
    if (3..=128).contains(&raw.len()) && raw.chars().all(allowed) {
        Ok(())
    } else {
        Err(usage(format!(
            "'{raw}' is not a valid AMI name (3 to 128 letters, digits, spaces and ( ) [ ] . / - ' @ _)"
        )))
    }
}

/// `arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME`.
pub fn role_arn(raw: &str) -> Result<()> {
    let ok = raw
        .strip_prefix("arn:")
        .and_then(|rest| rest.split_once(":iam::"))
        .and_then(|(_, rest)| rest.split_once(":role/"))
        .is_some_and(|(account, name)| {
            account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) && !name.is_empty()
        });
    if ok {
        Ok(())
    } else {
        Err(usage(format!(
            "'{raw}' is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)"
        )))
    }
}

/// IAM role names: 1 to 64 of letters, digits and `+=,.@_-` (a path may precede the name).
pub fn role_name(raw: &str) -> Result<()> {
    let name = raw.rsplit('/').next().unwrap_or_default();
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(usage(format!(
            "'{raw}' is not an IAM role name (1 to 64 letters, digits and +=,.@_-)"
        )))
    }
}

pub fn organization_arn(raw: &str) -> Result<()> {
    if raw.starts_with("arn:")
        && raw.contains(":organizations::")
        && raw.contains(":organization/o-")
    {
        Ok(())
    } else {
        Err(usage(format!(
            "'{raw}' is not an organization ARN (arn:aws:organizations::ACCOUNT:organization/o-...)"
        )))
    }
}

pub fn organizational_unit_arn(raw: &str) -> Result<()> {
    if raw.starts_with("arn:") && raw.contains(":organizations::") && raw.contains(":ou/o-") {
        Ok(())
    } else {
        Err(usage(format!(
            "'{raw}' is not an organizational unit ARN (arn:aws:organizations::ACCOUNT:ou/o-.../ou-...)"
        )))
    }
}

/// An SSM parameter name as Parameter Store accepts it: letters, digits and `_ . -`, or a path
/// of those (`/a/b`, leading slash, at most 15 levels), up to 950 characters, not beginning
/// with `aws` or `ssm` (reserved).
pub fn ssm_parameter_name(raw: &str) -> Result<()> {
    let segment_ok = |segment: &str| {
        !segment.is_empty()
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    };
    let (path, segments): (bool, Vec<&str>) = match raw.strip_prefix('/') {
        Some(rest) => (true, rest.split('/').collect()),
        None => (false, vec![raw]),
    };
    let first = segments
        .first()
        .copied()
        .unwrap_or_default()
        .to_ascii_lowercase();
    // AWS counts 1,011 characters with the parameter's ARN (about 60 for the longest region).
    let why = if raw.is_empty() || raw.len() > 950 {
        Some("1 to 950 characters, so that its ARN stays within AWS's 1,011")
    } else if !path && raw.contains('/') {
        Some("a path must begin with '/'")
    } else if !segments.iter().all(|segment| segment_ok(segment)) {
        Some("letters, digits and _ . - (a path: /a/b)")
    } else if segments.len() > 15 {
        Some("at most 15 levels")
    } else if first.starts_with("aws") || first.starts_with("ssm") {
        Some("names beginning with 'aws' or 'ssm' are reserved")
    } else {
        None
    };
    match why {
        None => Ok(()),
        Some(why) => Err(usage(format!(
            "'{raw}' is not a valid SSM parameter name ({why})"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_ids_are_validated_before_anything_happens() {
        let ok = image_ids(&["ami-0123456789abcdef0".into(), "ami-12345678".into()]);
        assert_eq!(ok.unwrap().len(), 2);
        let deduped = image_ids(&["ami-12345678".into(), "ami-12345678".into()]);
        assert_eq!(deduped.unwrap(), ["ami-12345678"]);
        let table = [
            ("snap-0123456789abcdef0", "is a snapshot id, not an AMI id"),
            ("i-0123456789abcdef0", "is an instance id"),
            ("ami-123", "is not an AMI id"),
            ("ami-0123456789ABCDEF0", "is not an AMI id"),
            ("ami-0123456789abcdefg", "is not an AMI id"),
            ("", "is not an AMI id"),
        ];
        for (id, message) in table {
            let err = image_ids(&["ami-12345678".into(), id.into()]).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(message), "{id}: {text}");
            assert!(text.contains(&format!("'{id}'")), "{text}");
        }
    }

    #[test]
    fn other_ids_and_names() {
        assert!(instance_id("i-0123456789abcdef0").is_ok());
        assert!(
            instance_id("ami-0123456789abcdef0")
                .unwrap_err()
                .to_string()
                .contains("is an AMI id")
        );
        assert!(snapshot_id("snap-01234567").is_ok());
        assert!(
            snapshot_id("vol-01234567")
                .unwrap_err()
                .to_string()
                .contains("a volume id")
        );
        assert!(account_id("111122223333").is_ok());
        for bad in ["11112222333", "1111222233334", "11112222333a", ""] {
            assert!(account_id(bad).is_err(), "{bad}");
        }
        assert!(image_name("web-2026.01 (final) [x]").is_ok());
        for bad in ["ab", "a*b-wildcard", "name\\back", &"x".repeat(129)] {
            assert!(image_name(bad).is_err(), "{bad}");
        }
        assert!(
            organization_arn("arn:aws:organizations::111122223333:organization/o-abcdefghij")
                .is_ok()
        );
        assert!(organization_arn("o-abcdefghij").is_err());
        assert!(
            organizational_unit_arn(
                "arn:aws:organizations::111122223333:ou/o-abcdefghij/ou-ab12-cdef3456"
            )
            .is_ok()
        );
        assert!(
            organizational_unit_arn("arn:aws:organizations::111122223333:organization/o-x")
                .is_err()
        );
    }

    #[test]
    fn ssm_parameter_names() {
        for good in ["golden-ami", "/images/web/latest", "/a.b/c_d-e", "x"] {
            assert!(ssm_parameter_name(good).is_ok(), "{good}");
        }
        let table = [
            ("", "1 to 950"),
            ("images/web", "must begin with '/'"),
            ("/images//web", "letters, digits"),
            ("/images/web/", "letters, digits"),
            ("web ami", "letters, digits"),
            ("/aws/service/ami", "reserved"),
            ("SSM-thing", "reserved"),
            ("awsome", "reserved"),
        ];
        for (name, why) in table {
            let text = ssm_parameter_name(name).unwrap_err().to_string();
            assert!(
                text.contains(why) && text.contains(&format!("'{name}'")),
                "{name}: {text}"
            );
        }
        let deep = "/a".repeat(16);
        assert!(
            ssm_parameter_name(&deep)
                .unwrap_err()
                .to_string()
                .contains("15 levels")
        );
        assert!(ssm_parameter_name(&"x".repeat(950)).is_ok());
        assert!(ssm_parameter_name(&"x".repeat(951)).is_err());
    }
}
