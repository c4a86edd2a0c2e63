//! The OpenSSL side of `sslmode`: a connector that checks the server's certificate exactly
//! as core's [`Tls`] plan says (the plan itself, libpq's rules, is core's).

use std::fs;

use openssl::pkey::PKey;
use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVerifyMode, SslVersion};
use openssl::x509::store::{X509Lookup, X509StoreBuilder};
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::X509;
use postgres_openssl::MakeTlsConnector;
use walmgr_core::libpq::{RootCerts, Tls};
use walmgr_core::Error;

/// A connector for `tls`; Err names the file that could not be used and why.
pub fn connector(tls: &Tls) -> Result<MakeTlsConnector, Error> {
    let ssl_err = |what: String| {
        move |e: openssl::error::ErrorStack| Error::Connection {
            origin: what.clone(),
            message: e.to_string(),
        }
    };
    let mut builder =
        SslConnector::builder(SslMethod::tls_client()).map_err(ssl_err("TLS".to_string()))?;
    builder
        .set_min_proto_version(version(&tls.min_version))
        .map_err(ssl_err("ssl_min_protocol_version".to_string()))?;
    if let Some(max) = &tls.max_version {
        builder
            .set_max_proto_version(version(max))
            .map_err(ssl_err("ssl_max_protocol_version".to_string()))?;
    }
    match &tls.roots {
        // require (or prefer, allow) without a root certificate file: encryption only, as
        // libpq; the server's certificate is not checked.
        None => builder.set_verify(SslVerifyMode::NONE),
        // The connector starts from OpenSSL's default trust store: exactly what
        // sslrootcert=system asks for.
        Some(RootCerts::System) => builder.set_verify(SslVerifyMode::PEER),
        Some(RootCerts::File(file)) => {
            // Only the file's certificates: libpq trusts nothing else, so the default store
            // the connector starts with is replaced, not added to.
            let shown = file.display().to_string();
            let pem = fs::read(file).map_err(|e| Error::io("read sslrootcert", file, e))?;
            let certs = X509::stack_from_pem(&pem).map_err(|e| Error::Connection {
                origin: format!("sslrootcert {shown}"),
                message: format!("not a PEM certificate file: {e}"),
            })?;
            if certs.is_empty() {
                return Err(Error::Connection {
                    origin: format!("sslrootcert {shown}"),
                    message: "holds no certificate".to_string(),
                });
            }
            let mut store = X509StoreBuilder::new().map_err(ssl_err("TLS".to_string()))?;
            for cert in certs {
                store
                    .add_cert(cert)
                    .map_err(ssl_err(format!("sslrootcert {shown}")))?;
            }
            // Revocation lists, as libpq loads them: checked for the whole chain.
            if tls.crl.file.is_some() || tls.crl.dir.is_some() {
                if let Some(crl) = &tls.crl.file {
                    let lookup = store
                        .add_lookup(X509Lookup::file())
                        .map_err(ssl_err("sslcrl".to_string()))?;
                    lookup
                        .load_crl_file(crl, SslFiletype::PEM)
                        .map_err(ssl_err(format!("sslcrl {}", crl.display())))?;
                }
                if let Some(dir) = &tls.crl.dir {
                    let lookup = store
                        .add_lookup(X509Lookup::hash_dir())
                        .map_err(ssl_err("sslcrldir".to_string()))?;
                    let path = dir.to_str().ok_or_else(|| Error::Connection {
                        origin: "sslcrldir".to_string(),
                        message: "the path is not UTF-8".to_string(),
                    })?;
                    lookup
                        .add_dir(path, SslFiletype::PEM)
                        .map_err(ssl_err(format!("sslcrldir {path}")))?;
                }
                store
                    .set_flags(X509VerifyFlags::CRL_CHECK | X509VerifyFlags::CRL_CHECK_ALL)
                    .map_err(ssl_err("sslcrl".to_string()))?;
            }
            builder.set_cert_store(store.build());
            builder.set_verify(SslVerifyMode::PEER);
        }
    }
    if let Some(client) = &tls.client {
        let cert_shown = format!("sslcert {}", client.cert.display());
        builder
            .set_certificate_chain_file(&client.cert)
            .map_err(ssl_err(cert_shown))?;
        let key_shown = format!("sslkey {}", client.key.display());
        match &client.key_password {
            Some(passphrase) => {
                let pem =
                    fs::read(&client.key).map_err(|e| Error::io("read sslkey", &client.key, e))?;
                let key = PKey::private_key_from_pem_passphrase(&pem, passphrase.expose())
                    .map_err(|_| Error::Connection {
                        origin: key_shown.clone(),
                        message: "could not decrypt the key with sslpassword".to_string(),
                    })?;
                builder
                    .set_private_key(&key)
                    .map_err(ssl_err(key_shown.clone()))?;
            }
            None => builder
                .set_private_key_file(&client.key, SslFiletype::PEM)
                .map_err(|e| Error::Connection {
                    origin: key_shown.clone(),
                    message: format!(
                        "could not load the private key ({e}); an encrypted key needs \
                         sslpassword"
                    ),
                })?,
        }
        builder.check_private_key().map_err(|_| Error::Connection {
            origin: key_shown,
            message: format!(
                "the key does not match the certificate {}",
                client.cert.display()
            ),
        })?;
    }
    let mut connector = MakeTlsConnector::new(builder.build());
    let verify_host = tls.verify_host;
    let sni = tls.sni;
    connector.set_callback(move |config, _domain| {
        // verify-ca checks the chain only; verify-full also the host name (or IP address)
        // the connection string names, against the certificate's names.
        config.set_verify_hostname(verify_host);
        config.set_use_server_name_indication(sni);
        Ok(())
    });
    Ok(connector)
}

/// A TLS version name core has checked (`TLSv1.2`); "" means no bound.
fn version(name: &str) -> Option<SslVersion> {
    match name {
        "TLSv1" => Some(SslVersion::TLS1),
        "TLSv1.1" => Some(SslVersion::TLS1_1),
        "TLSv1.2" => Some(SslVersion::TLS1_2),
        "TLSv1.3" => Some(SslVersion::TLS1_3),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use walmgr_core::libpq::{Crl, SslMode};

    fn plan(roots: Option<RootCerts>) -> Tls {
        Tls {
            mode: SslMode::VerifyCa,
            roots,
            crl: Crl::default(),
            verify_host: false,
            client: None,
            min_version: "TLSv1.2".into(),
            max_version: None,
            sni: true,
            direct: false,
        }
    }

    fn error_of(tls: &Tls) -> String {
        match connector(tls) {
            Ok(_) => panic!("{tls:?} gave a connector"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_root_certificate_file_that_is_not_pem_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ca.crt");
        fs::write(&file, "not a certificate\n").unwrap();
        let err = error_of(&plan(Some(RootCerts::File(file.clone()))));
        assert!(
            err.starts_with(&format!("sslrootcert {}", file.display())),
            "{err}"
        );
        let missing = dir.path().join("gone.crt");
        let err = error_of(&plan(Some(RootCerts::File(missing.clone()))));
        assert!(err.contains(&missing.display().to_string()), "{err}");
    }

    #[test]
    fn encryption_only_and_the_system_store_need_no_files() {
        assert!(connector(&plan(None)).is_ok());
        assert!(connector(&plan(Some(RootCerts::System))).is_ok());
    }
}
