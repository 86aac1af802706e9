//! The `totp` method, multi-factor rules and auth receipts over HTTP.

mod fixtures;
mod support;

use fixtures::{create_project, create_user, grant, TestUser};
use himmel_identity::auth::totp::{decode_base32, passcode_at};
use serde_json::{json, Value};
use support::{Engine, Region};

const SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

fn passcode(offset_s: i64) -> String {
    let key = decode_base32(SECRET).unwrap();
    passcode_at(&key, chrono::Utc::now().timestamp() + offset_s)
}

fn password_section(u: &TestUser) -> Value {
    json!({"user": {"name": u.name, "domain": {"name": "Default"}, "password": u.password}})
}

fn totp_section(u: &TestUser, code: &str) -> Value {
    json!({"user": {"name": u.name, "domain": {"name": "Default"}, "passcode": code}})
}

/// An auth body with the given method sections, scoped to `project`.
fn auth_body(sections: &[(&str, Value)], project: &str) -> Value {
    let mut identity = json!({"methods": sections.iter().map(|(m, _)| *m).collect::<Vec<_>>()});
    for (m, s) in sections {
        identity[*m] = s.clone();
    }
    json!({"auth": {"identity": identity, "scope": {"project": {"id": project}}}})
}

/// POST /v3/auth/tokens: status, body, issued token and receipt header.
async fn auth(
    region: &Region,
    body: Value,
    receipt: Option<&str>,
) -> (u16, Value, Option<String>, Option<String>) {
    let mut req = region
        .http
        .post(format!("{}/v3/auth/tokens", region.url))
        .json(&body);
    if let Some(r) = receipt {
        req = req.header("openstack-auth-receipt", r);
    }
    let r = req.send().await.unwrap();
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let (token, receipt) = (header("x-subject-token"), header("openstack-auth-receipt"));
    let status = r.status().as_u16();
    (
        status,
        r.json().await.unwrap_or(Value::Null),
        token,
        receipt,
    )
}

async fn add_totp(region: &Region, admin: &str, user: &TestUser) {
    let body = json!({"credential": {"type": "totp", "blob": SECRET, "user_id": user.id}});
    let (status, created) = region
        .call("POST", "/v3/credentials", admin, Some(body))
        .await;
    assert_eq!(status, 201, "{created}");
}

