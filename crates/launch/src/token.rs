//! The job token (`RINGDET_JOB_TOKEN`) that every rank presents in the collective's handshake, so
//! that a stray process or another job cannot join the ring. It is derived from a secret the user
//! gives every host (`RINGDET_JOB_SECRET` or `--job_secret_file`), or drawn at random by the first
//! host's launcher and sent to the others over the control channel. Never a constant.
//!
//! A `--job_secret_file` that does not exist yet is created by the first host's launcher (256
//! random bits, mode 0600) and waited for by the others: on a file system every host shares, that
//! distributes a fresh secret without the user handling it. A single host's random token never
//! leaves the host (the workers get it in their environment).

use std::io::Read;
use std::path::Path;

use crate::error::{LaunchError, Result};
use hmac::{Hmac, Mac};
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

/// How long to wait between looks for a secret file another host creates.
const SECRET_FILE_POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// The secret in `path`, which may not exist yet: the first host (`create`) writes a fresh random
/// one there (256 bits as hex, mode 0600, whole or not at all; a file another launcher created in
/// the meantime wins), the other hosts wait for it until `deadline`.
pub fn shared_secret_file(
    path: &Path,
    create: bool,
    deadline: std::time::Instant,
) -> Result<Vec<u8>> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if create && !path.exists() {
        let secret = random_hex::<32>().map_err(LaunchError::io(
            "cannot read /dev/urandom for the job secret",
        ))?;
        let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let tmp = path.with_file_name(format!(
            ".{}.tmp-{}",
            file_name.unwrap_or_default(),
            std::process::id()
        ));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| {
                f.write_all(format!("{secret}\n").as_bytes())
                    .and(f.sync_all())
            });
        // A link, unlike a rename, does not replace a file that appeared meanwhile.
        let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => tracing::info!(
                "created the job secret {} (mode 0600) for the other hosts to read",
                path.display()
            ),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(err) => {
                return Err(LaunchError::Io {
                    what: format!("cannot create --job_secret_file {}", path.display()),
                    error: err,
                });
            }
        }
    }
    let mut said = false;
    while !path.exists() {
        if std::time::Instant::now() >= deadline {
            return Err(LaunchError::Setting(format!(
                "--job_secret_file {} does not exist, and the first host's launcher did not \
                 create it before the start deadline: is it on a file system every host shares?",
                path.display()
            )));
        }
        if !said {
            tracing::info!(
                "waiting for the first host's launcher to create --job_secret_file {}",
                path.display()
            );
            said = true;
        }
        std::thread::sleep(SECRET_FILE_POLL);
    }
    user_secret(Some(path), None)?.ok_or_else(|| {
        LaunchError::Setting(format!("--job_secret_file {} is empty", path.display()))
    })
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
    random_hex::<16>().map_err(LaunchError::io(
        "cannot read /dev/urandom for the job token",
    ))
}

/// `N` random bytes from the kernel, as hex (nonces of the control channel's handshake).
pub fn random_hex<const N: usize>() -> std::io::Result<String> {
    let mut bytes = [0u8; N];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The key of the control channel's challenge-response: derived from the user's secret when
/// there is one (only a host holding it can join), else from the job id alone (then only the
/// source-address check keeps strangers out; see docs/launch.md, "Threat model").
pub fn control_key(job_id: &str, secret: Option<&[u8]>) -> String {
    tagged_hash("ringdet control key v1", job_id, secret.unwrap_or_default())
}

/// Which side of the control handshake a proof is for; each side proves with its own tag so
/// one side's proof cannot be replayed as the other's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofSide {
    /// The first host's launcher, answering a connection.
    Acceptor,
    /// Another host's launcher, connecting.
    Connector,
}

/// Bytes of a control-handshake nonce and of a proof.
pub const CONTROL_NONCE_LEN: usize = 32;

/// `HMAC-SHA256(key, "ringdet control v2" | side | node_rank | first host's nonce | connecting
/// launcher's nonce)`, each part length-prefixed.
pub fn control_proof(
    key: &str,
    side: ProofSide,
    node_rank: usize,
    nonce_a: &[u8],
    nonce_c: &[u8],
) -> [u8; CONTROL_NONCE_LEN] {
    let tag: &[u8] = match side {
        ProofSide::Acceptor => b"acceptor",
        ProofSide::Connector => b"connector",
    };
    let mut out = [0u8; CONTROL_NONCE_LEN];
    // HMAC takes a key of any length; were it ever refused, the all-zero proof is never accepted.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes()) else {
        return out;
    };
    for part in [
        b"ringdet control v2".as_slice(),
        tag,
        &(node_rank as u64).to_le_bytes(),
        nonce_a,
        nonce_c,
    ] {
        mac.update(&(part.len() as u64).to_le_bytes());
        mac.update(part);
    }
    out.copy_from_slice(&mac.finalize().into_bytes());
    out
}

/// Compares two proofs in time independent of where they differ; an all-zero proof is never
/// the same as anything.
pub fn same_proof(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && a.iter().any(|x| *x != 0)
        && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `N` random bytes from the kernel (the control handshake's nonces).
pub fn random_bytes<const N: usize>() -> std::io::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes))?;
    Ok(bytes)
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

    #[test]
    fn control_proofs_depend_on_key_side_rank_and_nonces() {
        let key = control_key("job", Some(b"s3cret"));
        assert_ne!(key, control_key("job", None));
        let proof = control_proof(&key, ProofSide::Connector, 1, b"a", b"c");
        assert!(same_proof(
            &proof,
            &control_proof(&key, ProofSide::Connector, 1, b"a", b"c")
        ));
        for other in [
            control_proof(&key, ProofSide::Acceptor, 1, b"a", b"c"),
            control_proof(&key, ProofSide::Connector, 2, b"a", b"c"),
            control_proof(&key, ProofSide::Connector, 1, b"a", b"c2"),
            control_proof(&key, ProofSide::Connector, 1, b"a2", b"c"),
            control_proof(
                &control_key("job", None),
                ProofSide::Connector,
                1,
                b"a",
                b"c",
            ),
        ] {
            assert!(!same_proof(&proof, &other));
        }
        assert!(!same_proof(&[0; 32], &[0; 32]));
    }
}
