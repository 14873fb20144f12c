//! TLS (`-Z`) with rustls: certificates from memcached's `-o ssl_*` options, reloaded by
//! `refresh_certs` and SIGHUP without dropping connections (new handshakes use the new
//! certificates, established sessions keep theirs).

use crate::config::TlsSettings;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};

/// The current acceptor and when its certificates were loaded.
pub struct TlsState {
    settings: TlsSettings,
    acceptor: RwLock<TlsAcceptor>,
    refreshed_at: AtomicI64,
}

fn load(settings: &TlsSettings) -> Result<TlsAcceptor, String> {
    let chain = settings
        .chain_cert
        .as_deref()
        .ok_or("ssl_chain_cert is required with -Z")?;
    let key = settings
        .key
        .as_deref()
        .ok_or("ssl_key is required with -Z")?;
    let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(chain)
        .map_err(|error| format!("Error loading the certificate chain: {chain} : {error}"))?
        .collect::<Result<_, _>>()
        .map_err(|error| format!("Error loading the certificate chain: {chain} : {error}"))?;
    let private_key = PrivateKeyDer::from_pem_file(key)
        .map_err(|error| format!("Error loading the key: {key} : {error}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = match settings.min_version.as_str() {
        "tlsv1.3" => &[&rustls::version::TLS13],
        // Older minimums were warned about at start: 1.2 is the oldest rustls offers.
        _ => &[&rustls::version::TLS12, &rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|error| error.to_string())?;
    let builder = match (&settings.ca_cert, settings.verify_mode) {
        (Some(ca), mode) if mode > 0 => {
            let mut roots = RootCertStore::empty();
            for certificate in CertificateDer::pem_file_iter(ca)
                .map_err(|error| format!("Error loading the CA certificate: {ca} : {error}"))?
            {
                roots
                    .add(certificate.map_err(|error| error.to_string())?)
                    .map_err(|error| error.to_string())?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            // Mode 1 asks for a certificate; 2 and 3 require one, as in memcached.
            let verifier = if mode == 1 {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|error| error.to_string())?)
        }
        _ => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(certificates, private_key)
        .map_err(|error| format!("Error loading the key: {key} : {error}"))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

impl TlsState {
    /// Loads the certificates; an error refuses startup.
    pub fn new(settings: TlsSettings, now: i64) -> Result<TlsState, String> {
        let acceptor = load(&settings)?;
        Ok(TlsState {
            settings,
            acceptor: RwLock::new(acceptor),
            refreshed_at: AtomicI64::new(now),
        })
    }

    /// The acceptor new connections handshake with.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Re-reads the certificate files (`refresh_certs`, SIGHUP).
    pub fn refresh(&self, now: i64) -> Result<(), String> {
        let acceptor = load(&self.settings)?;
        *self
            .acceptor
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = acceptor;
        self.refreshed_at.store(now, Ordering::Relaxed);
        Ok(())
    }

    /// Unix time of the last successful load.
    pub fn refreshed_at(&self) -> i64 {
        self.refreshed_at.load(Ordering::Relaxed)
    }

    /// The options it was started with (`stats settings`).
    pub fn settings(&self) -> &TlsSettings {
        &self.settings
    }
}

impl crate::command::TlsControl for TlsState {
    fn refresh(&self, now: i64) -> Result<(), String> {
        TlsState::refresh(self, now)
    }

    fn refreshed_at(&self) -> i64 {
        TlsState::refreshed_at(self)
    }

    fn settings(&self) -> &TlsSettings {
        TlsState::settings(self)
    }
}