fn methods(body: &Value) -> Vec<String> {
    let mut m: Vec<String> = body["token"]["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    m.sort();
    m
}

async fn multi_factor(region: &Region) {
    let admin = region.admin_token().await;
    let project = create_project(region, "epsilon").await;
    let rules = json!({"multi_factor_auth_enabled": true,
                       "multi_factor_auth_rules": [["password", "totp"]]});
    let ivy = create_user(region, "ivy", rules.clone()).await;
    let jack = create_user(region, "jack", rules).await;
    for u in [&ivy, &jack] {
        grant(region, &u.id, &project, "member").await;
        add_totp(region, &admin, u).await;
    }

    // Password alone: 401 with a receipt and the rules.
    let (status, body, token, receipt) = auth(
        region,
        auth_body(&[("password", password_section(&ivy))], &project),
        None,
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert!(token.is_none());
    let receipt = receipt.expect("an Openstack-Auth-Receipt header");
    assert_eq!(body["required_auth_methods"], json!([["password", "totp"]]));
    assert_eq!(body["receipt"]["methods"], json!(["password"]));
    assert_eq!(body["receipt"]["user"]["id"], ivy.id.as_str());
    assert_eq!(body["receipt"]["user"]["domain"]["id"], "default");

    // Both factors in one request.
    let both = auth_body(
        &[
            ("password", password_section(&ivy)),
            ("totp", totp_section(&ivy, &passcode(0))),
        ],
        &project,
    );
    let (status, body, token, _) = auth(region, both, None).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(methods(&body), ["password", "totp"]);
    let token = token.unwrap();

    // The receipt plus the missing factor.
    let totp_only = |code: &str| auth_body(&[("totp", totp_section(&ivy, code))], &project);
    let (status, body, _, _) = auth(region, totp_only(&passcode(0)), Some(&receipt)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(methods(&body), ["password", "totp"]);
    // One step of clock skew either way is accepted, three are not.
    for offset in [-30, 30] {
        let (status, _, _, _) = auth(region, totp_only(&passcode(offset)), Some(&receipt)).await;
        assert_eq!(status, 201, "passcode {offset} s off");
    }
    let (status, _, _, _) = auth(region, totp_only(&passcode(-90)), Some(&receipt)).await;
    assert_eq!(status, 401, "passcode from three steps ago");

    // Wrong passcodes and bad receipts.
    let wrong = format!(
        "{:06}",
        (passcode(0).parse::<u32>().unwrap() + 1) % 1_000_000
    );
    for (code, why) in [
        (wrong.as_str(), "wrong"),
        ("12345", "too short"),
        ("abcdef", "letters"),
    ] {
        let (status, body, _, receipt_header) = auth(region, totp_only(code), Some(&receipt)).await;
        assert_eq!(status, 401, "{why}: {body}");
        assert!(receipt_header.is_none(), "no receipt for a failed factor");
    }
    let no_passcode = auth_body(&[("totp", json!({"user": {"id": ivy.id}}))], &project);
    let (status, _, _, _) = auth(region, no_passcode, Some(&receipt)).await;
    assert_eq!(status, 400);
    let (status, _, _, _) = auth(region, totp_only(&passcode(0)), Some("not-a-receipt")).await;
    assert_eq!(status, 401);
    // TOTP alone is one factor: another receipt, not a token.
    let (status, body, _, totp_receipt) = auth(region, totp_only(&passcode(0)), None).await;
    assert_eq!(status, 401);
    assert_eq!(body["receipt"]["methods"], json!(["totp"]));
    assert!(totp_receipt.is_some());
    // Jack's receipt does not complete Ivy's login.
    let (_, _, _, jack_receipt) = auth(
        region,
        auth_body(&[("password", password_section(&jack))], &project),
        None,
    )
    .await;
    let (status, _, _, _) = auth(
        region,
        totp_only(&passcode(0)),
        Some(&jack_receipt.unwrap()),
    )
    .await;
    assert_eq!(status, 401);

    // A token from both factors can be rescoped.
    let rescope = json!({"auth": {"identity": {"methods": ["token"], "token": {"id": token}},
                         "scope": {"project": {"id": project}}}});
    let (status, body, _, _) = auth(region, rescope, None).await;
    assert_eq!(status, 201, "{body}");

    // Rules switched off, or none: one factor is enough.
    let kim = create_user(
        region,
        "kim",
        json!({"multi_factor_auth_enabled": false,
               "multi_factor_auth_rules": [["password", "totp"]]}),
    )
    .await;
    let lou = create_user(region, "lou", json!({})).await;
    for u in [&kim, &lou] {
        grant(region, &u.id, &project, "member").await;
        add_totp(region, &admin, u).await;
    }
    let (status, _, _, _) = auth(
        region,
        auth_body(&[("password", password_section(&kim))], &project),
        None,
    )
    .await;
    assert_eq!(status, 201, "rules disabled");
    let (status, body, _, _) = auth(
        region,
        auth_body(&[("totp", totp_section(&lou, &passcode(0)))], &project),
        None,
    )
    .await;
    assert_eq!(status, 201, "totp alone without rules: {body}");
    assert_eq!(methods(&body), ["totp"]);
    // A user without a TOTP credential cannot use the method.
    let max = create_user(region, "max", json!({})).await;
    let (status, _, _, _) = auth(
        region,
        auth_body(&[("totp", totp_section(&max, &passcode(0)))], &project),
        None,
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn multi_factor_sqlite() {
    multi_factor(&Region::start().await).await;
}

#[tokio::test]
async fn multi_factor_postgres() {
    match Region::start_on(Engine::Postgres).await {
        Some(region) => multi_factor(&region).await,
        None => eprintln!("skipped: HIMMEL_TEST_POSTGRES is not set"),
    }
}
