//! The verifier and the minter against hand-made tokens: pinned algorithms, the
//! claims the spec requires, and every refusal's code.

use super::*;
use serde_json::{json, Value};
use AuthError::*;

const SECRET: &[u8] = b"test-secret-0123456789";
const NOW: u64 = 1_700_000_000;

fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Token with arbitrary header and payload JSON and a given signature segment.
fn raw(header: &Value, claims: &Value, sig: &str) -> String {
    let enc = |v: &Value| b64url(v.to_string().as_bytes());
    format!("{}.{}.{sig}", enc(header), enc(claims))
}

/// Signs through jsonwebtoken, hence through our provider, which must be installed
/// first (tests may run before any `Verifier::new`).
fn sign(alg: Algorithm, secret: &[u8], claims: &Value) -> String {
    hmac::install();
    let key = EncodingKey::from_secret(secret);
    jsonwebtoken::encode(&Header::new(alg), claims, &key).unwrap()
}

fn verifier() -> Verifier {
    Verifier::new(SECRET, true)
}

/// Verify an HS256 token with these claims at `now`.
fn at(claims: Value, now: u64) -> Result<Identity, AuthError> {
    verifier().verify(&sign(Algorithm::HS256, SECRET, &claims), now)
}

fn ok_claims() -> Value {
    json!({"user_id": "u1", "roles": ["user"], "exp": NOW + 60})
}

#[test]
fn mint_round_trip() {
    let roles = vec!["user".to_string()];
    let t = mint(SECRET, "u1", None, &roles, NOW, Some(60)).unwrap();
    let id = verifier().verify(&t, NOW).unwrap();
    let want = Identity {
        user_id: "u1".into(),
        name: "u1".into(),
        roles,
        expires_at: Some(NOW + 60),
    };
    assert_eq!(id, want);
    assert!(!id.is_admin());

    let roles = vec!["admin".to_string()];
    let t = mint(SECRET, "a1", Some("Ada"), &roles, NOW, Some(60)).unwrap();
    let id = verifier().verify(&t, NOW).unwrap();
    assert_eq!(id.name, "Ada");
    assert!(id.is_admin());

    // No ttl → no exp: refused under REQUIRE_EXP, fine without it.
    let t = mint(SECRET, "u1", None, &[], NOW, None).unwrap();
    assert_eq!(verifier().verify(&t, NOW), Err(MissingExp));
    let id = Verifier::new(SECRET, false).verify(&t, NOW).unwrap();
    assert_eq!((id.roles.len(), id.expires_at), (0, None));
}

#[test]
fn mint_refuses_bad_input() {
    for r in [
        mint(b"", "u", None, &[], NOW, None),
        mint(SECRET, "", None, &[], NOW, None),
        mint(SECRET, "u", None, &[], u64::MAX, Some(1)),
        mint(
            SECRET,
            "u",
            None,
            &[],
            NOW,
            Some(MAX_TOKEN_LIFETIME_SECS + 1),
        ),
    ] {
        assert!(matches!(r, Err(Mint(_))), "{r:?}");
    }
}

/// RFC 7515 appendix A.1: an HS256 JWS signed elsewhere. Its signature must verify (the
/// claims then lack `user_id`), and one changed signature byte must not.
#[test]
fn rfc7515_hs256_example_verifies_with_our_provider() {
    let key = URL_SAFE_NO_PAD
        .decode(
            "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow",
        )
        .unwrap();
    let token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.\
        eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.\
        dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let v = Verifier::new(&key, false);
    assert_eq!(v.verify(token, 0), Err(MissingClaim("user_id")));
    let tampered = token.replace(".dBjf", ".eBjf");
    assert_eq!(v.verify(&tampered, 0), Err(BadSignature));
}

#[test]
fn hs384_and_hs512_accepted() {
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let t = sign(alg, SECRET, &ok_claims());
        assert_eq!(verifier().verify(&t, NOW).unwrap().user_id, "u1");
    }
}

