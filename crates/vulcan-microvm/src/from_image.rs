//! A workload that names an image: its template made ready ([`crate::templates`]) and the
//! job told how the image's configuration says to run — its `Env` for every runtime, and
//! for runtime `oci` its entrypoint and command, working directory and user (resolved as
//! gVisor resolves them).

use std::sync::Arc;

use vulcan_agent::{FromImage, Run};
use vulcan_domain::{BackendError, LogSink, Runtime, WorkloadSpec};
use vulcan_sandbox::image_user;

use crate::templates::Template;
use crate::MicrovmBackend;

impl MicrovmBackend {
    /// Makes `run` run in image `reference`'s root; returns the template, held until the
    /// VM is made.
    pub(crate) async fn run_in_image(
        &self,
        reference: &str,
        spec: &WorkloadSpec,
        run: &mut Run,
        logs: &Arc<dyn LogSink>,
    ) -> Result<Template, BackendError> {
        let templates = self.inner.templates.as_ref().ok_or_else(|| {
            BackendError(
                "this node's microVMs have no image store: run the workload on isolation gvisor, or without \"image\"".into(),
            )
        })?;
        let snapshots = match self.inner.config.snapshots {
            true => self.inner.snapshots().await.ok(),
            false => None,
        };
        let (template, lease) = templates
            .root(reference, logs.as_ref(), snapshots.as_deref())
            .await
            .map_err(BackendError)?;
        let config = &lease.record.config;
        let mut from = FromImage {
            env: config.env.clone(),
            ..FromImage::default()
        };
        if spec.run.runtime == Runtime::Oci {
            from.argv =
                image_user::argv(&config.entrypoint, &config.cmd, spec.run.command.as_deref());
            if from.argv.is_empty() {
                return Err(BackendError(format!(
                    "image {} has no entrypoint or cmd: give \"command\"",
                    lease.record.reference
                )));
            }
            (from.uid, from.gid) =
                image_user::user(&lease.rootfs, &config.user).map_err(BackendError)?;
            from.cwd = config.working_dir.clone();
        }
        run.rootfs = true;
        run.image = Some(from);
        Ok(template)
    }
}
