//! The sandbox image: built offline from Debian's packages (debootstrap, imported into Docker),
//! or on top of a base image where a registry is reachable.

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct BuildImageArgs {
    /// Name of the image to build (default: SANDBOX_IMAGE).
    #[arg(long)]
    pub tag: Option<String>,
    /// Build on top of this image (pulled if missing) instead of a debootstrapped Debian.
    #[arg(long)]
    pub base: Option<String>,
    /// Rebuild even when the image already exists.
    #[arg(long)]
    pub force: bool,
}