#[test]
fn alg_none_rejected() {
    for hdr in [json!({"alg": "none", "typ": "JWT"}), json!({"alg": "None"})] {
        let t = raw(&hdr, &ok_claims(), "");
        assert_eq!(verifier().verify(&t, NOW), Err(AlgorithmNotAllowed));
    }
}

#[test]
fn asymmetric_and_misspelled_algs_rejected_before_key() {
    // Garbage signature, and a verifier with no usable key: touching either would
    // give Malformed or BadSignature instead.
    let keyless = Verifier::new(b"", true);
    for alg in ["RS256", "ES256", "PS256", "EdDSA", "hs256", "HS256 "] {
        let t = raw(&json!({"alg": alg}), &ok_claims(), "not*base64");
        assert_eq!(
            verifier().verify(&t, NOW),
            Err(AlgorithmNotAllowed),
            "{alg}"
        );
        assert_eq!(keyless.verify(&t, NOW), Err(AlgorithmNotAllowed), "{alg}");
    }
}

#[test]
fn empty_secret_fails_closed() {
    let t = sign(Algorithm::HS256, b"", &ok_claims());
    assert_eq!(Verifier::new(b"", true).verify(&t, NOW), Err(BadSignature));
}

#[test]
fn wrong_secret_or_tampering_is_bad_signature() {
    let t = sign(Algorithm::HS256, b"other-secret", &ok_claims());
    assert_eq!(verifier().verify(&t, NOW), Err(BadSignature));

    // Swap in an admin payload, keep the signature.
    let t = sign(Algorithm::HS256, SECRET, &ok_claims());
    let sig = t.rsplit('.').next().unwrap();
    let hdr = json!({"alg": "HS256", "typ": "JWT"});
    let admin = json!({"user_id": "u1", "roles": ["admin"], "exp": NOW + 60});
    assert_eq!(
        verifier().verify(&raw(&hdr, &admin, sig), NOW),
        Err(BadSignature)
    );

    // HS512 signature relabelled as HS256.
    let t = sign(Algorithm::HS512, SECRET, &ok_claims());
    let (_, rest) = t.split_once('.').unwrap();
    let relabelled = format!("{}.{rest}", b64url(hdr.to_string().as_bytes()));
    assert_eq!(verifier().verify(&relabelled, NOW), Err(BadSignature));
}

#[test]
fn exp_and_nbf_without_leeway() {
    let with = |k: &str, t: Value| json!({"user_id": "u", "roles": [], "exp": NOW + 9, k: t});
    assert_eq!(at(with("exp", json!(NOW - 1)), NOW), Err(Expired));
    assert_eq!(at(with("exp", json!(NOW)), NOW), Err(Expired));
    assert!(at(with("exp", json!(NOW + 1)), NOW).is_ok());
    // Fractional exp rounds up: valid strictly before 100.5.
    let frac = at(with("exp", json!(100.5)), 100);
    assert_eq!(frac.unwrap().expires_at, Some(101));
    assert_eq!(at(with("exp", json!(100.5)), 101), Err(Expired));
    assert_eq!(at(with("exp", json!("soon")), NOW), Err(Malformed));

    assert_eq!(at(with("nbf", json!(NOW + 1)), NOW), Err(NotYetValid));
    assert!(at(with("nbf", json!(NOW)), NOW).is_ok());
}

#[test]
fn exp_beyond_ten_years_is_refused_however_large() {
    let exp = |t: Value| at(json!({"user_id": "u", "roles": [], "exp": t}), NOW);
    let limit = NOW + MAX_TOKEN_LIFETIME_SECS;
    assert_eq!(exp(json!(limit)).unwrap().expires_at, Some(limit));
    for far in [json!(limit + 1), json!(1e19), json!(1e300), json!(f64::MAX)] {
        assert_eq!(exp(far.clone()), Err(ExpiresTooLate), "{far}");
    }
    // What `mint` makes, the verifier takes.
    let t = mint(SECRET, "u", None, &[], NOW, Some(MAX_TOKEN_LIFETIME_SECS));
    assert!(verifier().verify(&t.expect("mint"), NOW).is_ok());
}

