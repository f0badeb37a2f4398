//! Reading an instance-store bundle manifest (ec2-bundle-vol / ec2-bundle-image XML), defensively:
//! anyone with write access to the bucket can write one, and the planner deletes what it lists.
//!
//! Bounded size, depth and part count; no DTD and no entity expansion (quick-xml expands none, and
//! a document with a DOCTYPE is refused outright); every part name must be a plain file name that
//! stays in the manifest's own bucket and prefix.

use quick_xml::Reader;
use quick_xml::events::Event;
use std::fmt;

/// Real manifests are a few KiB (one `<part>` per 10 MB of image); anything near this is hostile.
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;
/// A 200 GB image in 10 MB parts has 20,000 parts.
pub const MAX_PARTS: usize = 20_000;
const MAX_DEPTH: usize = 32;
/// S3 keys are at most 1,024 bytes.
const MAX_PART_NAME: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Part file names as listed, in order (`image.part.00`, ...).
    pub parts: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestError {
    TooLarge(u64),
    NotUtf8,
    HasDtd,
    EntityReference(String),
    TooDeep,
    TooManyParts,
    NoParts,
    Xml(String),
    UnsafePartName(String),
    DuplicatePart(String),
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestError::TooLarge(size) => write!(
                f,
                "manifest is {size} bytes, over the {MAX_MANIFEST_BYTES}-byte limit"
            ),
            ManifestError::NotUtf8 => f.write_str("manifest is not valid UTF-8"),
            ManifestError::HasDtd => f.write_str("manifest has a DTD (refused: entity expansion)"),
            ManifestError::EntityReference(name) => {
                write!(
                    f,
                    "manifest uses the entity &{name}; (entities are not expanded)"
                )
            }
            ManifestError::TooDeep => write!(f, "manifest nests deeper than {MAX_DEPTH} elements"),
            ManifestError::TooManyParts => write!(f, "manifest lists more than {MAX_PARTS} parts"),
            ManifestError::NoParts => f.write_str("manifest lists no parts"),
            ManifestError::Xml(err) => write!(f, "manifest is not valid XML: {err}"),
            ManifestError::UnsafePartName(name) => write!(
                f,
                "part name {name:?} would leave the manifest's bucket and prefix"
            ),
            ManifestError::DuplicatePart(name) => write!(f, "part {name:?} is listed twice"),
        }
    }
}

impl std::error::Error for ManifestError {}

const PART_FILENAME_PATH: [&str; 5] = ["manifest", "image", "parts", "part", "filename"];

pub fn parse_manifest(bytes: &[u8]) -> Result<Manifest, ManifestError> {
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(ManifestError::TooLarge(bytes.len() as u64));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| ManifestError::NotUtf8)?;
    let mut reader = Reader::from_str(text);
    // No trimming: a part name padded with spaces names a different key than its trimmed self,
    // and is refused below rather than quietly "corrected".
    let mut path: Vec<String> = Vec::new();
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|err| ManifestError::Xml(err.to_string()))?;
        match event {
            Event::DocType(_) => return Err(ManifestError::HasDtd),
            Event::Start(start) => {
                if path.len() >= MAX_DEPTH {
                    return Err(ManifestError::TooDeep);
                }
                path.push(start.local_name().as_ref().to_string());
                if path == PART_FILENAME_PATH {
                    current = Some(String::new());
                }
            }
            Event::Empty(_) => {
                if path.len() >= MAX_DEPTH {
                    return Err(ManifestError::TooDeep);
                }
            }
            Event::End(_) => {
                if path == PART_FILENAME_PATH
                    && let Some(name) = current.take()
                {
                    if parts.len() >= MAX_PARTS {
                        return Err(ManifestError::TooManyParts);
                    }
                    parts.push(name);
                }
                path.pop();
            }
            Event::Text(text) => {
                if let Some(name) = current.as_mut() {
                    name.push_str(&text);
                }
            }
            Event::CData(data) => {
                if let Some(name) = current.as_mut() {
                    name.push_str(&data);
                }
            }
            Event::GeneralRef(reference) => {
                let resolved = match reference
                    .resolve_char_ref()
                    .map_err(|err| ManifestError::Xml(err.to_string()))?
                {
                    Some(ch) => ch,
                    None => match &*reference {
                        "lt" => '<',
                        "gt" => '>',
                        "amp" => '&',
                        "apos" => '\'',
                        "quot" => '"',
                        other => return Err(ManifestError::EntityReference(other.to_string())),
                    },
                };
                if let Some(name) = current.as_mut() {
                    name.push(resolved);
                }
            }
            Event::Eof => {
                // A truncated document is not a manifest, whatever it listed so far.
                if let Some(open) = path.last() {
                    return Err(ManifestError::Xml(format!(
                        "the document ends inside <{open}>"
                    )));
                }
                break;
            }
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
        }
    }
    if parts.is_empty() {
        return Err(ManifestError::NoParts);
    }
    let mut seen = std::collections::BTreeSet::new();
    for part in &parts {
        check_part_name(part)?;
        if !seen.insert(part.as_str()) {
            return Err(ManifestError::DuplicatePart(part.clone()));
        }
    }
    Ok(Manifest { parts })
}

