//! The test PKI: a CA, a server/peer certificate for loopback and client certificates (rcgen),
//! and the client configuration a test connects with.

use super::*;

/// A CA with a server/peer certificate (127.0.0.1, localhost) and a client certificate.
pub struct Pki {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// The CA's name and key, to sign more client certificates (`client_pair`).
    ca_name: String,
    ca_key_pem: String,
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
}

impl Pki {
    pub fn generate(dir: &Path, ca_name: &str) -> Pki {
        Pki::generate_for(dir, ca_name, &[])
    }

    /// The same, with the server certificate also valid for `hosts` (test-host addresses).
    pub fn generate_for(dir: &Path, ca_name: &str, hosts: &[String]) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let ca_params = ca_params(ca_name);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let names = ["127.0.0.1".to_string(), "localhost".to_string()];
        let mut server = CertificateParams::new([&names[..], hosts].concat()).unwrap();
        server
            .distinguished_name
            .push(DnType::CommonName, "etcd-server");
        server.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let server_key = KeyPair::generate().unwrap();
        let server_cert = server.signed_by(&server_key, &issuer).unwrap();

        let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
        client
            .distinguished_name
            .push(DnType::CommonName, "etcd-upkeep");
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_key = KeyPair::generate().unwrap();
        let client_cert = client.signed_by(&client_key, &issuer).unwrap();

        let write = |name: &str, text: String| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        Pki {
            dir: dir.to_path_buf(),
            ca: write("ca.crt", ca_cert.pem()),
            server_cert: write("server.crt", server_cert.pem()),
            server_key: write("server.key", server_key.serialize_pem()),
            client_cert: write("client.crt", client_cert.pem()),
            client_key: write("client.key", client_key.serialize_pem()),
            ca_name: ca_name.to_string(),
            ca_key_pem: issuer.key().serialize_pem(),
        }
    }

    /// Another client certificate and key signed by this CA, for the user `cn` (etcd with
    /// `--client-cert-auth` and auth enabled takes the certificate's CN as the user name).
    pub fn client_pair(&self, cn: &str) -> (PathBuf, PathBuf) {
        let issuer = Issuer::new(
            ca_params(&self.ca_name),
            KeyPair::from_pem(&self.ca_key_pem).unwrap(),
        );
        let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
        client.distinguished_name.push(DnType::CommonName, cn);
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().unwrap();
        let cert = client.signed_by(&key, &issuer).unwrap();
        let (cert_path, key_path) = (
            self.dir.join(format!("{cn}.crt")),
            self.dir.join(format!("{cn}.key")),
        );
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }

    /// The TLS flags for etcd-upkeep.
    pub fn flags(&self) -> Vec<String> {
        vec![
            "--cacert".into(),
            self.ca.display().to_string(),
            "--cert".into(),
            self.client_cert.display().to_string(),
            "--key".into(),
            self.client_key.display().to_string(),
        ]
    }
}

/// Endpoints and TLS files for a test client.
#[derive(Clone)]
pub struct ClientConfig {
    pub endpoints: Vec<String>,
    pub(super) ca: PathBuf,
    pub(super) cert: PathBuf,
    pub(super) key: PathBuf,
    /// Per-request timeout (5 s; benchmarks on GiB-sized dbs need more).
    pub(super) timeout: Duration,
}

impl ClientConfig {
    /// The same TLS material for other endpoints (e.g. one member only).
    pub fn only(&self, endpoints: &[String]) -> ClientConfig {
        ClientConfig {
            endpoints: endpoints.to_vec(),
            ..self.clone()
        }
    }

    /// The same with another per-request timeout.
    pub fn with_timeout(&self, timeout: Duration) -> ClientConfig {
        ClientConfig {
            timeout,
            ..self.clone()
        }
    }

    /// The same as another user (a client certificate and key of the same CA).
    pub fn with_identity(&self, cert: &Path, key: &Path) -> ClientConfig {
        ClientConfig {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            ..self.clone()
        }
    }

    pub async fn connect(&self) -> etcd_client::Client {
        let tls = etcd_client::TlsOptions::new()
            .ca_certificate(etcd_client::Certificate::from_pem(
                std::fs::read(&self.ca).unwrap(),
            ))
            .identity(etcd_client::Identity::from_pem(
                std::fs::read(&self.cert).unwrap(),
                std::fs::read(&self.key).unwrap(),
            ));
        let options = etcd_client::ConnectOptions::new()
            .with_tls(tls)
            .with_timeout(self.timeout)
            .with_connect_timeout(Duration::from_secs(2));
        etcd_client::Client::connect(&self.endpoints, Some(options))
            .await
            .unwrap()
    }
}