#[test]
fn missing_exp_depends_on_require_exp() {
    let t = sign(
        Algorithm::HS256,
        SECRET,
        &json!({"user_id": "u", "roles": []}),
    );
    assert_eq!(verifier().verify(&t, NOW), Err(MissingExp));
    let id = Verifier::new(SECRET, false).verify(&t, NOW).unwrap();
    assert_eq!(id.expires_at, None);
}

#[test]
fn claim_presence_and_types() {
    let exp = NOW + 60;
    let cases = [
        (json!({"roles": [], "exp": exp}), MissingClaim("user_id")),
        (
            json!({"user_id": "", "roles": [], "exp": exp}),
            MissingClaim("user_id"),
        ),
        (
            json!({"user_id": null, "roles": [], "exp": exp}),
            MissingClaim("user_id"),
        ),
        (json!({"user_id": "u", "exp": exp}), MissingClaim("roles")),
        // Present but mistyped → Malformed (documented on the variant).
        (
            json!({"user_id": "u", "roles": "admin", "exp": exp}),
            Malformed,
        ),
        (json!({"user_id": "u", "roles": [1], "exp": exp}), Malformed),
        (json!({"user_id": 7, "roles": [], "exp": exp}), Malformed),
        (json!(["not", "an", "object"]), Malformed),
    ];
    for (claims, want) in cases {
        assert_eq!(at(claims.clone(), NOW), Err(want), "{claims}");
    }
    // Empty name defaults too; unknown claims and `aud` are ignored.
    let c = json!({"user_id": "u", "name": "", "roles": [], "exp": exp, "aud": "x", "x": 1});
    assert_eq!(at(c, NOW).unwrap().name, "u");
}

#[test]
fn not_a_jwt_is_malformed() {
    let good = sign(Algorithm::HS256, SECRET, &ok_claims());
    let mut h = Header::new(Algorithm::HS256);
    h.crit = Some(vec!["b64".into()]);
    let crit = jsonwebtoken::encode(&h, &ok_claims(), &EncodingKey::from_secret(SECRET));
    let no_alg = raw(&json!({"typ": "JWT"}), &ok_claims(), "");
    let extra = format!("{good}.x");
    for t in [
        "",
        "abc",
        "a.b",
        "a.b.c",
        "..",
        &extra,
        &crit.unwrap(),
        &no_alg,
    ] {
        assert_eq!(verifier().verify(t, NOW), Err(Malformed), "{t:?}");
    }
}

#[test]
fn bearer_token_cases() {
    assert_eq!(bearer_token("Bearer abc.def.ghi"), Ok("abc.def.ghi"));
    assert_eq!(bearer_token("Bearer  abc "), Ok("abc"));
    let bad = [
        "",
        "Bearer",
        "Bearer ",
        "Bearer  ",
        "bearer x",
        "BEARER x",
        "Basic dTpw",
        "x",
    ];
    for b in bad {
        assert_eq!(bearer_token(b), Err(MalformedHeader), "{b:?}");
    }
}

#[test]
fn admin_roles() {
    let id = |r: &[&str]| Identity {
        user_id: "u".into(),
        name: "u".into(),
        roles: r.iter().map(|s| s.to_string()).collect(),
        expires_at: None,
    };
    assert!(id(&["user", "chat_admin"]).is_admin());
    assert!(id(&["admin"]).is_admin());
    assert!(!id(&["Admin", "administrator", "user"]).is_admin());
    assert!(!id(&[]).is_admin());
}

#[test]
fn http_codes_are_generic() {
    assert_eq!(MalformedHeader.http_code(), "UNAUTHORIZED");
    for e in [Malformed, BadSignature, Expired, MissingClaim("roles")] {
        assert_eq!(e.http_code(), "INVALID_TOKEN");
        assert_eq!(e.http_message(), "Invalid or expired authentication token");
    }
}

#[test]
fn verifier_is_shareable_and_hides_secret() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Verifier>();
    assert!(!format!("{:?}", verifier()).contains("test-secret"));
}
