//! An image's copies in every enabled region, found by lineage: `share --all-copies` and
//! `deregister --all-copies`. DescribeImages' `source-image-id` filter asks each region for the
//! account's images made from the image, then from those copies, and so on: one small call per
//! region and generation, never a name.

use anyhow::{Context, Result};
use futures::{StreamExt, stream};

use crate::aws::Aws;
use crate::error::one_line;
use crate::model::{Image, Origin};
use crate::plan::lineage::Lineage;
use crate::plan::state::Standing;

/// Copies of copies: no release goes deeper than this; a deeper chain is reported, not followed.
const MAX_GENERATIONS: usize = 16;

/// What the search found.
#[derive(Debug, Default)]
pub struct Copies {
    /// Every copy that exists, copies of copies included, oldest first.
    pub images: Vec<Image>,
    /// Regions that could not be read, with why: a copy there may exist.
    pub unread: Vec<(String, String)>,
}

/// The copies of `image` (in `home`) in every region enabled for the account.
pub async fn copies_everywhere(aws: &Aws, home: &str, image: &Image) -> Result<Copies> {
    let regions = aws.ec2(home).enabled_regions().await.with_context(|| {
        format!(
            "listing the account's enabled regions to find the copies of {}",
            image.image_id
        )
    })?;
    let mut found: Vec<Image> = vec![image.clone()];
    let mut unread: Vec<(String, String)> = Vec::new();
    let mut generation = vec![image.image_id.clone()];
    for _ in 0..MAX_GENERATIONS {
        let sources = generation.clone();
        let answers: Vec<(String, Result<Vec<Image>>)> = stream::iter(regions.clone())
            .filter(|region| std::future::ready(!unread.iter().any(|(r, _)| r == region)))
            .map(|region| {
                let ec2 = aws.ec2(&region);
                let sources = &sources;
                async move { (region, ec2.owned_images_from(sources).await) }
            })
            .buffer_unordered(crate::concurrency::REGIONS)
            .collect()
            .await;
        generation.clear();
        for (region, answer) in answers {
            match answer {
                Ok(images) => {
                    for made in images {
                        let new = !found.iter().any(|i| i.image_id == made.image_id);
                        // A copy deregistered moments ago (still listed) is no copy to change,
                        // but the copies made from it are: it is followed, not kept.
                        if new && matches!(made.origin(), Origin::Copied(_)) {
                            generation.push(made.image_id.clone());
                            found.push(made);
                        }
                    }
                }
                Err(err) => unread.push((region, one_line(&err))),
            }
        }
        if generation.is_empty() {
            break;
        }
    }
    if !generation.is_empty() {
        unread.push((
            home.to_string(),
            format!("copies more than {MAX_GENERATIONS} generations deep were not followed"),
        ));
    }
    unread.sort();
    let lineage = Lineage::new(&found);
    let images = lineage
        .copies_of(&image.image_id)
        .into_iter()
        .filter(|copy| Standing::of(&copy.state).exists())
        .cloned()
        .collect();
    Ok(Copies { images, unread })
}
