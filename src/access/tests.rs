//! `Access` end to end (in-memory and file stores): authentication, admission, reload from
//! another store handle (the admin API's routes: `server/keys.rs`).

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue};

use super::*;
use crate::config::{KeyConfig, KeyScope, RateConfig};
use crate::store::SqliteStore;

const ADMIN: &str = "admin-token-0123456789";

fn auth(keys: Vec<KeyConfig>) -> AuthConfig {
    AuthConfig {
        enabled: true,
        admin_token: Some(ADMIN.into()),
        trusted_proxies: vec!["10.0.0.1".into()],
        keys,
    }
}

fn throttle(per_ip: RateConfig, per_key: RateConfig) -> ThrottleConfig {
    ThrottleConfig {
        per_ip,
        per_key,
        ..ThrottleConfig::default()
    }
}

fn unlimited() -> ThrottleConfig {
    throttle(RateConfig::default(), RateConfig::default())
}

fn access_with(auth: &AuthConfig, throttle: &ThrottleConfig, store: Arc<dyn Store>) -> Access {
    let nets = ["cypress".to_string(), "baobab".to_string()];
    Access::build(auth, throttle, &nets, store, None).unwrap()
}

fn memory() -> Arc<dyn Store> {
    Arc::new(SqliteStore::in_memory().unwrap())
}

fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    h
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn config_key(id: &str, secret: &str) -> KeyConfig {
    KeyConfig {
        scope: KeyScope {
            label: "from config".into(),
            ..Default::default()
        },
        ..KeyConfig::new(id, secret)
    }
}

#[test]
fn disabled_auth_makes_everyone_anonymous() {
    let a = access_with(&AuthConfig::default(), &unlimited(), memory());
    assert!(!a.enabled());
    let c = a
        .authenticate(ip("::ffff:192.0.2.1"), &HeaderMap::new(), None, "cypress")
        .unwrap();
    assert!(c.key.is_none());
    assert_eq!(c.ip, ip("192.0.2.1"));
    assert!(!a.admin_configured());
    assert!(!a.admin_authorized(&bearer(ADMIN)));
}

#[test]
fn authenticate_store_and_config_keys() {
    let a = access_with(
        &auth(vec![config_key("ops", "a-config-secret-123")]),
        &unlimited(),
        memory(),
    );
    let peer = ip("192.0.2.1");
    let k = a
        .create_key(NewKey {
            scope: KeyScope {
                networks: vec!["baobab".into()],
                ip_allow: vec!["192.0.2.0/24".into()],
                ..Default::default()
            },
            ..NewKey::default()
        })
        .unwrap();
    let check = |headers: HeaderMap, path: Option<&str>, net: &str, from: IpAddr| {
        a.authenticate(from, &headers, path, net).map(|c| c.label().to_owned())
    };
    assert_eq!(check(bearer(&k.token), None, "baobab", peer), Ok(k.id.clone()));
    assert_eq!(
        check(HeaderMap::new(), Some(&k.token), "baobab", peer),
        Ok(k.id.clone())
    );
    let mut basic = HeaderMap::new();
    let cred = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{}:{}", k.id, k.secret),
    );
    basic.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Basic {cred}")).unwrap(),
    );
    assert_eq!(check(basic, None, "baobab", peer), Ok(k.id.clone()));
    assert_eq!(
        check(bearer(&k.token), None, "baobab", ip("::ffff:192.0.2.9")),
        Ok(k.id.clone()),
        "IPv4-mapped peer"
    );
    assert_eq!(
        check(bearer(&k.token), None, "cypress", peer),
        Err(Denied::NetworkNotAllowed)
    );
    assert_eq!(
        check(bearer(&k.token), None, "baobab", ip("198.51.100.1")),
        Err(Denied::IpNotAllowed)
    );
    assert_eq!(
        check(bearer(&format!("{}.wrong", k.id)), None, "baobab", peer),
        Err(Denied::WrongSecret)
    );
    assert_eq!(
        check(bearer(&format!("KGNOSUCHKEY.{}", k.secret)), None, "baobab", peer),
        Err(Denied::UnknownKey)
    );
    assert_eq!(
        check(HeaderMap::new(), None, "baobab", peer),
        Err(Denied::MissingCredential)
    );
    assert!(matches!(
        check(bearer("nodot"), None, "baobab", peer),
        Err(Denied::MalformedCredential(_))
    ));
    // The config key, hashed at load.
    assert_eq!(
        check(bearer("ops.a-config-secret-123"), None, "cypress", peer),
        Ok("ops".into())
    );
    assert_eq!(
        check(bearer("ops.a-config-secret-124"), None, "cypress", peer),
        Err(Denied::WrongSecret)
    );
    // Revoked: refused at once.
    a.revoke_key(&k.id).unwrap();
    assert_eq!(check(bearer(&k.token), None, "baobab", peer), Err(Denied::Revoked));
    assert!(matches!(a.revoke_key("ops"), Err(AccessError::ConfigKey(_))));
    assert!(matches!(a.rotate_key("KGNOSUCHKEY"), Err(AccessError::NotFound(_))));
}

