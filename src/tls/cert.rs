//! Certificates: PEM files in, or a self-signed pair generated once under the data directory
//! and reused at every later start (clients that trusted it keep trusting it).

use std::io::Write;
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::TlsError;

/// `(certificate chain, private key)` from PEM files.
pub fn load(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let cert_error = |message: String| TlsError::Cert {
        path: cert.to_owned(),
        message,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_error("no CERTIFICATE block in the file".to_owned()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.to_owned(),
        message: e.to_string(),
    })?;
    Ok((chain, key))
}

/// The self-signed pair's paths under `data_dir`, generated if neither file exists yet.
pub fn ensure_self_signed(data_dir: &Path) -> Result<(PathBuf, PathBuf), TlsError> {
    let dir = data_dir.join("tls");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    match (cert.exists(), key.exists()) {
        (true, true) => {
            tracing::info!(cert = %cert.display(), "using the self-signed TLS certificate");
            return Ok((cert, key));
        }
        (true, false) => return Err(half_pair(cert, key)),
        (false, true) => return Err(half_pair(key, cert)),
        (false, false) => {}
    }
    let generated = rcgen::generate_simple_self_signed(subject_names())?;
    let write_error = |path: &Path| {
        let path = path.to_owned();
        move |source| TlsError::Write { path, source }
    };
    std::fs::create_dir_all(&dir).map_err(write_error(&dir))?;
    // The key first and owner-only, so a crash never leaves a certificate without its key.
    write_private(&key, generated.signing_key.serialize_pem().as_bytes())
        .map_err(write_error(&key))?;
    std::fs::write(&cert, generated.cert.pem()).map_err(write_error(&cert))?;
    tracing::info!(cert = %cert.display(), "generated a self-signed TLS certificate");
    Ok((cert, key))
}

fn half_pair(present: PathBuf, missing: PathBuf) -> TlsError {
    TlsError::HalfPair { present, missing }
}

/// Names a local client uses: localhost, the loopback addresses and this host's name.
fn subject_names() -> Vec<String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Ok(host) = std::fs::read_to_string("/etc/hostname") {
        let host = host.trim();
        if !host.is_empty() && host != "localhost" {
            names.push(host.to_owned());
        }
    }
    names
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(bytes)
}
