//! A sandbox's files, for the API: each operation on the running sandbox's driver.

use vulcan_domain::{FileEntry, FileReader, FileWatch, FileWriter};

use super::{within, SandboxError};
use crate::Engine;

impl Engine {
    pub async fn sandbox_stat(
        &self,
        tenant: Option<&str>,
        id: &str,
        path: &str,
    ) -> Result<FileEntry, SandboxError> {
        Ok(self
            .running(tenant, id)
            .await?
            .sandbox
            .files()
            .stat(path)
            .await?)
    }

    pub async fn sandbox_list(
        &self,
        tenant: Option<&str>,
        id: &str,
        path: &str,
        depth: u32,
    ) -> Result<Vec<FileEntry>, SandboxError> {
        let depth = within("depth", depth, 1, 16)?;
        Ok(self
            .running(tenant, id)
            .await?
            .sandbox
            .files()
            .list(path, depth)
            .await?)
    }

    pub async fn sandbox_read(
        &self,
        tenant: Option<&str>,
        id: &str,
        path: &str,
    ) -> Result<Box<dyn FileReader>, SandboxError> {
        Ok(self
            .running(tenant, id)
            .await?
            .sandbox
            .files()
            .open_read(path)
            .await?)
    }

    pub async fn sandbox_write(
        &self,
        tenant: Option<&str>,
        id: &str,
        path: &str,
    ) -> Result<Box<dyn FileWriter>, SandboxError> {
        Ok(self
            .running(tenant, id)
            .await?
            .sandbox
            .files()
            .open_write(path)
            .await?)
    }

    pub async fn sandbox_mkdir(
        &self,
        tenant: Option<&str>,
        id: &str,
        path: &str,
    ) -> Result<FileEntry, SandboxError> {
        Ok(self
            .running(tenant, id)
            .await?
            .sandbox
            .files()
            .make_dir(path)
            .await?)
    }

    pub async fn sandbox_move(
        &self,
        tenant: Option<&str>,
        id: &str,
        from: &str,
        to: &str,
    ) -> Result<FileEntry, SandboxError> {
        Ok(self
            .running(tenant, id)
            .await?
            .sandbox
            .files()
            .rename(from, to)
            .await?)
    }

    pub async fn sandbox_remove(
        &self,
        tenant: Option<&str>,
        id: &str,
        path: &str,
    ) -> Result<(), SandboxError> {
        Ok(self
            .running(tenant, id)
            .await?
            .sandbox
            .files()
            .remove(path)
            .await?)
    }

    /// A watch of directory `path` (and below it, `recursive`) from now on.
    pub async fn sandbox_watch(
        &self,
        tenant: Option<&str>,
        id: &str,
        path: &str,
        recursive: bool,
    ) -> Result<Box<dyn FileWatch>, SandboxError> {
        Ok(self
            .running(tenant, id)
            .await?
            .sandbox
            .files()
            .watch(path, recursive)
            .await?)
    }
}