#[test]
fn rotation_retires_the_old_secret_at_once() {
    let a = access_with(&auth(vec![]), &unlimited(), memory());
    let k = a.create_key(NewKey::default()).unwrap();
    let r = a.rotate_key(&k.id).unwrap();
    assert_eq!(r.id, k.id);
    assert_ne!(r.secret, k.secret);
    let peer = ip("192.0.2.1");
    assert_eq!(
        a.authenticate(peer, &bearer(&k.token), None, "x").unwrap_err(),
        Denied::WrongSecret
    );
    assert!(a.authenticate(peer, &bearer(&r.token), None, "x").is_ok());
}

#[test]
fn expired_and_disabled_keys() {
    let store = memory();
    let a = access_with(&auth(vec![]), &unlimited(), store.clone());
    let k = a.create_key(NewKey::default()).unwrap();
    let mut r = store.get_key(&k.id).unwrap().unwrap();
    r.expires_at = Some(1);
    store.put_key(&r).unwrap();
    assert!(a.reload().unwrap());
    let peer = ip("192.0.2.1");
    assert_eq!(
        a.authenticate(peer, &bearer(&k.token), None, "x").unwrap_err(),
        Denied::Expired
    );
    r.expires_at = None;
    r.enabled = false;
    store.put_key(&r).unwrap();
    a.reload().unwrap();
    assert_eq!(
        a.authenticate(peer, &bearer(&k.token), None, "x").unwrap_err(),
        Denied::Disabled
    );
    // A wrong secret is told as such, whatever the key's state.
    let wrong = format!("{}.nope", k.id);
    assert_eq!(
        a.authenticate(peer, &bearer(&wrong), None, "x").unwrap_err(),
        Denied::WrongSecret
    );
    let mut config = config_key("old", "a-config-secret-123");
    config.expires_at = Some(1);
    let a = access_with(&auth(vec![config]), &unlimited(), memory());
    let err = a
        .authenticate(peer, &bearer("old.a-config-secret-123"), None, "x")
        .unwrap_err();
    assert_eq!(err, Denied::Expired);
    assert_eq!(a.list_keys().unwrap()[0].status, "expired");
}

#[test]
fn client_ip_trusts_only_configured_proxies() {
    let a = access_with(&auth(vec![]), &unlimited(), memory());
    let mut h = HeaderMap::new();
    h.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6, 198.51.100.7"));
    assert_eq!(a.client_ip("10.0.0.1:80".parse().unwrap(), &h), ip("198.51.100.7"));
    assert_eq!(
        a.client_ip("[::ffff:10.0.0.1]:80".parse().unwrap(), &h),
        ip("198.51.100.7")
    );
    assert_eq!(a.client_ip("10.0.0.2:80".parse().unwrap(), &h), ip("10.0.0.2"));
}

