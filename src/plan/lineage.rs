//! Where images came from, by what AWS records (DescribeImages' SourceImageId and
//! SourceImageRegion, GetImageAncestry's chains): an image's copies, what was built on a base,
//! and the estate as a forest. Names are never used here: an unrelated image may share one, and
//! a copy may have been made under another.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::model::{AncestryEntry, Image, ImageRef, Origin};

/// Images of one or more regions, indexed by where each came from.
pub struct Lineage<'a> {
    images: Vec<&'a Image>,
    /// A listed image's index, by id (ids are unique across regions).
    by_id: HashMap<&'a str, usize>,
    /// Source id → the listed images made from it, copies and builds.
    children: HashMap<&'a str, Vec<usize>>,
    /// Image id → its source, from the listed images and from ancestry chains (which also know
    /// sources of images no longer listed).
    parent: HashMap<String, ImageRef>,
    /// Ids whose own record was read: listed, or an entry of a chain.
    known: BTreeSet<String>,
}

/// How an image descends from the one asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descendant<'a> {
    pub image: &'a Image,
    /// 1 for an image made from it directly.
    pub generation: usize,
    /// Every step was a copy (the same image in another place) rather than a build.
    pub copy: bool,
}

/// One image of the forest, with the listed images made from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree<'a> {
    pub image: &'a Image,
    pub children: Vec<Tree<'a>>,
}

impl<'a> Lineage<'a> {
    pub fn new(images: &'a [Image]) -> Lineage<'a> {
        Lineage::with_chains(images, &[])
    }

    /// With ancestry chains (GetImageAncestry) for images whose source is not listed: a chain
    /// runs on through ancestors that are gone or not the caller's.
    pub fn with_chains(images: &'a [Image], chains: &[Vec<AncestryEntry>]) -> Lineage<'a> {
        let mut lineage = Lineage {
            images: images.iter().collect(),
            by_id: HashMap::new(),
            children: HashMap::new(),
            parent: HashMap::new(),
            known: BTreeSet::new(),
        };
        // Oldest first, so children and trees read in the order they were made.
        lineage
            .images
            .sort_by(|a, b| (a.creation_date, &a.image_id).cmp(&(b.creation_date, &b.image_id)));
        for entry in chains.iter().flatten() {
            lineage.known.insert(entry.image_id.clone());
            if let (Some(id), Some(region)) = (&entry.source_image_id, &entry.source_image_region) {
                lineage.parent.insert(
                    entry.image_id.clone(),
                    ImageRef {
                        region: region.clone(),
                        image_id: id.clone(),
                    },
                );
            }
        }
        for (index, image) in lineage.images.iter().enumerate() {
            lineage.by_id.insert(image.image_id.as_str(), index);
            lineage.known.insert(image.image_id.clone());
            if let Some(source) = image.source() {
                lineage.parent.insert(image.image_id.clone(), source);
            }
            if let Some(source) = image.source_image_id.as_deref() {
                lineage.children.entry(source).or_default().push(index);
            }
        }
        lineage
    }

    pub fn get(&self, image_id: &str) -> Option<&'a Image> {
        self.by_id.get(image_id).map(|&index| self.images[index])
    }

    /// The listed images copied from `image_id`, and copies of those, oldest first: the same
    /// image in other places. Not the images built from it (an instance launched from it and
    /// imaged), and not the image it was itself copied from.
    pub fn copies_of(&self, image_id: &str) -> Vec<&'a Image> {
        let mut found = Vec::new();
        let mut seen = BTreeSet::from([image_id.to_string()]);
        let mut queue = vec![image_id.to_string()];
        while let Some(current) = queue.pop() {
            for &index in self.children.get(current.as_str()).into_iter().flatten() {
                let child = self.images[index];
                if matches!(child.origin(), Origin::Copied(_))
                    && seen.insert(child.image_id.clone())
                {
                    found.push(child);
                    queue.push(child.image_id.clone());
                }
            }
        }
        found.sort_by(|a, b| (a.creation_date, &a.image_id).cmp(&(b.creation_date, &b.image_id)));
        found
    }

