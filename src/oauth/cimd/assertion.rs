//! `private_key_jwt` client authentication (RFC 7523 §2.2, §3; OpenID Connect Core §9) for
//! clients identified by a metadata document that publishes their keys: a JWT signed with one
//! of them, `iss` = `sub` = the client's id, `aud` this server's token endpoint or issuer, an
//! `exp` in the near future, and a `jti` accepted only once.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

/// RFC 7523 §2.2.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// An assertion may not live longer than this (its `exp` is at most this far ahead).
const MAX_LIFETIME: Duration = Duration::minutes(10);
/// Clock skew tolerated on `exp`, `nbf` and `iat`.
const SKEW: Duration = Duration::seconds(60);
/// Longest assertion read.
const MAX_ASSERTION_BYTES: usize = 8 * 1024;

/// What a verified assertion proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAssertion {
    pub jti: String,
    pub expires_at: DateTime<Utc>,
}

/// The `iss` an assertion claims, read without verification: the client to look up when the
/// request carries no `client_id` (RFC 7521 §4.2 makes it optional).
pub fn claimed_issuer(assertion: &str) -> Option<String> {
    let payload = assertion.split('.').nth(1)?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

/// Verifies `assertion` for `client_id` against the client's JWK Set; `audiences` are the
/// values `aud` may hold. The `jti` is returned for the replay check.
pub fn verify(
    assertion: &str,
    client_id: &str,
    jwks: &Value,
    audiences: &[String],
    now: DateTime<Utc>,
) -> Result<VerifiedAssertion, String> {
    if assertion.len() > MAX_ASSERTION_BYTES {
        return Err("the client_assertion is too long".into());
    }
    let mut parts = assertion.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("the client_assertion is not a signed JWT (three parts)".into());
    };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).ok();
    let header: Value = decode(h)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("the client_assertion's header is not base64url JSON")?;
    let claims: Value = decode(p)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(Value::is_object)
        .ok_or("the client_assertion's claims are not base64url JSON")?;
    let signature = decode(s).ok_or("the client_assertion's signature is not base64url")?;
    if header.get("crit").is_some() {
        return Err(
            "the client_assertion has critical header parameters, which are not supported".into(),
        );
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kid = header.get("kid").and_then(Value::as_str);
    let signed = format!("{h}.{p}");
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let candidates: Vec<&Value> = keys
        .iter()
        .filter(|k| kid.is_none_or(|kid| k.get("kid").and_then(Value::as_str) == Some(kid)))
        .filter(|k| {
            k.get("use")
                .and_then(Value::as_str)
                .is_none_or(|u| u == "sig")
        })
        .filter(|k| {
            k.get("alg")
                .and_then(Value::as_str)
                .is_none_or(|a| a == alg)
        })
        .collect();
    if candidates.is_empty() {
        return Err(
            "no key in the client's JWK Set matches the client_assertion's kid and alg".into(),
        );
    }
    let verified = candidates
        .iter()
        .any(|key| verify_signature(alg, key, signed.as_bytes(), &signature));
    if !verified {
        return Err(format!(
            "the client_assertion's signature does not verify with the client's keys (alg {alg:?}; EdDSA, ES256 and RS256 are supported)"
        ));
    }
    check_claims(&claims, client_id, audiences, now)
}

fn check_claims(
    claims: &Value,
    client_id: &str,
    audiences: &[String],
    now: DateTime<Utc>,
) -> Result<VerifiedAssertion, String> {
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let time = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_i64)
            .and_then(|t| DateTime::from_timestamp(t, 0))
    };
    if text("iss") != Some(client_id) || text("sub") != Some(client_id) {
        return Err(
            "the client_assertion's iss and sub must both be the client_id (RFC 7523 §3)".into(),
        );
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => audiences.contains(a),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .any(|a| audiences.iter().any(|x| x == a)),
        _ => false,
    };
    if !aud_ok {
        return Err(
            "the client_assertion's aud must be this server's token endpoint or issuer".into(),
        );
    }
    let expires_at = time("exp").ok_or("the client_assertion needs an exp")?;
    if expires_at + SKEW <= now {
        return Err("the client_assertion has expired".into());
    }
    if expires_at > now + MAX_LIFETIME + SKEW {
        return Err("the client_assertion's exp is more than 10 minutes ahead".into());
    }
    if time("nbf").is_some_and(|nbf| nbf > now + SKEW)
        || time("iat").is_some_and(|iat| iat > now + SKEW)
    {
        return Err("the client_assertion is not valid yet".into());
    }
    let jti = text("jti")
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or("the client_assertion needs a jti")?;
    Ok(VerifiedAssertion {
        jti: jti.to_owned(),
        expires_at,
    })
}

