//! Images: references, the registry client, and the catalog that ties
//! them together on disk.
//!
//! On-disk layout under the catalog's directory:
//! - `blobs/sha256/<hex>`: verified blobs, content-addressed, shared between images;
//! - `rootfs/<manifest hex>/`: each image unpacked once, used read-only by every run;
//! - `index.json`: the registered images (written atomically).

pub mod catalog;
mod fetch;
mod manifest;
pub mod reference;
pub mod registry;

pub use catalog::ImageStore;
pub use reference::Reference;
pub use registry::{RegistryClient, RegistryOptions};