    /// Every listed image whose ancestry passes through `image_id`: built on it or copied from
    /// it, at any remove. An image whose chain cannot be followed to the end (a source neither
    /// listed nor in a chain) is not counted: `unresolved` names those.
    pub fn descendants_of(&self, image_id: &str) -> Vec<Descendant<'a>> {
        let mut found: Vec<Descendant<'a>> = self
            .images
            .iter()
            .filter(|image| image.image_id != image_id)
            .filter_map(|&image| {
                let mut generation = 0;
                let mut copy = true;
                let mut current = image.image_id.clone();
                let mut seen = BTreeSet::new();
                while seen.insert(current.clone()) {
                    let parent = self.parent.get(&current)?;
                    generation += 1;
                    // A listed image says whether it is a copy; a chain entry does not, and
                    // counts as built.
                    copy &= self
                        .get(&current)
                        .is_some_and(|i| matches!(i.origin(), Origin::Copied(_)));
                    if parent.image_id == image_id {
                        return Some(Descendant {
                            image,
                            generation,
                            copy,
                        });
                    }
                    current = parent.image_id.clone();
                }
                None
            })
            .collect();
        found.sort_by(|a, b| {
            (a.generation, a.image.creation_date, &a.image.image_id).cmp(&(
                b.generation,
                b.image.creation_date,
                &b.image.image_id,
            ))
        });
        found
    }

    /// The listed images whose line cannot be followed to its root: it reaches a source that is
    /// neither listed nor in a chain (gone, or not the caller's). GetImageAncestry tells more.
    pub fn unresolved(&self) -> Vec<&'a Image> {
        self.images
            .iter()
            .copied()
            .filter(|image| {
                let mut current = image.image_id.clone();
                let mut seen = BTreeSet::new();
                while seen.insert(current.clone()) {
                    match self.parent.get(&current) {
                        Some(parent) => current = parent.image_id.clone(),
                        None => return !self.known.contains(&current),
                    }
                }
                false
            })
            .collect()
    }

    /// The listed images as a forest: each under the listed image it was made from; the others
    /// (no recorded source, or a source not listed) are roots.
    pub fn forest(&self) -> Vec<Tree<'a>> {
        let mut children_of: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        let mut roots = Vec::new();
        for (index, image) in self.images.iter().enumerate() {
            match image
                .source_image_id
                .as_deref()
                .and_then(|source| self.by_id.get(source))
            {
                Some(&parent) if parent != index => {
                    children_of.entry(parent).or_default().push(index)
                }
                _ => roots.push(index),
            }
        }
        fn grow<'a>(
            lineage: &Lineage<'a>,
            children_of: &BTreeMap<usize, Vec<usize>>,
            index: usize,
            depth: usize,
        ) -> Tree<'a> {
            // Sources are recorded by AWS, so a cycle cannot happen; the depth bound says so.
            let children = if depth > 64 {
                Vec::new()
            } else {
                children_of
                    .get(&index)
                    .into_iter()
                    .flatten()
                    .map(|&child| grow(lineage, children_of, child, depth + 1))
                    .collect()
            };
            Tree {
                image: lineage.images[index],
                children,
            }
        }
        roots
            .into_iter()
            .map(|index| grow(self, &children_of, index, 0))
            .collect()
    }
}