/// A part name must be a plain file name: joined to the manifest's prefix it names a key in the
/// same "directory", never a parent, another prefix or another bucket.
fn check_part_name(name: &str) -> Result<(), ManifestError> {
    let unsafe_name = name.is_empty()
        || name.len() > MAX_PART_NAME
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.contains('\\')
        || name.contains("..")
        || name.trim() != name
        || name.starts_with("s3:")
        || name.chars().any(|c| c.is_control());
    if unsafe_name {
        Err(ManifestError::UnsafePartName(name.to_string()))
    } else {
        Ok(())
    }
}

/// `bucket/prefix/name.manifest.xml` (an image's ImageLocation) → bucket, key, and the key prefix
/// its parts live under (`prefix/`, or empty at the bucket's root).
pub fn split_location(location: &str) -> Option<(String, String, String)> {
    let location = location.strip_prefix("s3://").unwrap_or(location);
    let (bucket, key) = location.split_once('/')?;
    if bucket.is_empty() || key.is_empty() || key.ends_with('/') {
        return None;
    }
    let prefix = match key.rfind('/') {
        Some(index) => key[..=index].to_string(),
        None => String::new(),
    };
    Some((bucket.to_string(), key.to_string(), prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(parts: &[&str]) -> String {
        let parts: String = parts
            .iter()
            .enumerate()
            .map(|(i, name)| {
                format!("<part index=\"{i}\"><filename>{name}</filename><digest algorithm=\"SHA1\">ab</digest></part>")
            })
            .collect();
        format!(
            "<?xml version=\"1.0\"?><manifest><version>2007-10-10</version><image><name>img</name>\
             <size>1024</size><parts count=\"{}\">{parts}</parts></image></manifest>",
            parts.len()
        )
    }

    #[test]
    fn lists_parts_in_order() {
        let parsed = parse_manifest(manifest(&["img.part.00", "img.part.01"]).as_bytes()).unwrap();
        assert_eq!(parsed.parts, ["img.part.00", "img.part.01"]);
    }

    #[test]
    fn predefined_and_character_entities_are_fine() {
        let parsed = parse_manifest(manifest(&["a&amp;b.part.&#48;0"]).as_bytes()).unwrap();
        assert_eq!(parsed.parts, ["a&b.part.00"]);
    }

    #[test]
    fn refuses_what_would_leave_the_bundle() {
        for bad in [
            "../victim",
            "..",
            ".",
            "/etc/passwd",
            "sub/part.00",
            "a\\b",
            "s3:other",
            "x..y",
            "",
        ] {
            let xml = manifest(&[bad]);
            assert!(
                matches!(
                    parse_manifest(xml.as_bytes()),
                    Err(ManifestError::UnsafePartName(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn refuses_hostile_documents() {
        let table: Vec<(Vec<u8>, ManifestError)> = vec![
            (
                b"<!DOCTYPE m [<!ENTITY x \"y\">]><manifest/>".to_vec(),
                ManifestError::HasDtd,
            ),
            (
                manifest(&["&x;"]).into_bytes(),
                ManifestError::EntityReference("x".into()),
            ),
            (vec![0xff, 0xfe, b'<'], ManifestError::NotUtf8),
            (
                b"<manifest><image></manifest>".to_vec(),
                ManifestError::Xml(String::new()),
            ),
            (b"<manifest/>".to_vec(), ManifestError::NoParts),
            (
                manifest(&["a.part.00", "a.part.00"]).into_bytes(),
                ManifestError::DuplicatePart("a.part.00".into()),
            ),
            ("<a>".repeat(100).into_bytes(), ManifestError::TooDeep),
            (
                vec![b' '; MAX_MANIFEST_BYTES as usize + 1],
                ManifestError::TooLarge(MAX_MANIFEST_BYTES + 1),
            ),
        ];
        for (input, expected) in table {
            let got = parse_manifest(&input).unwrap_err();
            match (&got, &expected) {
                (ManifestError::Xml(_), ManifestError::Xml(_)) => {}
                _ => assert_eq!(got, expected),
            }
        }
    }

    #[test]
    fn a_truncated_document_is_refused() {
        let whole = manifest(&["a.part.00"]);
        let truncated = whole.replace("</manifest>", "");
        assert!(matches!(
            parse_manifest(truncated.as_bytes()),
            Err(ManifestError::Xml(message)) if message.contains("<manifest>")
        ));
        assert!(matches!(
            parse_manifest(b"<manifest><image>"),
            Err(ManifestError::Xml(_))
        ));
    }

    #[test]
    fn too_many_parts() {
        let names: Vec<String> = (0..=MAX_PARTS).map(|i| format!("p.{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        assert_eq!(
            parse_manifest(manifest(&refs).as_bytes()),
            Err(ManifestError::TooManyParts)
        );
    }

    /// The corpus of hostile manifests (tests/corpus/manifests): every one refused.
    #[test]
    fn every_corpus_manifest_is_refused() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/manifests");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "md") {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            let result = parse_manifest(&bytes);
            assert!(result.is_err(), "{} parsed: {result:?}", path.display());
            seen += 1;
        }
        assert!(seen >= 20, "the corpus is missing: {seen} files");
    }

    #[test]
    fn padded_part_names_are_refused_not_trimmed() {
        for bad in [" victim", "victim ", "img.part.00\n", "\timg"] {
            let xml = manifest(&[bad]);
            assert!(parse_manifest(xml.as_bytes()).is_err(), "{bad:?}");
        }
        // Indentation between elements, as ec2-bundle-image writes it, is fine.
        let pretty = manifest(&["img.part.00"]).replace("><", ">\n  <");
        assert_eq!(
            parse_manifest(pretty.as_bytes()).unwrap().parts,
            ["img.part.00"]
        );
    }

    #[test]
    fn a_hundred_thousand_parts_are_refused_and_a_50_mb_manifest_is_not_read() {
        let names: Vec<String> = (0..100_000).map(|i| format!("img.part.{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let result = parse_manifest(manifest(&refs).as_bytes());
        assert!(
            matches!(
                result,
                Err(ManifestError::TooManyParts) | Err(ManifestError::TooLarge(_))
            ),
            "{result:?}"
        );
        let huge = vec![b'<'; 50 * 1024 * 1024];
        assert_eq!(
            parse_manifest(&huge),
            Err(ManifestError::TooLarge(50 * 1024 * 1024))
        );
    }

    mod fuzz {
        use super::super::*;
        use super::manifest;
        use proptest::prelude::*;

        /// What a parse may return: an error, or part names that stay inside the bundle.
        fn sound(result: Result<Manifest, ManifestError>) -> Result<(), TestCaseError> {
            if let Ok(parsed) = result {
                prop_assert!(!parsed.parts.is_empty() && parsed.parts.len() <= MAX_PARTS);
                for part in &parsed.parts {
                    prop_assert!(check_part_name(part).is_ok(), "{part:?}");
                    prop_assert!(!part.contains('/') && !part.contains(".."), "{part:?}");
                }
            }
            Ok(())
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

            /// Arbitrary bytes: never a panic, never an unsafe part.
            #[test]
            fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
                sound(parse_manifest(&bytes))?;
            }

            /// Arbitrary part names, markup included, in a well-formed manifest.
            #[test]
            fn arbitrary_part_names(names in proptest::collection::vec(".{0,40}", 1..6)) {
                let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                sound(parse_manifest(manifest(&refs).as_bytes()))?;
            }

            /// A valid manifest with bytes overwritten, inserted or cut.
            #[test]
            fn mutated_manifests(
                edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0..3u8), 1..8)
            ) {
                let mut bytes = manifest(&["img.part.00", "img.part.01"]).into_bytes();
                for (at, byte, kind) in edits {
                    let at = at % (bytes.len() + 1);
                    match kind {
                        0 if at < bytes.len() => bytes[at] = byte,
                        1 => bytes.insert(at, byte),
                        _ if at < bytes.len() => {
                            bytes.remove(at);
                        }
                        _ => {}
                    }
                }
                sound(parse_manifest(&bytes))?;
            }
        }
    }

    #[test]
    fn locations() {
        assert_eq!(
            split_location("bkt/a/b/img.manifest.xml"),
            Some(("bkt".into(), "a/b/img.manifest.xml".into(), "a/b/".into()))
        );
        assert_eq!(
            split_location("bkt/img.manifest.xml"),
            Some(("bkt".into(), "img.manifest.xml".into(), String::new()))
        );
        assert_eq!(split_location("bkt"), None);
        assert_eq!(split_location("/key"), None);
        assert_eq!(split_location("bkt/dir/"), None);
    }
}
