//! JWT access tokens (RFC 9068 `at+jwt`): compact JWS (RFC 7515) signed with Ed25519 (`EdDSA`,
//! RFC 8037), the signing key and its public JWK (RFC 7517), and signature verification.
//! Expiry, audience and issuer are the caller's to check, against its clock and configuration.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use ed25519_dalek::VerifyingKey;

/// RFC 8037 §3.1: the JWS `alg` for Ed25519.
const ALG: &str = "EdDSA";
/// RFC 9068 §2.1: the `typ` header of a JWT access token.
const TYP: &str = "at+jwt";
/// Length of a generated key id.
const KID_LEN: usize = 16;

/// Why a token or key was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("malformed token: expected three base64url segments with a JSON header and claims")]
    Malformed,
    #[error("unsupported token header: {0}")]
    UnsupportedHeader(String),
    #[error("token signed with an unknown key id")]
    UnknownKey,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("invalid Ed25519 key: expected 32 bytes in base64url without padding")]
    BadKey,
}

/// The Ed25519 key access tokens are signed with, and its key id (`kid`, RFC 7515 §4.1.4).
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    // The dalek key keeps the 32-byte seed and zeroizes it on drop.
    key: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new key from the OS CSPRNG with a random 16-character key id.
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        seed.fill(0);
        Self {
            kid: crate::secret::random_alphanumeric(KID_LEN),
            key,
        }
    }

    /// Rebuilds a stored key from its id and its seed as written by [`SigningKey::seed_b64`].
    pub fn from_parts(kid: String, seed_b64: &str) -> Result<Self, JwtError> {
        let mut seed = decode_32(seed_b64)?;
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        seed.fill(0);
        Ok(Self { kid, key })
    }

    /// The 32-byte seed (RFC 8032 §5.1.5 private key) in base64url without padding, for storage.
    pub fn seed_b64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.key.to_bytes())
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The public key in base64url without padding (the JWK `x`, RFC 8037 §2).
    pub fn public_b64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.verifying_key().as_bytes())
    }

    /// The public JWK published at the `jwks_uri` (RFC 8037 §2, RFC 7517 §4).
    pub fn public_jwk(&self) -> Value {
        jwk_from_verifying_key(&self.kid, &self.verifying_key())
    }
}

/// An Ed25519 public JWK (RFC 8037 §2): `{"kty":"OKP","crv":"Ed25519","x",…,"kid","alg","use"}`.
pub fn jwk_from_verifying_key(kid: &str, key: &VerifyingKey) -> Value {
    json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": URL_SAFE_NO_PAD.encode(key.as_bytes()),
        "kid": kid,
        "alg": ALG,
        "use": "sig",
    })
}

/// A public key stored as by [`SigningKey::public_b64`]. Weak (small-order) keys are refused.
pub fn verifying_key_from_b64(public_b64: &str) -> Result<VerifyingKey, JwtError> {
    let bytes = decode_32(public_b64)?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| JwtError::BadKey)?;
    if key.is_weak() {
        return Err(JwtError::BadKey);
    }
    Ok(key)
}

fn decode_32(b64: &str) -> Result<[u8; 32], JwtError> {
    let bytes = URL_SAFE_NO_PAD.decode(b64).map_err(|_| JwtError::BadKey)?;
    bytes.try_into().map_err(|_| JwtError::BadKey)
}

/// The claims of an access token (RFC 9068 §2.2, RFC 8693 §4.3 `client_id`), plus `gid`, the
/// grant the token was issued from, which revocation deny-lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub client_id: String,
    pub scope: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub gid: String,
}

/// Signs `claims` as a compact JWS with the header `{"alg":"EdDSA","typ":"at+jwt","kid":…}`
/// (RFC 9068 §2.1, RFC 7515 §7.1).
pub fn sign(key: &SigningKey, claims: &AccessTokenClaims) -> String {
    let header = json!({ "alg": ALG, "typ": TYP, "kid": key.kid });
    // Built as a `Value` so serialization cannot fail; `Deserialize` reads the same names.
    let payload = json!({
        "iss": claims.iss,
        "sub": claims.sub,
        "aud": claims.aud,
        "client_id": claims.client_id,
        "scope": claims.scope,
        "iat": claims.iat,
        "exp": claims.exp,
        "jti": claims.jti,
        "gid": claims.gid,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    );
    let signature: Signature = key.key.sign(signing_input.as_bytes());
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.to_bytes())
    )
}