/// The source image a CopyImage snapshot's description names (`Copied for DestinationAmi ami-x
/// from SourceAmi ami-y for SourceSnapshot ...`): the lineage of copies made before AWS recorded
/// SourceImageId on images.
pub fn copied_from_by_description(description: &str) -> Option<&str> {
    let rest = description.split(" from SourceAmi ").nth(1)?;
    let id = rest.split_whitespace().next()?.trim_end_matches('.');
    id.starts_with("ami-").then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::fixture::image;

    fn ids(images: &[&Image]) -> Vec<String> {
        images.iter().map(|i| i.image_id.clone()).collect()
    }

    /// base (us-east-1, registered) → app (built on it) → app copied to eu-west-1 under another
    /// name → that copy copied on to ap-south-1; an unrelated image named like app in us-west-2;
    /// app2 built on app.
    fn estate() -> Vec<Image> {
        vec![
            image("ami-base").name("base").build(),
            image("ami-app")
                .name("app")
                .built_from("us-east-1", "ami-base", "i-1")
                .build(),
            image("ami-app-eu")
                .region("eu-west-1")
                .name("app-renamed")
                .copied_from("us-east-1", "ami-app")
                .build(),
            image("ami-app-ap")
                .region("ap-south-1")
                .name("app")
                .copied_from("eu-west-1", "ami-app-eu")
                .build(),
            image("ami-same-name")
                .region("us-west-2")
                .name("app")
                .build(),
            image("ami-app2")
                .name("app2")
                .built_from("us-east-1", "ami-app", "i-2")
                .build(),
        ]
    }

    #[test]
    fn copies_follow_copy_steps_only_never_names_or_builds() {
        let images = estate();
        let lineage = Lineage::new(&images);
        assert_eq!(
            ids(&lineage.copies_of("ami-app")),
            ["ami-app-ap", "ami-app-eu"]
        );
        // A copy's copies are its own; the image it came from is not one.
        assert_eq!(ids(&lineage.copies_of("ami-app-eu")), ["ami-app-ap"]);
        assert!(lineage.copies_of("ami-same-name").is_empty());
        // An image built on the base is no copy of it.
        assert!(lineage.copies_of("ami-base").is_empty());
    }

    #[test]
    fn a_same_region_copy_is_a_copy_and_a_build_is_not() {
        let images = vec![
            image("ami-a").build(),
            image("ami-copy").copied_from("us-east-1", "ami-a").build(),
            image("ami-built")
                .built_from("us-east-1", "ami-a", "i-9")
                .build(),
        ];
        let lineage = Lineage::new(&images);
        assert_eq!(ids(&lineage.copies_of("ami-a")), ["ami-copy"]);
    }

    #[test]
    fn descendants_are_builds_and_copies_at_any_remove() {
        let images = estate();
        let lineage = Lineage::new(&images);
        let found: Vec<(String, usize, bool)> = lineage
            .descendants_of("ami-base")
            .into_iter()
            .map(|d| (d.image.image_id.clone(), d.generation, d.copy))
            .collect();
        assert_eq!(
            found,
            [
                ("ami-app".to_string(), 1, false),
                ("ami-app-eu".to_string(), 2, false),
                ("ami-app2".to_string(), 2, false),
                ("ami-app-ap".to_string(), 3, false),
            ]
        );
        let of_app: Vec<(String, bool)> = lineage
            .descendants_of("ami-app")
            .into_iter()
            .map(|d| (d.image.image_id.clone(), d.copy))
            .collect();
        assert_eq!(
            of_app,
            [
                ("ami-app-eu".to_string(), true),
                ("ami-app2".to_string(), false),
                ("ami-app-ap".to_string(), true),
            ]
        );
    }

    #[test]
    fn a_chain_carries_descent_through_an_ancestor_no_longer_listed() {
        // ami-mid (built on ami-base) is gone; ami-leaf was built on it.
        let images = vec![
            image("ami-base").build(),
            image("ami-leaf")
                .built_from("us-east-1", "ami-mid", "i-3")
                .build(),
        ];
        let without = Lineage::new(&images);
        assert!(without.descendants_of("ami-base").is_empty());
        assert_eq!(ids(&without.unresolved()), ["ami-leaf"]);
        let chain = vec![
            entry("ami-leaf", Some("ami-mid")),
            entry("ami-mid", Some("ami-base")),
            entry("ami-base", None),
        ];
        let with = Lineage::with_chains(&images, &[chain]);
        let found: Vec<String> = with
            .descendants_of("ami-base")
            .into_iter()
            .map(|d| d.image.image_id.clone())
            .collect();
        assert_eq!(found, ["ami-leaf"]);
        assert!(with.unresolved().is_empty());
    }

    #[test]
    fn the_forest_puts_each_image_under_its_listed_source() {
        let images = estate();
        let lineage = Lineage::new(&images);
        fn draw(tree: &Tree<'_>, depth: usize, out: &mut Vec<String>) {
            out.push(format!("{}{}", "  ".repeat(depth), tree.image.image_id));
            for child in &tree.children {
                draw(child, depth + 1, out);
            }
        }
        let mut lines = Vec::new();
        for tree in lineage.forest() {
            draw(&tree, 0, &mut lines);
        }
        assert_eq!(
            lines,
            [
                "ami-base",
                "  ami-app",
                "    ami-app-eu",
                "      ami-app-ap",
                "    ami-app2",
                // Same name as ami-app, no recorded source: a root of its own.
                "ami-same-name",
            ]
        );
    }

    #[test]
    fn a_copy_snapshot_description_names_its_source() {
        assert_eq!(
            copied_from_by_description(
                "Copied for DestinationAmi ami-0abc from SourceAmi ami-0def for SourceSnapshot snap-1. Task created on 1."
            ),
            Some("ami-0def")
        );
        assert_eq!(
            copied_from_by_description("Created by CreateImage(i-1) for ami-0abc"),
            None
        );
        assert_eq!(copied_from_by_description("from SourceAmi nothing"), None);
    }

    fn entry(id: &str, source: Option<&str>) -> AncestryEntry {
        AncestryEntry {
            image_id: id.into(),
            creation_date: None,
            image_owner_alias: None,
            source_image_id: source.map(String::from),
            source_image_region: source.map(|_| "us-east-1".to_string()),
        }
    }
}
