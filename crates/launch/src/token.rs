//! The job token (`RINGDET_JOB_TOKEN`) that every rank presents in the collective's handshake, so
//! that a stray process or another job cannot join the ring. It is derived from a secret the user
//! gives every host (`RINGDET_JOB_SECRET` or `--job_secret_file`), or drawn at random by the first
//! host's launcher and sent to the others over the control channel. Never a constant.

use std::io::Read;
use std::path::Path;

use crate::error::{LaunchError, Result};
use sha2::{Digest, Sha256};

/// The user's secret: `--job_secret_file` (trailing newline removed), else `RINGDET_JOB_SECRET`.
pub fn user_secret(file: Option<&Path>, env_value: Option<String>) -> Result<Option<Vec<u8>>> {
    if let Some(path) = file {
        let mut bytes = std::fs::read(path).map_err(LaunchError::io(format!(
            "cannot read --job_secret_file {}",
            path.display()
        )))?;
        while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            bytes.pop();
        }
        if bytes.is_empty() {
            return Err(LaunchError::Setting(format!(
                "--job_secret_file {} is empty",
                path.display()
            )));
        }
        return Ok(Some(bytes));
    }
    Ok(env_value.filter(|v| !v.is_empty()).map(String::into_bytes))
}

fn tagged_hash(tag: &str, job_id: &str, secret: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(tag.as_bytes());
    hasher.update([0]);
    hasher.update(job_id.as_bytes());
    hasher.update([0]);
    hasher.update(secret);
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The token every host derives from the same secret and job id.
pub fn derive_token(job_id: &str, secret: &[u8]) -> String {
    tagged_hash("ringdet job token v1", job_id, secret)[..32].to_string()
}

/// What a launcher shows the first host to prove it holds the same secret (not the token itself).
pub fn secret_proof(job_id: &str, secret: &[u8]) -> String {
    tagged_hash("ringdet launcher proof v1", job_id, secret)
}

/// 128 random bits from the kernel, as hex.
pub fn random_token() -> Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(LaunchError::io(
            "cannot read /dev/urandom for the job token",
        ))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_depend_on_secret_and_job() {
        let a = derive_token("job", b"s3cret");
        assert_eq!(a, derive_token("job", b"s3cret"));
        assert_ne!(a, derive_token("job2", b"s3cret"));
        assert_ne!(a, derive_token("job", b"other"));
        assert_ne!(secret_proof("job", b"s3cret")[..32], a);
        assert_ne!(random_token().unwrap(), random_token().unwrap());
        assert_eq!(user_secret(None, Some(String::new())).unwrap(), None);
    }
}
