//! JWT access tokens (RFC 9068 `at+jwt`): compact JWS (RFC 7515) signed with Ed25519 (`EdDSA`,
//! RFC 8037), the signing key and its public JWK (RFC 7517), and verification.
//!
//! Encoding, signature dispatch and the `iss`/`aud` claim checks are the `jsonwebtoken` crate's.
//! Its cryptography is a process-wide provider: ours ([`PROVIDER`]) knows only EdDSA and verifies
//! with `verify_strict`, where the crate's RustCrypto backend uses the permissive `verify` and
//! would build RSA, P-256, P-384 and HMAC besides. What the crate does not check, the header, is
//! checked here first on the raw JSON: `alg`, `typ`, `crit`, no parameter but the three we issue,
//! no member twice. Expiry is the caller's to check against its own clock (the crate reads the
//! system time).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Signature;
use jsonwebtoken::crypto::{CryptoProvider, JwkUtils, JwtSigner, JwtVerifier};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{
    Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, EncodingKey, Header, Validation,
};
use rand::RngCore;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

pub use ed25519_dalek::VerifyingKey;

/// RFC 8037 §3.1: the JWS `alg` for Ed25519.
const ALG: &str = "EdDSA";
/// RFC 9068 §2.1: the `typ` header of a JWT access token.
const TYP: &str = "at+jwt";
/// Length of a generated key id.
const KID_LEN: usize = 16;
/// The header parameters we issue; a token carrying any other was not made here. In particular
/// `jwk`, `jku`, `x5u` and `x5c` name a key to verify with (RFC 7515 §4.1.2-4.1.6): keys come
/// only from our key ring, by `kid`, so such a header is refused rather than ignored.
const HEADER_PARAMETERS: [&str; 3] = ["alg", "typ", "kid"];
/// RFC 8410 §7 (RFC 5958 `OneAsymmetricKey` v1): the DER of an Ed25519 private key is this
/// prefix and the 32-byte seed. It is how `jsonwebtoken` carries an EdDSA signing key.
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

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
    #[error("token issued by another issuer")]
    WrongIssuer,
    #[error("token issued for another audience")]
    WrongAudience,
    #[error("invalid Ed25519 key: expected 32 bytes in base64url without padding")]
    BadKey,
    #[error("could not sign the token: {0}")]
    Signing(String),
}

/// What a token must say besides being signed by one of our keys: its `iss`, and its `aud`
/// when the caller cares which resource it was issued for.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub audience: Option<&'a str>,
}

/// The Ed25519 key access tokens are signed with, and its key id (`kid`, RFC 7515 §4.1.4).
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    // The dalek key keeps the 32-byte seed and zeroizes it on drop; `encoding` is the same seed
    // in the PKCS#8 form `jsonwebtoken` takes, zeroized on drop as well.
    key: ed25519_dalek::SigningKey,
    encoding: EncodingKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
        let key = Self::from_seed(crate::secret::random_alphanumeric(KID_LEN), &seed);
        seed.fill(0);
        key
    }

    /// Rebuilds a stored key from its id and its seed as written by [`SigningKey::seed_b64`].
    pub fn from_parts(kid: String, seed_b64: &str) -> Result<Self, JwtError> {
        let mut seed = decode_32(seed_b64)?;
        let key = Self::from_seed(kid, &seed);
        seed.fill(0);
        Ok(key)
    }

    fn from_seed(kid: String, seed: &[u8; 32]) -> Self {
        let mut der = [0u8; 48];
        der[..16].copy_from_slice(&PKCS8_ED25519_PREFIX);
        der[16..].copy_from_slice(seed);
        let encoding = EncodingKey::from_ed_der(&der);
        der.fill(0);
        Self {
            kid,
            key: ed25519_dalek::SigningKey::from_bytes(seed),
            encoding,
        }
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
/// grant the token was issued from, which revocation deny-lists, and `cid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    /// The `client_id` the client uses on the wire (RFC 9068 §2.2): a registered client's UUID,
    /// or the URL of a client's metadata document.
    pub client_id: String,
    pub scope: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub gid: String,
    /// The client's row id, when `client_id` is not it (a metadata-document client), so the
    /// resource server learns which client it is without a database round trip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
}

