//! Accounts for the HTTP tests that log in: changes applied to the registry's
//! directory as an actor, and clients that send Basic credentials (password
//! `<user>-pw`) on every request.

#![allow(dead_code)]

use std::time::Duration;

use base64::Engine;
use berth_auth::{Actor, Change, Principal};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};

use super::support::{Api, Server};

pub fn apply(srv: &Server, actor: &Actor, change: Change) {
    srv.reg
        .auth()
        .store()
        .apply(actor, &change)
        .unwrap_or_else(|e| panic!("{change:?}: {e}"));
}

pub fn actor(name: &str) -> Actor {
    Actor {
        principal: Principal::Account(name.into()),
        local: false,
        from: "127.0.0.1".into(),
    }
}

pub fn basic(user: &str) -> String {
    let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{user}-pw"));
    format!("Basic {b}")
}

/// A client that logs in as `user` on every request.
pub fn as_user(srv: &Server, user: &str) -> Api {
    let mut h = HeaderMap::new();
    h.insert(AUTHORIZATION, HeaderValue::from_str(&basic(user)).unwrap());
    Api {
        base: srv.api.base.clone(),
        client: reqwest::Client::builder()
            .default_headers(h)
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
    }
}
