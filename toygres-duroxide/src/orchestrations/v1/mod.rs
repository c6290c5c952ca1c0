//! `create-image` 1.0.0 and `create-instance` 1.0.5 as earlier builds ran them, unchanged:
//! instances they started finish on them after an upgrade (`tests/golden.rs` replays their
//! recorded histories).

mod create_image;
mod create_instance;

pub use create_image::create_image_v1_0_0;
pub use create_instance::{create_instance_v1_0_5, InstanceInput};