/// Signs `claims` as a compact JWS with the header `{"typ":"at+jwt","alg":"EdDSA","kid":…}`
/// (RFC 9068 §2.1, RFC 7515 §7.1).
pub fn sign(key: &SigningKey, claims: &AccessTokenClaims) -> Result<String, JwtError> {
    install_provider();
    let mut header = Header::new(Algorithm::EdDSA);
    header.typ = Some(TYP.to_owned());
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding)
        .map_err(|e| JwtError::Signing(e.to_string()))
}

/// Verifies an access token and returns its claims.
///
/// The header must say `alg: EdDSA` (RFC 8725 §3.1: never trust another algorithm), `typ`
/// `at+jwt` or `application/at+jwt` (RFC 9068 §4, compared case-insensitively per RFC 7515
/// §4.1.9), carry no `crit` (RFC 7515 §4.1.11) nor any parameter we do not issue, and a `kid`
/// that `key_for` resolves. The signature is checked with `verify_strict` (no malleable or
/// small-order encodings), then `iss` and, when `expected` names one, `aud` must match exactly.
/// `exp` is not checked here: the caller's clock decides.
pub fn verify(
    token: &str,
    expected: &Expected<'_>,
    key_for: impl Fn(&str) -> Option<VerifyingKey>,
) -> Result<AccessTokenClaims, JwtError> {
    let kid = checked_header(token)?;
    let key = key_for(&kid).ok_or(JwtError::UnknownKey)?;
    install_provider();
    let mut validation = Validation::new(Algorithm::EdDSA);
    // The crate would compare `exp` with the system time and a minute's leeway; the caller
    // compares it with the deployment's clock and grants none.
    validation.validate_exp = false;
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.set_issuer(&[expected.issuer]);
    match expected.audience {
        Some(audience) => validation.set_audience(&[audience]),
        None => validation.validate_aud = false,
    }
    let decoded = jsonwebtoken::decode::<AccessTokenClaims>(
        token,
        &DecodingKey::from_ed_der(key.as_bytes()),
        &validation,
    )
    .map_err(|e| match e.kind() {
        ErrorKind::InvalidSignature => JwtError::BadSignature,
        ErrorKind::InvalidIssuer => JwtError::WrongIssuer,
        ErrorKind::InvalidAudience => JwtError::WrongAudience,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::MissingAlgorithm => JwtError::UnsupportedHeader(e.to_string()),
        ErrorKind::InvalidEddsaKey | ErrorKind::InvalidKeyFormat => JwtError::BadKey,
        _ => JwtError::Malformed,
    })?;
    Ok(decoded.claims)
}

/// The checks `jsonwebtoken` does not make, on the header as sent; returns its `kid`.
fn checked_header(token: &str) -> Result<String, JwtError> {
    let mut segments = token.split('.');
    let (Some(header_b64), Some(_), Some(_), None) = (
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
    let UniqueMembers(header) =
        serde_json::from_slice(&header_bytes).map_err(|_| JwtError::Malformed)?;

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
    if let Some(name) = header
        .keys()
        .find(|name| !HEADER_PARAMETERS.contains(&name.as_str()))
    {
        return Err(JwtError::UnsupportedHeader(format!(
            "the header parameter `{name}` is not accepted"
        )));
    }
    match header.get("kid") {
        Some(Value::String(kid)) => Ok(kid.clone()),
        _ => Err(JwtError::UnsupportedHeader("missing kid".into())),
    }
}

/// A JSON object whose members are all distinct: RFC 7515 §4 lets a parser take the last of
/// duplicated header parameters, which would let two parsers read different headers; a
/// duplicate is refused instead.
struct UniqueMembers(Map<String, Value>);

impl<'de> Deserialize<'de> for UniqueMembers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = UniqueMembers;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object with distinct member names")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UniqueMembers, A::Error> {
                let mut members = Map::new();
                while let Some((name, value)) = map.next_entry::<String, Value>()? {
                    if members.contains_key(&name) {
                        return Err(de::Error::custom(format!("duplicate member `{name}`")));
                    }
                    members.insert(name, value);
                }
                Ok(UniqueMembers(members))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

/// The cryptography `jsonwebtoken` uses in this process: EdDSA only, see the module docs.
static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: ed25519_signer,
    verifier_factory: ed25519_verifier,
    // We build and read JWKs ourselves; the crate's JWK helpers are never called.
    jwk_utils: JwkUtils::new_unimplemented(),
};