fn verify_signature(alg: &str, key: &Value, message: &[u8], signature: &[u8]) -> bool {
    let field = |name: &str| {
        key.get(name)
            .and_then(Value::as_str)
            .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
    };
    let kty = key.get("kty").and_then(Value::as_str);
    let crv = key.get("crv").and_then(Value::as_str);
    match (alg, kty, crv) {
        ("EdDSA", Some("OKP"), Some("Ed25519")) => field("x").is_some_and(|x| {
            ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, x)
                .verify(message, signature)
                .is_ok()
        }),
        ("ES256", Some("EC"), Some("P-256")) => match (field("x"), field("y")) {
            (Some(x), Some(y)) if x.len() == 32 && y.len() == 32 => {
                let mut point = vec![4u8];
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                ring::signature::UnparsedPublicKey::new(
                    &ring::signature::ECDSA_P256_SHA256_FIXED,
                    point,
                )
                .verify(message, signature)
                .is_ok()
            }
            _ => false,
        },
        ("RS256", Some("RSA"), _) => match (field("n"), field("e")) {
            (Some(n), Some(e)) => ring::signature::RsaPublicKeyComponents { n, e }
                .verify(
                    &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                    message,
                    signature,
                )
                .is_ok(),
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair};

    const CLIENT: &str = "https://app.example/meta.json";

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn jwt(header: &Value, claims: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
        let signed = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = sign(signed.as_bytes());
        format!("{signed}.{}", b64(&sig))
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
    }

    fn claims(aud: &str) -> Value {
        serde_json::json!({"iss": CLIENT, "sub": CLIENT, "aud": aud, "exp": now().timestamp() + 300, "jti": "j1"})
    }

    #[test]
    fn eddsa_and_es256_assertions_verify_and_forgeries_do_not() {
        let rng = ring::rand::SystemRandom::new();
        let ed_doc = Ed25519KeyPair::generate_pkcs8(&rng)
            .map(|d| d.as_ref().to_vec())
            .unwrap_or_default();
        let ed = Ed25519KeyPair::from_pkcs8(&ed_doc);
        assert!(ed.is_ok());
        let Ok(ed) = ed else { return };
        let ec_doc =
            EcdsaKeyPair::generate_pkcs8(&ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map(|d| d.as_ref().to_vec())
                .unwrap_or_default();
        let Ok(ec) = EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &ec_doc,
            &rng,
        ) else {
            return;
        };
        let point = ec.public_key().as_ref();
        let jwks = serde_json::json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": b64(ed.public_key().as_ref())},
            {"kty": "EC", "crv": "P-256", "kid": "ec", "x": b64(&point[1..33]), "y": b64(&point[33..])},
        ]});
        let aud = vec!["https://coder.example/oauth2/tokens".to_owned()];
        let ed_sign = |m: &[u8]| ed.sign(m).as_ref().to_vec();
        let ec_sign = |m: &[u8]| {
            ec.sign(&rng, m)
                .map(|s| s.as_ref().to_vec())
                .unwrap_or_default()
        };

        let ok = jwt(
            &serde_json::json!({"alg": "EdDSA", "kid": "ed"}),
            &claims(&aud[0]),
            ed_sign,
        );
        assert_eq!(
            verify(&ok, CLIENT, &jwks, &aud, now()).map(|v| v.jti),
            Ok("j1".into())
        );
        let ok = jwt(
            &serde_json::json!({"alg": "ES256", "kid": "ec"}),
            &claims(&aud[0]),
            ec_sign,
        );
        assert!(verify(&ok, CLIENT, &jwks, &aud, now()).is_ok());
        assert_eq!(claimed_issuer(&ok).as_deref(), Some(CLIENT));

        let refused = |token: String, why: &str| {
            let err = verify(&token, CLIENT, &jwks, &aud, now())
                .err()
                .unwrap_or_default();
            assert!(err.contains(why), "{why}: {err}");
        };
        // Signed by the wrong key, or claiming another algorithm.
        refused(
            jwt(
                &serde_json::json!({"alg": "EdDSA", "kid": "nope"}),
                &claims(&aud[0]),
                ed_sign,
            ),
            "no key",
        );
        refused(
            jwt(
                &serde_json::json!({"alg": "ES256", "kid": "ec"}),
                &claims(&aud[0]),
                ed_sign,
            ),
            "does not verify",
        );
        refused(
            jwt(
                &serde_json::json!({"alg": "none", "kid": "ed"}),
                &claims(&aud[0]),
                |_| Vec::new(),
            ),
            "does not verify",
        );
        refused(
            jwt(
                &serde_json::json!({"alg": "HS256"}),
                &claims(&aud[0]),
                ed_sign,
            ),
            "does not verify",
        );
        // Tampered claims.
        let good = jwt(
            &serde_json::json!({"alg": "EdDSA", "kid": "ed"}),
            &claims(&aud[0]),
            ed_sign,
        );
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        let mut other = claims(&aud[0]);
        other["sub"] = serde_json::json!("https://evil.example/m");
        parts[1] = b64(other.to_string().as_bytes());
        refused(parts.join("."), "does not verify");
        // Right key, wrong claims.
        let with = |f: &dyn Fn(&mut Value)| {
            let mut c = claims(&aud[0]);
            f(&mut c);
            jwt(
                &serde_json::json!({"alg": "EdDSA", "kid": "ed"}),
                &c,
                ed_sign,
            )
        };
        refused(
            with(&|c| c["aud"] = serde_json::json!("https://other.example/token")),
            "aud",
        );
        refused(
            with(&|c| c["iss"] = serde_json::json!("https://evil.example/m")),
            "iss and sub",
        );
        refused(
            with(&|c| c["exp"] = serde_json::json!(now().timestamp() - 120)),
            "expired",
        );
        refused(
            with(&|c| c["exp"] = serde_json::json!(now().timestamp() + 3600)),
            "10 minutes",
        );
        refused(
            with(&|c| {
                c.as_object_mut().map(|o| o.remove("jti"));
            }),
            "jti",
        );
        refused(
            with(&|c| {
                c.as_object_mut().map(|o| o.remove("exp"));
            }),
            "exp",
        );
        refused(
            jwt(
                &serde_json::json!({"alg": "EdDSA", "kid": "ed", "crit": ["x"]}),
                &claims(&aud[0]),
                ed_sign,
            ),
            "critical",
        );
        refused("a.b".into(), "three parts");
    }

    /// An RS256 assertion made with `openssl dgst -sha256 -sign` from a throw-away 2048-bit key
    /// (ring verifies RSA but cannot generate keys).
    #[test]
    fn rs256_assertions_verify() {
        const N: &str = "phBLh2gRjLM_8Jamm8sDPeW1elLqwatyh_IJdP7dXP5vch3azhiHGvj1ITFgUKWe8ACA50oEbeHgfQZQs4sBGeyU5Llv6JS_L0fsJB093QVsFUhuRF8Ef86IZQGrQprlpxZeWO_n3f7tJyybV8-VTUPQ89CXieTtAkdbbsjSkFZFry-UNYMWSWX2T4H1IhzzlnNjC9v6oaXlk0XACQHI-po26C9ZzBvY_kMCoAlJULyV8YBHGR-TQl35dSIEGLJKeFfh6njJeSqZ9GHt1O92czy-DqzbqcaFoMjJ3Hb3vko8ajRSRqcbg0UFhzlWKUk0TiMLeH6WGpBbNrgk0T-Vnw";
        const JWT: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6InIxIn0.eyJpc3MiOiJodHRwczovL2FwcC5leGFtcGxlL21ldGEuanNvbiIsInN1YiI6Imh0dHBzOi8vYXBwLmV4YW1wbGUvbWV0YS5qc29uIiwiYXVkIjoiaHR0cHM6Ly9jb2Rlci5leGFtcGxlL29hdXRoMi90b2tlbnMiLCJleHAiOjE4MDAwMDAzMDAsImp0aSI6InIxIn0.Y1BsDfldS3LyJ3eEer3nxkTxcdavior5pzYWnurOZJjOqYSXKW8Gu3zqzDUkjUskXE4ZUOYn1kPz7zXPIufZPAks88nwZFL7G8wzygy6ol2OeraOoLufRzg6VYCsnD9a-20msxIbSzN2iuQfRx1zETMsDKg_KsNb6_i0c9pSQAcStKRiyF9Y0ktpeDgAqphbcJBeoHGbVWsMPxJqepddBMOBrnYLV6WJqUbzy6jkVujGEnAr8Z3uiC858-le3gpyiOnKDX7qEfbH9rIE0HI3Amvmns691_hxjTb2I9YXHB6uFWa6bHcPXVkpTwWDRva74_h8DQiGOb9WK1hCmkaEjQ";
        let jwks = serde_json::json!({"keys": [{"kty": "RSA", "kid": "r1", "n": N, "e": "AQAB"}]});
        let aud = vec!["https://coder.example/oauth2/tokens".to_owned()];
        assert_eq!(
            verify(JWT, CLIENT, &jwks, &aud, now()).map(|v| v.jti),
            Ok("r1".into())
        );
        let mut forged = JWT.to_owned();
        forged.pop();
        forged.push(if JWT.ends_with('A') { 'B' } else { 'A' });
        assert!(verify(&forged, CLIENT, &jwks, &aud, now()).is_err());
        let other_e = serde_json::json!({"keys": [{"kty": "RSA", "kid": "r1", "n": N, "e": "Aw"}]});
        assert!(verify(JWT, CLIENT, &other_e, &aud, now()).is_err());
    }
}