#[test]
fn rate_limits_per_key_and_per_ip() {
    let per_key = RateConfig { rps: 1, burst: 3 };
    let a = access_with(&auth(vec![]), &throttle(RateConfig::default(), per_key), memory());
    let peer = ip("192.0.2.1");
    let k1 = a.create_key(NewKey::default()).unwrap();
    let k2 = a.create_key(NewKey::default()).unwrap();
    let own = a
        .create_key(NewKey {
            scope: KeyScope {
                rps: Some(0),
                ..Default::default()
            },
            ..NewKey::default()
        })
        .unwrap();
    let c1 = a.authenticate(peer, &bearer(&k1.token), None, "x").unwrap();
    let c2 = a.authenticate(peer, &bearer(&k2.token), None, "x").unwrap();
    let free = a.authenticate(peer, &bearer(&own.token), None, "x").unwrap();
    for _ in 0..3 {
        assert_eq!(a.admit(&c1, 1), Ok(()));
    }
    assert_eq!(a.admit(&c1, 1), Err(Denied::RateLimited { retry_after_secs: 1 }));
    // Another key from the same IP is not affected; a key with rps 0 is unlimited.
    assert_eq!(a.admit(&c2, 3), Ok(()), "a batch of weight 3 fits the burst");
    assert!(a.admit(&c2, 1).is_err());
    for _ in 0..100 {
        assert_eq!(a.admit(&free, 1), Ok(()));
    }
    // Reload keeps the bucket of an unchanged key (no reset by touching the store).
    a.create_key(NewKey::default()).unwrap();
    let c1 = a.authenticate(peer, &bearer(&k1.token), None, "x").unwrap();
    assert!(a.admit(&c1, 1).is_err());
    assert_eq!(a.weight("klay_getLogs"), 10);
    assert_eq!(a.weight("kaia_getLogs"), 10);
    assert_eq!(a.weight("klay_call"), 1);

    // Per IP: anonymous callers (auth off) share their IP's bucket; other IPs are separate.
    let a = access_with(
        &AuthConfig::default(),
        &throttle(RateConfig { rps: 1, burst: 2 }, per_key),
        memory(),
    );
    let x = Caller::anonymous(ip("192.0.2.1"));
    let y = Caller::anonymous(ip("192.0.2.2"));
    assert_eq!(a.admit(&x, 2), Ok(()));
    assert!(matches!(
        a.admit(&x, 1),
        Err(Denied::RateLimited { retry_after_secs: 1.. })
    ));
    assert_eq!(a.admit(&y, 1), Ok(()));
    a.prune();
}

