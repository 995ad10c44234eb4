//! Checks for the TLS keys (`tls-*`, `backend-tls*`) and `client-output-buffer-limit`.
//!
//! The PEM files are read here, like the secret files, so a reload re-reads them; and the
//! rustls objects are built once here too, only to check them: a certificate that does not
//! match its key is a config error naming both keys, not a failure at the first handshake.

use std::net::SocketAddr;

use super::super::cli::Cli;
use super::super::error::Origin;
use super::super::keys::{self, Key};
use super::super::output_limit::OutputBufferLimits;
use super::super::raw::{RawConfig, Scalar};
use super::{Checker, Sourced, integer, origin_of, parse_bool, pick_bool, pick_scalar, pick_text};
use crate::tls::{BackendTls, ClientAuth, ListenerTls, PemFile, TlsVersions};

/// The raw TLS values, taken out of [`RawConfig`] before the rest of it is consumed.
pub struct TlsInputs {
    port: Option<Sourced<Scalar>>,
    cert: Option<Sourced<String>>,
    key: Option<Sourced<String>>,
    ca: Option<Sourced<String>>,
    auth_clients: Option<Sourced<String>>,
    protocols: Option<Sourced<String>>,
    backend: Option<Sourced<String>>,
    backend_ca: Option<Sourced<String>>,
    backend_cert: Option<Sourced<String>>,
    backend_key: Option<Sourced<String>>,
    backend_server_name: Option<Sourced<String>>,
    output_limit: Option<Sourced<String>>,
}

impl TlsInputs {
    pub fn take(cli: &Cli, raw: &mut RawConfig) -> Self {
        Self {
            port: pick_scalar(&cli.tls_port, raw.tls_port.take()),
            cert: pick_text(&cli.tls_cert_file, raw.tls_cert_file.take()),
            key: pick_text(&cli.tls_key_file, raw.tls_key_file.take()),
            ca: pick_text(&cli.tls_ca_cert_file, raw.tls_ca_cert_file.take()),
            auth_clients: pick_text(&cli.tls_auth_clients, raw.tls_auth_clients.take()),
            protocols: pick_text(&cli.tls_protocols, raw.tls_protocols.take()),
            backend: pick_bool(&cli.backend_tls, raw.backend_tls.take()),
            backend_ca: pick_text(
                &cli.backend_tls_ca_cert_file,
                raw.backend_tls_ca_cert_file.take(),
            ),
            backend_cert: pick_text(&cli.backend_tls_cert_file, raw.backend_tls_cert_file.take()),
            backend_key: pick_text(&cli.backend_tls_key_file, raw.backend_tls_key_file.take()),
            backend_server_name: pick_text(
                &cli.backend_tls_server_name,
                raw.backend_tls_server_name.take(),
            ),
            output_limit: pick_text(
                &cli.client_output_buffer_limit,
                raw.client_output_buffer_limit.take(),
            ),
        }
    }
}

impl Checker {
    /// `client-output-buffer-limit`, over Redis's defaults.
    pub(super) fn output_limits(&mut self, inputs: &mut TlsInputs) -> Option<OutputBufferLimits> {
        self.check(
            keys::CLIENT_OUTPUT_BUFFER_LIMIT,
            inputs.output_limit.take(),
            OutputBufferLimits::default(),
            |text| OutputBufferLimits::parse(&text),
        )
    }

    /// The TLS listener, if `tls-port` is set. `listen` and `admin` (when valid) must not
    /// share its port.
    pub(super) fn listener_tls(
        &mut self,
        inputs: &mut TlsInputs,
        listen: Option<SocketAddr>,
        admin: Option<SocketAddr>,
    ) -> Option<Option<ListenerTls>> {
        let port_origin = origin_of(&inputs.port);
        let Some(port_input) = inputs.port.take() else {
            let dependents = [
                (keys::TLS_CERT_FILE, &inputs.cert),
                (keys::TLS_KEY_FILE, &inputs.key),
                (keys::TLS_CA_CERT_FILE, &inputs.ca),
                (keys::TLS_AUTH_CLIENTS, &inputs.auth_clients),
                (keys::TLS_PROTOCOLS, &inputs.protocols),
            ];
            let why = "has no effect without tls-port: set tls-port to open the TLS listener";
            return self.none_set(&dependents, why).then_some(None);
        };
        let port = self.check(keys::TLS_PORT, Some(port_input), 0, |v| {
            integer(v, 1..=u64::from(u16::MAX))
        });
        let port = port.and_then(|p| u16::try_from(p).ok());
        if let Some(port) = port {
            if listen.is_some_and(|l| l.port() == port) {
                self.report(
                    keys::TLS_PORT,
                    port_origin,
                    format!("{port} is the port of listen already: the TLS listener needs its own"),
                );
            }
            if admin.is_some_and(|a| a.port() == port) {
                self.report(
                    keys::TLS_PORT,
                    port_origin,
                    format!("{port} is the port of admin-listen already"),
                );
            }
        }
        let cert_origin = origin_of(&inputs.cert);
        let cert = self.required_pem(keys::TLS_CERT_FILE, inputs.cert.take());
        let key = self.required_pem(keys::TLS_KEY_FILE, inputs.key.take());
        let ca = self.optional_pem(keys::TLS_CA_CERT_FILE, inputs.ca.take());
        let auth_origin = origin_of(&inputs.auth_clients);
        let default_auth = match &ca {
            Some(Some(_)) => ClientAuth::Required,
            _ => ClientAuth::No,
        };
        let client_auth = self.check(
            keys::TLS_AUTH_CLIENTS,
            inputs.auth_clients.take(),
            default_auth,
            |text| text.parse(),
        );
        let client_auth = match (client_auth, &ca) {
            (Some(auth), Some(None)) if auth != ClientAuth::No => {
                self.report(keys::TLS_AUTH_CLIENTS, auth_origin, "verifying client certificates needs tls-ca-cert-file, the CA they must chain to");
                None
            }
            (auth, _) => auth,
        };
        let versions = self.check(
            keys::TLS_PROTOCOLS,
            inputs.protocols.take(),
            TlsVersions::BOTH,
            |text| TlsVersions::parse(&text),
        );
        let settings = ListenerTls {
            port: port?,
            cert: cert?,
            key: key?,
            ca: ca?,
            client_auth: client_auth?,
            versions: versions?,
        };
        if let Err(why) = crate::tls::acceptor(&settings) {
            // The message names the file at fault (certificate, key or CA bundle).
            self.report(keys::TLS_CERT_FILE, cert_origin, why);
            return None;
        }
        Some(Some(settings))
    }

