//! Connection startup: the parameters reported to clients, and
//! authentication. With no users configured every connection is trusted
//! (the embedded default); once a user has a password (`--user NAME:PASSWORD`
//! or `CREATE USER ... PASSWORD`), every connection authenticates with
//! SCRAM-SHA-256 and a wrong password or unknown user is refused with
//! SQLSTATE 28P01.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use futures::Sink;
use pgwire::api::auth::sasl::scram::{gen_salted_password, ScramAuth};
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::{
    finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata, AuthSource,
    LoginInfo, Password, ServerParameterProvider, StartupHandler,
};
use pgwire::api::{ClientInfo, PidSecretKeyGenerator, RandomPidSecretKeyGenerator};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use crate::exec::PG_VERSION;

/// SCRAM iteration count (PostgreSQL's default).
const ITERATIONS: usize = 4096;

/// A user's stored secret: the SCRAM salt and salted password.
#[derive(Debug, Clone)]
pub struct Secret {
    pub salt: Vec<u8>,
    pub salted: Vec<u8>,
}

impl Secret {
    /// Derives the secret for `password` with a fresh random salt.
    pub fn new(password: &str) -> Self {
        let salt: [u8; 16] = rand_bytes();
        Secret {
            salt: salt.to_vec(),
            salted: gen_salted_password(password, &salt, ITERATIONS),
        }
    }

    /// `salt-hex:salted-hex`, for the catalog.
    pub fn encode(&self) -> String {
        format!("{}:{}", hex(&self.salt), hex(&self.salted))
    }

    pub fn decode(s: &str) -> Option<Self> {
        let (a, b) = s.split_once(':')?;
        Some(Secret {
            salt: unhex(a)?,
            salted: unhex(b)?,
        })
    }
}

fn rand_bytes() -> [u8; 16] {
    use std::hash::{BuildHasher, Hasher};
    let mut out = [0u8; 16];
    for chunk in out.chunks_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        chunk.copy_from_slice(&h.finish().to_le_bytes()[..chunk.len()]);
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() & 1 == 1 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The users with passwords, shared by every connection.
#[derive(Debug, Clone, Default)]
pub struct Users(Arc<RwLock<HashMap<String, Secret>>>);

impl Users {
    pub fn set(&self, name: &str, secret: Option<Secret>) {
        let mut m = match self.0.write() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        match secret {
            Some(s) => {
                m.insert(name.to_string(), s);
            }
            None => {
                m.remove(name);
            }
        }
    }

    pub fn get(&self, name: &str) -> Option<Secret> {
        match self.0.read() {
            Ok(m) => m.get(name).cloned(),
            Err(p) => p.into_inner().get(name).cloned(),
        }
    }

    pub fn is_empty(&self) -> bool {
        match self.0.read() {
            Ok(m) => m.is_empty(),
            Err(p) => p.into_inner().is_empty(),
        }
    }

    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = match self.0.read() {
            Ok(m) => m.keys().cloned().collect(),
            Err(p) => p.into_inner().keys().cloned().collect(),
        };
        v.sort();
        v
    }
}

#[async_trait]
impl AuthSource for Users {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let user = login.user().unwrap_or_default();
        match self.get(user) {
            Some(s) => Ok(Password::new(Some(s.salt), s.salted)),
            // An unknown user fails exactly like a wrong password.
            None => Err(PgWireError::InvalidPassword(user.to_string())),
        }
    }
}

/// The ParameterStatus values sent at startup.
#[derive(Debug, Default)]
pub struct Params;

impl ServerParameterProvider for Params {
    fn server_parameters<C>(&self, client: &C) -> Option<HashMap<String, String>>
    where
        C: ClientInfo,
    {
        let mut p = HashMap::new();
        for (k, v) in [
            ("server_version", PG_VERSION),
            ("server_encoding", "UTF8"),
            ("client_encoding", "UTF8"),
            ("DateStyle", "ISO, MDY"),
            ("TimeZone", "UTC"),
            ("IntervalStyle", "postgres"),
            ("integer_datetimes", "on"),
            ("standard_conforming_strings", "on"),
            ("is_superuser", "on"),
            ("default_transaction_read_only", "off"),
            ("in_hot_standby", "off"),
        ] {
            p.insert(k.to_string(), v.to_string());
        }
        let meta = client.metadata();
        p.insert(
            "application_name".into(),
            meta.get("application_name").cloned().unwrap_or_default(),
        );
        if let Some(u) = meta.get("user") {
            p.insert("session_authorization".into(), u.clone());
        }
        Some(p)
    }
}

/// Trust or SCRAM, decided per connection from whether users exist.
pub enum Startup {
    Trust,
    Scram(Box<SASLAuthStartupHandler<Params>>),
}

impl Startup {
    pub fn new(users: &Users) -> Self {
        if users.is_empty() {
            return Startup::Trust;
        }
        let mut scram = ScramAuth::new(Arc::new(users.clone()));
        scram.set_iterations(ITERATIONS);
        Startup::Scram(Box::new(
            SASLAuthStartupHandler::new(Arc::new(Params)).with_scram(scram),
        ))
    }
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match self {
            Startup::Scram(h) => h.on_startup(client, message).await,
            Startup::Trust => {
                if let PgWireFrontendMessage::Startup(ref startup) = message {
                    protocol_negotiation(client, startup).await?;
                    save_startup_parameters_to_metadata(client, startup);
                    let (pid, key) = RandomPidSecretKeyGenerator::default().generate(client);
                    client.set_pid_and_secret_key(pid, key);
                    finish_authentication(client, &Params).await?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_round_trip() {
        let s = Secret::new("pw");
        let d = Secret::decode(&s.encode()).expect("decodes");
        assert_eq!(d.salt, s.salt);
        assert_eq!(d.salted, gen_salted_password("pw", &s.salt, ITERATIONS));
    }
}