#[test]
fn reload_picks_up_a_key_created_by_another_process() {
    let dir = std::env::temp_dir().join(format!("kengate-access-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("kengate.db");
    let running = access_with(&auth(vec![]), &unlimited(), Arc::new(SqliteStore::open(&path).unwrap()));
    assert!(!running.reload().unwrap(), "nothing changed");
    // `kengate keys create` in another process: its own handle on the same file.
    let cli = access_with(&auth(vec![]), &unlimited(), Arc::new(SqliteStore::open(&path).unwrap()));
    let k = cli.create_key(NewKey::default()).unwrap();
    let peer = ip("192.0.2.1");
    assert_eq!(
        running.authenticate(peer, &bearer(&k.token), None, "x").unwrap_err(),
        Denied::UnknownKey
    );
    assert!(running.reload().unwrap());
    assert!(running.authenticate(peer, &bearer(&k.token), None, "x").is_ok());
    assert!(!running.reload().unwrap());
    cli.revoke_key(&k.id).unwrap();
    assert!(running.reload().unwrap());
    assert_eq!(
        running.authenticate(peer, &bearer(&k.token), None, "x").unwrap_err(),
        Denied::Revoked
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(start_paused = true)]
async fn upkeep_reloads_within_a_second() {
    let store = memory();
    let a = Arc::new(access_with(&auth(vec![]), &unlimited(), store.clone()));
    let task = a.spawn_upkeep();
    let other = access_with(&auth(vec![]), &unlimited(), store);
    let k = other.create_key(NewKey::default()).unwrap();
    let peer = ip("192.0.2.1");
    let mut ok = false;
    for _ in 0..20 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if a.authenticate(peer, &bearer(&k.token), None, "x").is_ok() {
            ok = true;
            break;
        }
    }
    task.abort();
    assert!(ok, "the key never showed up");
}

#[test]
fn store_key_with_a_config_id_is_ignored() {
    let store = memory();
    let a = access_with(
        &auth(vec![config_key("ops", "a-config-secret-123")]),
        &unlimited(),
        store.clone(),
    );
    let k = a.create_key(NewKey::default()).unwrap();
    let mut clash = store.get_key(&k.id).unwrap().unwrap();
    clash.id = "ops".into();
    store.put_key(&clash).unwrap();
    a.reload().unwrap();
    let peer = ip("192.0.2.1");
    assert!(a
        .authenticate(peer, &bearer(&format!("ops.{}", k.secret)), None, "x")
        .is_err());
    assert!(a
        .authenticate(peer, &bearer("ops.a-config-secret-123"), None, "x")
        .is_ok());
    let ids: Vec<_> = a.list_keys().unwrap().into_iter().map(|k| (k.id, k.source)).collect();
    assert_eq!(ids, [("ops".into(), KeySource::Config), (k.id, KeySource::Store)]);
}

#[test]
fn bad_config_is_a_typed_error() {
    let store = memory();
    let nets: [String; 0] = [];
    let build = |a: AuthConfig, env: Option<&str>| {
        Access::build(&a, &unlimited(), &nets, store.clone(), env.map(str::to_owned)).map(|_| ())
    };
    let err = |a: AuthConfig| build(a, None).unwrap_err().to_string();
    assert!(err(AuthConfig {
        admin_token: Some("short".into()),
        ..AuthConfig::default()
    })
    .contains("admin_token"));
    assert!(build(AuthConfig::default(), Some("short"))
        .unwrap_err()
        .to_string()
        .contains(ADMIN_TOKEN_ENV));
    assert!(err(AuthConfig {
        trusted_proxies: vec!["x".into()],
        ..AuthConfig::default()
    })
    .contains("trusted_proxies[0]"));
    let twice = vec![
        config_key("a", "a-config-secret-123"),
        config_key("a", "a-config-secret-123"),
    ];
    assert!(err(AuthConfig {
        keys: twice,
        ..AuthConfig::default()
    })
    .contains("declared twice"));
    let mut bad_cidr = config_key("a", "a-config-secret-123");
    bad_cidr.scope.ip_allow = vec!["1.2.3.4/99".into()];
    assert!(err(AuthConfig {
        keys: vec![bad_cidr],
        ..AuthConfig::default()
    })
    .contains("auth.keys[0].ip_allow"));
}

#[test]
fn admin_token_check() {
    let a = access_with(&auth(vec![]), &unlimited(), memory());
    assert!(a.admin_configured());
    assert!(a.admin_authorized(&bearer(ADMIN)));
    assert!(!a.admin_authorized(&bearer("admin-token-012345678")));
    assert!(!a.admin_authorized(&bearer("")));
    assert!(!a.admin_authorized(&HeaderMap::new()));
    let env = Access::build(
        &auth(vec![]),
        &unlimited(),
        &[],
        memory(),
        Some("from-the-environment".into()),
    )
    .unwrap();
    assert!(env.admin_authorized(&bearer("from-the-environment")));
    assert!(
        !env.admin_authorized(&bearer(ADMIN)),
        "the env var overrides the config"
    );
    assert!(!format!("{env:?}").contains("environment"));
}
