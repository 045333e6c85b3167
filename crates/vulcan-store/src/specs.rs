//! What of a workload's spec is stored, in both stores: its JSON without the archive
//! (kept in a column of its own), and for an invocation without its code at all — that is
//! the function version's, kept once, and a node that claims the invocation from the
//! store takes it from the version.

use vulcan_domain::WorkloadSpec;

/// The spec's JSON as stored, and the archive to keep beside it.
pub(crate) fn stored(spec: &WorkloadSpec) -> Result<(String, Option<&[u8]>), serde_json::Error> {
    if spec.invocation.is_some() {
        let mut without_code = spec.clone();
        without_code.run.code = None;
        return Ok((serde_json::to_string(&without_code)?, None));
    }
    Ok((
        serde_json::to_string(spec)?,
        spec.run.code_archive.as_deref(),
    ))
}