/// Verifies the header and signature of an access token and returns its claims.
///
/// The header must say `alg: EdDSA` (RFC 8725 §3.1: never trust another algorithm), `typ`
/// `at+jwt` or `application/at+jwt` (RFC 9068 §4, compared case-insensitively per RFC 7515
/// §4.1.9), and carry a `kid` that `key_for` resolves. The signature is checked with
/// `verify_strict` (no malleable or small-order encodings). `exp`, `aud` and `iss` are not
/// checked here.
pub fn verify(
    token: &str,
    key_for: impl Fn(&str) -> Option<VerifyingKey>,
) -> Result<AccessTokenClaims, JwtError> {
    let mut segments = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(JwtError::Malformed);
    };

    let header_bytes = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| JwtError::Malformed)?;
    let header: Value = serde_json::from_slice(&header_bytes).map_err(|_| JwtError::Malformed)?;
    let header = header.as_object().ok_or(JwtError::Malformed)?;

    match header.get("alg") {
        Some(Value::String(alg)) if alg == ALG => {}
        Some(Value::String(alg)) => {
            return Err(JwtError::UnsupportedHeader(format!(
                "alg `{alg}` is not accepted, only {ALG}"
            )));
        }
        _ => return Err(JwtError::UnsupportedHeader("missing alg".into())),
    }
    match header.get("typ") {
        Some(Value::String(typ))
            if typ.eq_ignore_ascii_case(TYP) || typ.eq_ignore_ascii_case("application/at+jwt") => {}
        Some(Value::String(typ)) => {
            return Err(JwtError::UnsupportedHeader(format!(
                "typ `{typ}` is not an access token, expected {TYP} (RFC 9068 §4)"
            )));
        }
        _ => {
            return Err(JwtError::UnsupportedHeader(format!(
                "missing typ, expected {TYP} (RFC 9068 §4)"
            )));
        }
    }
    // RFC 7515 §4.1.11: extensions we do not understand must make the token invalid.
    if header.contains_key("crit") {
        return Err(JwtError::UnsupportedHeader(
            "crit extensions are not supported".into(),
        ));
    }
    let Some(Value::String(kid)) = header.get("kid") else {
        return Err(JwtError::UnsupportedHeader("missing kid".into()));
    };
    let key = key_for(kid).ok_or(JwtError::UnknownKey)?;

    let signature_bytes = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| JwtError::Malformed)?;
    let signature = Signature::from_slice(&signature_bytes).map_err(|_| JwtError::BadSignature)?;
    let signing_input_len = header_b64.len() + 1 + payload_b64.len();
    let signing_input = &token.as_bytes()[..signing_input_len];
    key.verify_strict(signing_input, &signature)
        .map_err(|_| JwtError::BadSignature)?;

    let payload = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| JwtError::Malformed)?;
    serde_json::from_slice(&payload).map_err(|_| JwtError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> AccessTokenClaims {
        AccessTokenClaims {
            iss: "https://coder.example.com".into(),
            sub: "3f1c2b7a-0000-4000-8000-000000000001".into(),
            aud: "https://coder.example.com/api/experimental/mcp/http".into(),
            client_id: "c1".into(),
            scope: "coder:workspaces.read coder:workspaces.operate".into(),
            iat: 1_700_000_000,
            exp: 1_700_003_600,
            jti: "j1".into(),
            gid: "g1".into(),
        }
    }

    fn resolver(key: &SigningKey) -> impl Fn(&str) -> Option<VerifyingKey> + use<> {
        let kid = key.kid.clone();
        let vk = key.verifying_key();
        move |k: &str| (k == kid).then_some(vk)
    }

    fn b64(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    fn segments(token: &str) -> Vec<String> {
        token.split('.').map(str::to_owned).collect()
    }

    /// A token with `header`, the test claims and a valid signature by `key` over both.
    fn signed_with_header(key: &SigningKey, header: &Value) -> String {
        let payload = match serde_json::to_value(claims()) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        };
        let input = format!("{}.{}", b64(header), b64(&payload));
        let sig = key.key.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
    }

    #[test]
    fn sign_verify_round_trip() {
        let key = SigningKey::generate();
        let token = sign(&key, &claims());
        assert_eq!(verify(&token, resolver(&key)), Ok(claims()));
    }

    #[test]
    fn header_is_eddsa_at_jwt_with_kid() {
        let key = SigningKey::generate();
        let token = sign(&key, &claims());
        let parts = segments(&token);
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| !p.contains('=')));
        let header: Value = match URL_SAFE_NO_PAD
            .decode(&parts[0])
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
        {
            Some(v) => v,
            None => panic!("header is not base64url JSON"),
        };
        assert_eq!(
            header,
            json!({"alg": "EdDSA", "typ": "at+jwt", "kid": key.kid})
        );
    }

    #[test]
    fn payload_matches_serde_form_of_claims() {
        let key = SigningKey::generate();
        let token = sign(&key, &claims());
        let parts = segments(&token);
        let payload: Option<Value> = URL_SAFE_NO_PAD
            .decode(&parts[1])
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        assert_eq!(payload, serde_json::to_value(claims()).ok());
    }

    #[test]
    fn tampered_payload_is_bad_signature() {
        let key = SigningKey::generate();
        let token = sign(&key, &claims());
        let parts = segments(&token);
        let mut other = claims();
        other.scope = "coder:all".into();
        let forged_payload = match serde_json::to_value(&other) {
            Ok(v) => b64(&v),
            Err(e) => panic!("{e}"),
        };
        let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert_eq!(verify(&forged, resolver(&key)), Err(JwtError::BadSignature));
    }

    #[test]
    fn tampered_signature_is_bad_signature() {
        let key = SigningKey::generate();
        let token = sign(&key, &claims());
        let parts = segments(&token);
        let mut sig = URL_SAFE_NO_PAD.decode(&parts[2]).unwrap_or_default();
        assert_eq!(sig.len(), 64);
        sig[0] ^= 1;
        let forged = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(&sig));
        assert_eq!(verify(&forged, resolver(&key)), Err(JwtError::BadSignature));
        let short = format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            URL_SAFE_NO_PAD.encode([0u8; 10])
        );
        assert_eq!(verify(&short, resolver(&key)), Err(JwtError::BadSignature));
    }

    #[test]
    fn signature_by_another_key_is_bad_signature() {
        let key = SigningKey::generate();
        let mut impostor = SigningKey::generate();
        impostor.kid = key.kid.clone();
        let token = sign(&impostor, &claims());
        assert_eq!(verify(&token, resolver(&key)), Err(JwtError::BadSignature));
    }

    #[test]
    fn unknown_kid_is_unknown_key() {
        let key = SigningKey::generate();
        let other = SigningKey::generate();
        let token = sign(&other, &claims());
        assert_eq!(verify(&token, resolver(&key)), Err(JwtError::UnknownKey));
    }

    #[test]
    fn key_rotation_resolves_by_kid() {
        let old = SigningKey::generate();
        let new = SigningKey::generate();
        let keys = [
            (old.kid.clone(), old.verifying_key()),
            (new.kid.clone(), new.verifying_key()),
        ];
        let key_for = |kid: &str| keys.iter().find(|(k, _)| k == kid).map(|(_, v)| *v);
        assert_eq!(verify(&sign(&old, &claims()), key_for), Ok(claims()));
        assert_eq!(verify(&sign(&new, &claims()), key_for), Ok(claims()));
    }

    #[test]
    fn alg_none_and_hs256_are_unsupported() {
        let key = SigningKey::generate();
        for alg in ["none", "HS256", "RS256", "ES256", "eddsa", "Ed25519"] {
            let header = json!({"alg": alg, "typ": "at+jwt", "kid": key.kid});
            let token = signed_with_header(&key, &header);
            assert!(
                matches!(
                    verify(&token, resolver(&key)),
                    Err(JwtError::UnsupportedHeader(_))
                ),
                "{alg}"
            );
        }
        // The classic `alg: none` token with an empty signature.
        let header = json!({"alg": "none", "typ": "at+jwt", "kid": key.kid});
        let payload = serde_json::to_value(claims()).unwrap_or_default();
        let token = format!("{}.{}.", b64(&header), b64(&payload));
        assert!(matches!(
            verify(&token, resolver(&key)),
            Err(JwtError::UnsupportedHeader(_))
        ));
        let no_alg = signed_with_header(&key, &json!({"typ": "at+jwt", "kid": key.kid}));
        assert!(matches!(
            verify(&no_alg, resolver(&key)),
            Err(JwtError::UnsupportedHeader(_))
        ));
    }

    #[test]
    fn typ_must_be_at_jwt() {
        let key = SigningKey::generate();
        for typ in [
            json!("JWT"),
            json!("jwt"),
            json!("dpop+jwt"),
            json!(null),
            json!(1),
        ] {
            let header = json!({"alg": "EdDSA", "typ": typ, "kid": key.kid});
            let token = signed_with_header(&key, &header);
            assert!(
                matches!(
                    verify(&token, resolver(&key)),
                    Err(JwtError::UnsupportedHeader(_))
                ),
                "{typ}"
            );
        }
        let missing = signed_with_header(&key, &json!({"alg": "EdDSA", "kid": key.kid}));
        assert!(matches!(
            verify(&missing, resolver(&key)),
            Err(JwtError::UnsupportedHeader(_))
        ));
    }

    #[test]
    fn typ_spellings_of_rfc9068() {
        let key = SigningKey::generate();
        for typ in [
            "at+jwt",
            "AT+JWT",
            "application/at+jwt",
            "Application/AT+JWT",
        ] {
            let header = json!({"alg": "EdDSA", "typ": typ, "kid": key.kid});
            let token = signed_with_header(&key, &header);
            assert_eq!(verify(&token, resolver(&key)), Ok(claims()), "{typ}");
        }
    }

    #[test]
    fn kid_is_required() {
        let key = SigningKey::generate();
        for header in [
            json!({"alg": "EdDSA", "typ": "at+jwt"}),
            json!({"alg": "EdDSA", "typ": "at+jwt", "kid": 7}),
        ] {
            let token = signed_with_header(&key, &header);
            assert!(matches!(
                verify(&token, resolver(&key)),
                Err(JwtError::UnsupportedHeader(_))
            ));
        }
    }

    #[test]
    fn crit_header_is_refused() {
        let key = SigningKey::generate();
        let header =
            json!({"alg": "EdDSA", "typ": "at+jwt", "kid": key.kid, "crit": ["b64"], "b64": false});
        let token = signed_with_header(&key, &header);
        assert!(matches!(
            verify(&token, resolver(&key)),
            Err(JwtError::UnsupportedHeader(_))
        ));
    }

    #[test]
    fn garbage_is_malformed() {
        let key = SigningKey::generate();
        let valid = sign(&key, &claims());
        let parts = segments(&valid);
        for token in [
            String::new(),
            "garbage".to_owned(),
            "a.b".to_owned(),
            "a.b.c.d".to_owned(),
            "!!!.###.$$$".to_owned(),
            format!("{valid}.{}", parts[2]),
            format!("{}.{}", parts[0], parts[1]),
            // Header that is base64url but not a JSON object.
            format!(
                "{}.{}.{}",
                URL_SAFE_NO_PAD.encode("[1]"),
                parts[1],
                parts[2]
            ),
            format!(
                "{}.{}.{}",
                URL_SAFE_NO_PAD.encode("not json"),
                parts[1],
                parts[2]
            ),
            // Padding is not base64url-without-padding (RFC 7515 §2).
            format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
            format!("{}.{}.{}=", parts[0], parts[1], parts[2]),
        ] {
            assert_eq!(
                verify(&token, resolver(&key)),
                Err(JwtError::Malformed),
                "{token}"
            );
        }
    }

    #[test]
    fn signed_but_wrong_claims_shape_is_malformed() {
        let key = SigningKey::generate();
        let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": key.kid});
        let payload = json!({"iss": "x", "sub": "y"});
        let input = format!("{}.{}", b64(&header), b64(&payload));
        let sig = key.key.sign(input.as_bytes());
        let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()));
        assert_eq!(verify(&token, resolver(&key)), Err(JwtError::Malformed));
    }

    #[test]
    fn seed_round_trip() {
        let key = SigningKey::generate();
        let seed = key.seed_b64();
        assert_eq!(seed.len(), 43);
        let again = match SigningKey::from_parts(key.kid.clone(), &seed) {
            Ok(k) => k,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(again.kid, key.kid);
        assert_eq!(again.verifying_key(), key.verifying_key());
        assert_eq!(again.seed_b64(), seed);
        // A token from the restored key verifies with the original public key.
        assert_eq!(
            verify(&sign(&again, &claims()), resolver(&key)),
            Ok(claims())
        );
    }

    #[test]
    fn generated_keys_differ_and_kids_are_alphanumeric() {
        let a = SigningKey::generate();
        let b = SigningKey::generate();
        assert_ne!(a.seed_b64(), b.seed_b64());
        assert_ne!(a.kid, b.kid);
        assert_eq!(a.kid.len(), 16);
        assert!(a.kid.chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn bad_seeds_are_bad_key() {
        for seed in [
            "",
            "short",
            "!!!!",
            &URL_SAFE_NO_PAD.encode([0u8; 31]),
            &URL_SAFE_NO_PAD.encode([0u8; 33]),
        ] {
            assert_eq!(
                SigningKey::from_parts("k".into(), seed).map(|k| k.kid),
                Err(JwtError::BadKey),
                "{seed}"
            );
        }
        let padded = base64::engine::general_purpose::URL_SAFE.encode([7u8; 32]);
        assert!(padded.ends_with('='));
        assert!(SigningKey::from_parts("k".into(), &padded).is_err());
    }

    #[test]
    fn public_key_round_trip() {
        let key = SigningKey::generate();
        let public = key.public_b64();
        assert_eq!(verifying_key_from_b64(&public), Ok(key.verifying_key()));
        assert_eq!(verifying_key_from_b64("nope"), Err(JwtError::BadKey));
        // The identity point is a small-order key that verify_strict would never accept.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            verifying_key_from_b64(&URL_SAFE_NO_PAD.encode(identity)),
            Err(JwtError::BadKey)
        );
    }

    #[test]
    fn jwk_shape() {
        let key = SigningKey::generate();
        let jwk = key.public_jwk();
        assert_eq!(
            jwk,
            json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": key.public_b64(),
                "kid": key.kid,
                "alg": "EdDSA",
                "use": "sig",
            })
        );
        assert_eq!(jwk, jwk_from_verifying_key(&key.kid, &key.verifying_key()));
        // `x` is the raw 32-byte public key (RFC 8037 §2) and no private member leaks.
        let x = jwk["x"].as_str().unwrap_or_default();
        assert_eq!(URL_SAFE_NO_PAD.decode(x).map(|b| b.len()), Ok(32));
        assert!(jwk.get("d").is_none());
    }

    #[test]
    fn debug_prints_only_the_kid() {
        let key = SigningKey::generate();
        let debug = format!("{key:?}");
        assert!(debug.contains(&key.kid));
        assert!(!debug.contains(&key.seed_b64()));
        assert!(!debug.contains(&key.public_b64()));
    }

    #[test]
    fn error_messages() {
        assert!(JwtError::Malformed.to_string().contains("three"));
        assert_eq!(
            JwtError::UnsupportedHeader("missing kid".into()).to_string(),
            "unsupported token header: missing kid"
        );
    }
}
