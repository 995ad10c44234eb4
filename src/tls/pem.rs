//! PEM files for TLS: certificate chains, private keys and CA bundles.
//!
//! The config reads each file once per load ([`PemFile`] keeps its path and bytes, so a
//! reload that finds new bytes builds new TLS settings); this module turns those bytes into
//! rustls types. Errors say which file and what is wrong, never a key's bytes.

use std::path::{Path, PathBuf};

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A file named by a config key, as read at load time.
#[derive(Clone, PartialEq, Eq)]
pub struct PemFile {
    pub path: PathBuf,
    pub contents: Vec<u8>,
}

impl std::fmt::Debug for PemFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Contents may be a private key: show where it came from, never what it holds.
        f.debug_tuple("PemFile").field(&self.path).finish()
    }
}

impl PemFile {
    /// Reads `path`; the error names the file and the reason.
    pub fn read(path: &Path) -> Result<Self, String> {
        let contents =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Ok(Self {
            path: path.to_owned(),
            contents,
        })
    }

    /// Every certificate in the file, in order (leaf first for a chain); at least one.
    pub fn certificates(&self) -> Result<Vec<CertificateDer<'static>>, String> {
        let certs = CertificateDer::pem_slice_iter(&self.contents)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{}: not a PEM certificate file: {e}", self.path.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "{}: holds no certificate (expected -----BEGIN CERTIFICATE-----)",
                self.path.display()
            ));
        }
        Ok(certs)
    }

    /// The private key in the file (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub fn private_key(&self) -> Result<PrivateKeyDer<'static>, String> {
        PrivateKeyDer::from_pem_slice(&self.contents).map_err(|e| {
            format!(
                "{}: holds no usable private key (PKCS#8, RSA or EC PEM): {e}",
                self.path.display()
            )
        })
    }

    /// The certificates of a CA bundle as trust anchors.
    pub fn trust_anchors(&self) -> Result<RootCertStore, String> {
        let mut roots = RootCertStore::empty();
        for cert in self.certificates()? {
            roots.add(cert).map_err(|e| {
                format!("{}: not a usable CA certificate: {e}", self.path.display())
            })?;
        }
        Ok(roots)
    }
}
