//! What both stores share of the image index.

use vulcan_domain::{ImageRecord, NodeTemplate, TemplateOnNode};

/// Adds `node` (and what it keeps for microVMs, `microvm`'s JSON if any) to `image`.
pub(crate) fn add_node(image: &mut ImageRecord, node: String, microvm: Option<&str>) {
    if let Some(template) = microvm.and_then(|j| serde_json::from_str::<TemplateOnNode>(j).ok()) {
        image.microvm.push(NodeTemplate {
            node: node.clone(),
            template,
        });
    }
    image.nodes.push(node);
}