/// Installs [`PROVIDER`] before the first use of the crate (a no-op afterwards). Nothing else in
/// the process uses `jsonwebtoken`, so ours is the one installed.
fn install_provider() {
    let _ = PROVIDER.install_default();
}

fn ed25519_signer(
    alg: &Algorithm,
    key: &EncodingKey,
) -> jsonwebtoken::errors::Result<Box<dyn JwtSigner>> {
    if *alg != Algorithm::EdDSA || key.family() != AlgorithmFamily::Ed {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    let seed: &[u8; 32] = key
        .inner()
        .strip_prefix(&PKCS8_ED25519_PREFIX)
        .and_then(|seed| seed.try_into().ok())
        .ok_or(ErrorKind::InvalidEddsaKey)?;
    Ok(Box::new(Ed25519Signer(
        ed25519_dalek::SigningKey::from_bytes(seed),
    )))
}

fn ed25519_verifier(
    alg: &Algorithm,
    key: &DecodingKey,
) -> jsonwebtoken::errors::Result<Box<dyn JwtVerifier>> {
    if *alg != Algorithm::EdDSA || key.family() != AlgorithmFamily::Ed {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    let DecodingKeyKind::SecretOrDer(bytes) = key.kind() else {
        return Err(ErrorKind::InvalidEddsaKey.into());
    };
    let bytes: &[u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| ErrorKind::InvalidEddsaKey)?;
    let key = VerifyingKey::from_bytes(bytes).map_err(|_| ErrorKind::InvalidEddsaKey)?;
    if key.is_weak() {
        return Err(ErrorKind::InvalidEddsaKey.into());
    }
    Ok(Box::new(Ed25519Verifier(key)))
}

struct Ed25519Signer(ed25519_dalek::SigningKey);

impl jsonwebtoken::signature::Signer<Vec<u8>> for Ed25519Signer {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, jsonwebtoken::signature::Error> {
        let signature: Signature = jsonwebtoken::signature::Signer::sign(&self.0, msg);
        Ok(signature.to_bytes().to_vec())
    }
}

impl JwtSigner for Ed25519Signer {
    fn algorithm(&self) -> Algorithm {
        Algorithm::EdDSA
    }
}

struct Ed25519Verifier(VerifyingKey);

impl jsonwebtoken::signature::Verifier<Vec<u8>> for Ed25519Verifier {
    fn verify(
        &self,
        msg: &[u8],
        signature: &Vec<u8>,
    ) -> Result<(), jsonwebtoken::signature::Error> {
        let signature = Signature::from_slice(signature)?;
        // RFC 8032 §5.1.7 with the checks `verify` skips: canonical S, and neither the key nor
        // R of small order.
        self.0.verify_strict(msg, &signature)
    }
}

impl JwtVerifier for Ed25519Verifier {
    fn algorithm(&self) -> Algorithm {
        Algorithm::EdDSA
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Signer;

    const EXPECTED: Expected<'static> = Expected {
        issuer: "https://coder.example.com",
        audience: Some("https://coder.example.com/api/experimental/mcp/http"),
    };

    /// `sign`, which cannot fail with a key made here.
    fn sign_ok(key: &SigningKey, claims: &AccessTokenClaims) -> String {
        match sign(key, claims) {
            Ok(token) => token,
            Err(e) => panic!("{e}"),
        }
    }

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
            cid: None,
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
        let token = sign_ok(&key, &claims());
        assert_eq!(verify(&token, &EXPECTED, resolver(&key)), Ok(claims()));
    }

    #[test]
    fn header_is_eddsa_at_jwt_with_kid() {
        let key = SigningKey::generate();
        let token = sign_ok(&key, &claims());
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
        let token = sign_ok(&key, &claims());
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
        let token = sign_ok(&key, &claims());
        let parts = segments(&token);
        let mut other = claims();
        other.scope = "coder:all".into();
        let forged_payload = match serde_json::to_value(&other) {
            Ok(v) => b64(&v),
            Err(e) => panic!("{e}"),
        };
        let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert_eq!(
            verify(&forged, &EXPECTED, resolver(&key)),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn tampered_signature_is_bad_signature() {
        let key = SigningKey::generate();
        let token = sign_ok(&key, &claims());
        let parts = segments(&token);
        let mut sig = URL_SAFE_NO_PAD.decode(&parts[2]).unwrap_or_default();
        assert_eq!(sig.len(), 64);
        sig[0] ^= 1;
        let forged = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(&sig));
        assert_eq!(
            verify(&forged, &EXPECTED, resolver(&key)),
            Err(JwtError::BadSignature)
        );
        let short = format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            URL_SAFE_NO_PAD.encode([0u8; 10])
        );
        assert_eq!(
            verify(&short, &EXPECTED, resolver(&key)),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn signature_by_another_key_is_bad_signature() {
        let key = SigningKey::generate();
        let mut impostor = SigningKey::generate();
        impostor.kid = key.kid.clone();
        let token = sign_ok(&impostor, &claims());
        assert_eq!(
            verify(&token, &EXPECTED, resolver(&key)),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn unknown_kid_is_unknown_key() {
        let key = SigningKey::generate();
        let other = SigningKey::generate();
        let token = sign_ok(&other, &claims());
        assert_eq!(
            verify(&token, &EXPECTED, resolver(&key)),
            Err(JwtError::UnknownKey)
        );
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
        assert_eq!(
            verify(&sign_ok(&old, &claims()), &EXPECTED, key_for),
            Ok(claims())
        );
        assert_eq!(
            verify(&sign_ok(&new, &claims()), &EXPECTED, key_for),
            Ok(claims())
        );
    }

    #[test]
    fn alg_none_and_hs256_are_unsupported() {
        let key = SigningKey::generate();
        for alg in ["none", "HS256", "RS256", "ES256", "eddsa", "Ed25519"] {
            let header = json!({"alg": alg, "typ": "at+jwt", "kid": key.kid});
            let token = signed_with_header(&key, &header);
            assert!(
                matches!(
                    verify(&token, &EXPECTED, resolver(&key)),
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
            verify(&token, &EXPECTED, resolver(&key)),
            Err(JwtError::UnsupportedHeader(_))
        ));
        let no_alg = signed_with_header(&key, &json!({"typ": "at+jwt", "kid": key.kid}));
        assert!(matches!(
            verify(&no_alg, &EXPECTED, resolver(&key)),
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
                    verify(&token, &EXPECTED, resolver(&key)),
                    Err(JwtError::UnsupportedHeader(_))
                ),
                "{typ}"
            );
        }
        let missing = signed_with_header(&key, &json!({"alg": "EdDSA", "kid": key.kid}));
        assert!(matches!(
            verify(&missing, &EXPECTED, resolver(&key)),
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
            assert_eq!(
                verify(&token, &EXPECTED, resolver(&key)),
                Ok(claims()),
                "{typ}"
            );
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
                verify(&token, &EXPECTED, resolver(&key)),
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
            verify(&token, &EXPECTED, resolver(&key)),
            Err(JwtError::UnsupportedHeader(_))
        ));
    }

    #[test]
    fn garbage_is_malformed() {
        let key = SigningKey::generate();
        let valid = sign_ok(&key, &claims());
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
                verify(&token, &EXPECTED, resolver(&key)),
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
        assert_eq!(
            verify(&token, &EXPECTED, resolver(&key)),
            Err(JwtError::Malformed)
        );
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
            verify(&sign_ok(&again, &claims()), &EXPECTED, resolver(&key)),
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

    /// A token whose header and payload are the given JSON texts (duplicates kept as written),
    /// validly signed by `key`.
    fn signed_raw(key: &SigningKey, header: &str, payload: &str) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let sig = key.key.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
    }

    fn payload_text(claims: &AccessTokenClaims) -> String {
        serde_json::to_string(claims).unwrap_or_default()
    }

    #[test]
    fn hs256_with_the_public_key_as_secret_is_unsupported() {
        use hmac::{Hmac, Mac};
        let key = SigningKey::generate();
        let header = json!({"alg": "HS256", "typ": "at+jwt", "kid": key.kid});
        let input = format!(
            "{}.{}",
            b64(&header),
            URL_SAFE_NO_PAD.encode(payload_text(&claims()))
        );
        // The classic key confusion: the verifier's public key, in each form it is published,
        // used as an HMAC secret.
        for secret in [
            key.verifying_key().as_bytes().to_vec(),
            key.public_b64().into_bytes(),
            key.public_jwk().to_string().into_bytes(),
        ] {
            let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(&secret) else {
                panic!("hmac key")
            };
            mac.update(input.as_bytes());
            let token = format!(
                "{input}.{}",
                URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
            );
            assert!(
                matches!(
                    verify(&token, &EXPECTED, resolver(&key)),
                    Err(JwtError::UnsupportedHeader(_))
                ),
                "{token}"
            );
        }
    }

    #[test]
    fn key_bearing_and_unknown_header_parameters_are_refused() {
        let key = SigningKey::generate();
        let attacker = SigningKey::generate();
        // Signed by the attacker, who embeds their own key and points at their own key set.
        for header in [
            json!({"alg": "EdDSA", "typ": "at+jwt", "kid": key.kid, "jwk": attacker.public_jwk()}),
            json!({"alg": "EdDSA", "typ": "at+jwt", "jwk": attacker.public_jwk()}),
            json!({"alg": "EdDSA", "typ": "at+jwt", "kid": key.kid, "jku": "https://evil.example/jwks"}),
        ] {
            let token = signed_with_header(&attacker, &header);
            assert!(
                matches!(
                    verify(&token, &EXPECTED, resolver(&key)),
                    Err(JwtError::UnsupportedHeader(_))
                ),
                "{header}"
            );
        }
        // Refused for what they are, whoever signed: we never issue them.
        for (name, value) in [
            ("jwk", key.public_jwk()),
            ("jku", json!("https://coder.example.com/oauth2/jwks")),
            ("x5u", json!("https://evil.example/cert.pem")),
            ("x5c", json!(["MIIB"])),
            ("cty", json!("JWT")),
            ("b64", json!(false)),
            ("zip", json!("DEF")),
        ] {
            let mut header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": key.kid});
            header[name] = value;
            let token = signed_with_header(&key, &header);
            assert_eq!(
                verify(&token, &EXPECTED, resolver(&key)),
                Err(JwtError::UnsupportedHeader(format!(
                    "the header parameter `{name}` is not accepted"
                ))),
                "{name}"
            );
        }
    }

    #[test]
    fn duplicated_header_parameters_and_claims_are_malformed() {
        let key = SigningKey::generate();
        let kid = &key.kid;
        let payload = payload_text(&claims());
        for header in [
            format!(r#"{{"alg":"none","alg":"EdDSA","typ":"at+jwt","kid":"{kid}"}}"#),
            format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"{kid}","alg":"HS256"}}"#),
            format!(r#"{{"alg":"EdDSA","typ":"JWT","typ":"at+jwt","kid":"{kid}"}}"#),
            format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"other","kid":"{kid}"}}"#),
        ] {
            let token = signed_raw(&key, &header, &payload);
            assert_eq!(
                verify(&token, &EXPECTED, resolver(&key)),
                Err(JwtError::Malformed),
                "{header}"
            );
        }
        let header = format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"{kid}"}}"#);
        assert_eq!(
            verify(
                &signed_raw(&key, &header, &payload),
                &EXPECTED,
                resolver(&key)
            ),
            Ok(claims())
        );
        // The same claim twice, the first one wrong: one parser could read the first and
        // another the last, so neither is believed.
        let body = payload.trim_start_matches('{');
        for dup in [
            r#""aud":"https://other.example.com/mcp","#,
            r#""iss":"https://evil.example","#,
            r#""scope":"coder:all","#,
            r#""sub":"3f1c2b7a-0000-4000-8000-000000000002","#,
            r#""exp":99999999999,"#,
        ] {
            let twice = format!("{{{dup}{body}");
            assert_eq!(
                verify(
                    &signed_raw(&key, &header, &twice),
                    &EXPECTED,
                    resolver(&key)
                ),
                Err(JwtError::Malformed),
                "{twice}"
            );
        }
    }

    #[test]
    fn issuer_and_audience_must_match() {
        let key = SigningKey::generate();
        let mut other = claims();
        other.iss = "https://coder.example.com/".into();
        assert_eq!(
            verify(&sign_ok(&key, &other), &EXPECTED, resolver(&key)),
            Err(JwtError::WrongIssuer)
        );
        let mut other = claims();
        other.aud = "https://coder.example.com".into();
        let token = sign_ok(&key, &other);
        assert_eq!(
            verify(&token, &EXPECTED, resolver(&key)),
            Err(JwtError::WrongAudience)
        );
        // Without an expected audience (revocation: any token we issued), any audience does.
        let any_audience = Expected {
            audience: None,
            ..EXPECTED
        };
        assert_eq!(verify(&token, &any_audience, resolver(&key)), Ok(other));
        // A claim the crate would read as a list of audiences is not our shape.
        let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": key.kid});
        let mut payload = serde_json::to_value(claims()).unwrap_or_default();
        payload["aud"] = json!([EXPECTED.audience, "https://other.example.com"]);
        let token = signed_raw(&key, &header.to_string(), &payload.to_string());
        assert_eq!(
            verify(&token, &EXPECTED, resolver(&key)),
            Err(JwtError::Malformed)
        );
        // Required claims: no `exp`, no token.
        let mut payload = serde_json::to_value(claims()).unwrap_or_default();
        if let Some(map) = payload.as_object_mut() {
            map.remove("exp");
        }
        let token = signed_raw(&key, &header.to_string(), &payload.to_string());
        assert_eq!(
            verify(&token, &EXPECTED, resolver(&key)),
            Err(JwtError::Malformed)
        );
    }

    #[test]
    fn expiry_is_left_to_the_callers_clock() {
        // Long expired by the system clock: the crate must not judge it, the caller does.
        let key = SigningKey::generate();
        let mut old = claims();
        old.iat = 1_000;
        old.exp = 2_000;
        assert_eq!(
            verify(&sign_ok(&key, &old), &EXPECTED, resolver(&key)),
            Ok(old)
        );
    }

    #[test]
    fn cid_is_carried_only_when_set() {
        let key = SigningKey::generate();
        let mut cimd = claims();
        cimd.client_id = "https://claude.ai/oauth/claude-code-client-metadata".into();
        cimd.cid = Some("3f1c2b7a-0000-4000-8000-0000000000c1".into());
        let token = sign_ok(&key, &cimd);
        assert_eq!(verify(&token, &EXPECTED, resolver(&key)), Ok(cimd));
        let plain = sign_ok(&key, &claims());
        let payload = URL_SAFE_NO_PAD
            .decode(segments(&plain)[1].as_bytes())
            .unwrap_or_default();
        assert!(!String::from_utf8_lossy(&payload).contains("cid"));
    }
}