    /// TLS toward the nodes, if `backend-tls` is on.
    pub(super) fn backend_tls(&mut self, inputs: &mut TlsInputs) -> Option<Option<BackendTls>> {
        let on_origin = origin_of(&inputs.backend);
        let on = self.check(keys::BACKEND_TLS, inputs.backend.take(), false, |text| {
            parse_bool(&text)
        })?;
        if !on {
            let dependents = [
                (keys::BACKEND_TLS_CA_CERT_FILE, &inputs.backend_ca),
                (keys::BACKEND_TLS_CERT_FILE, &inputs.backend_cert),
                (keys::BACKEND_TLS_KEY_FILE, &inputs.backend_key),
                (keys::BACKEND_TLS_SERVER_NAME, &inputs.backend_server_name),
            ];
            let why = "has no effect without backend-tls = true";
            return self.none_set(&dependents, why).then_some(None);
        }
        let ca = self.optional_pem(keys::BACKEND_TLS_CA_CERT_FILE, inputs.backend_ca.take());
        let cert_origin = origin_of(&inputs.backend_cert);
        let key_origin = origin_of(&inputs.backend_key);
        let cert = self.optional_pem(keys::BACKEND_TLS_CERT_FILE, inputs.backend_cert.take());
        let key = self.optional_pem(keys::BACKEND_TLS_KEY_FILE, inputs.backend_key.take());
        let client_cert = match (cert?, key?) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            (Some(_), None) => {
                self.report(
                    keys::BACKEND_TLS_CERT_FILE,
                    cert_origin,
                    "needs backend-tls-key-file, the certificate's private key",
                );
                return None;
            }
            (None, Some(_)) => {
                self.report(
                    keys::BACKEND_TLS_KEY_FILE,
                    key_origin,
                    "needs backend-tls-cert-file, the certificate it belongs to",
                );
                return None;
            }
        };
        let server_name = inputs
            .backend_server_name
            .take()
            .map(|s| s.value.trim().to_owned());
        let settings = BackendTls {
            ca: ca?,
            client_cert,
            server_name,
        };
        if let Err(why) = crate::tls::Connector::new(&settings) {
            let key = if why.contains("is not a DNS name") {
                keys::BACKEND_TLS_SERVER_NAME
            } else if settings.client_cert.is_some() && why.contains("certificate and key") {
                keys::BACKEND_TLS_CERT_FILE
            } else if settings.ca.is_some() {
                keys::BACKEND_TLS_CA_CERT_FILE
            } else {
                keys::BACKEND_TLS
            };
            self.report(key, on_origin, why);
            return None;
        }
        Some(Some(settings))
    }

    /// Reports `why` for each of `dependents` that is set (a key that only means something
    /// with another one); true when none is.
    fn none_set(&mut self, dependents: &[(Key, &Option<Sourced<String>>)], why: &str) -> bool {
        let mut none = true;
        for (key, input) in dependents {
            if let Some(input) = input {
                none = false;
                self.report(*key, input.origin, why);
            }
        }
        none
    }

    fn required_pem(&mut self, key: Key, input: Option<Sourced<String>>) -> Option<PemFile> {
        match self.optional_pem(key, input) {
            Some(Some(file)) => Some(file),
            Some(None) => {
                self.report(key, Origin::Default, "required with tls-port");
                None
            }
            None => None,
        }
    }

    fn optional_pem(
        &mut self,
        key: Key,
        input: Option<Sourced<String>>,
    ) -> Option<Option<PemFile>> {
        let Some(Sourced { value, origin }) = input else {
            return Some(None);
        };
        match PemFile::read(std::path::Path::new(value.trim())) {
            Ok(file) => Some(Some(file)),
            Err(why) => {
                self.report(key, origin, why);
                None
            }
        }
    }
}
