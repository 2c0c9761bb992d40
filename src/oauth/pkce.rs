//! PKCE (RFC 7636): the syntax of code verifiers and challenges, and the S256 check the token
//! endpoint runs before it redeems an authorization code.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::secret::{constant_time_eq, sha256};

/// RFC 7636 §4.1: a verifier is 43 to 128 characters long.
const MIN_LEN: usize = 43;
const MAX_LEN: usize = 128;

/// RFC 7636 §4.1 `unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"`.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_pkce_string(s: &str) -> bool {
    (MIN_LEN..=MAX_LEN).contains(&s.len()) && s.bytes().all(is_unreserved)
}

/// Whether `s` may be a `code_challenge`. RFC 7636 §4.2 allows the same characters and length
/// as the verifier; an S256 challenge is always 43 characters.
pub fn is_valid_challenge(s: &str) -> bool {
    is_pkce_string(s)
}

/// Whether `s` is a well-formed `code_verifier` (RFC 7636 §4.1).
pub fn is_valid_verifier(s: &str) -> bool {
    is_pkce_string(s)
}

/// `BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))` without padding (RFC 7636 §4.2).
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha256(verifier.as_bytes()))
}

/// The S256 check of RFC 7636 §4.6. A verifier that breaks the §4.1 syntax never matches, and
/// the comparison runs in constant time so a failed attempt teaches nothing about the challenge.
pub fn verify_s256(verifier: &str, challenge: &str) -> bool {
    if !is_valid_verifier(verifier) {
        return false;
    }
    constant_time_eq(s256_challenge(verifier).as_bytes(), challenge.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7636 Appendix B.
    const RFC_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const RFC_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc7636_appendix_b_vector() {
        assert_eq!(s256_challenge(RFC_VERIFIER), RFC_CHALLENGE);
        assert!(verify_s256(RFC_VERIFIER, RFC_CHALLENGE));
    }

    #[test]
    fn appendix_b_values_are_well_formed() {
        assert!(is_valid_verifier(RFC_VERIFIER));
        assert!(is_valid_challenge(RFC_CHALLENGE));
    }

    #[test]
    fn wrong_verifier_or_challenge_fails() {
        let other = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXl";
        assert!(!verify_s256(other, RFC_CHALLENGE));
        assert!(!verify_s256(
            RFC_VERIFIER,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"
        ));
        assert!(!verify_s256(RFC_VERIFIER, ""));
        // `plain` is not supported: the challenge equal to the verifier must not pass.
        assert!(!verify_s256(RFC_VERIFIER, RFC_VERIFIER));
    }

    #[test]
    fn padded_or_standard_base64_challenge_does_not_match() {
        assert!(!verify_s256(RFC_VERIFIER, &format!("{RFC_CHALLENGE}=")));
        // The vector's challenge contains `-`, which standard base64 spells `+`.
        assert!(!verify_s256(RFC_VERIFIER, &RFC_CHALLENGE.replace('-', "+")));
    }

    #[test]
    fn malformed_verifier_never_matches_its_own_hash() {
        let short = "a".repeat(42);
        assert!(!verify_s256(&short, &s256_challenge(&short)));
        let long = "a".repeat(129);
        assert!(!verify_s256(&long, &s256_challenge(&long)));
        let bad_char = format!("{}+", "a".repeat(42));
        assert!(!verify_s256(&bad_char, &s256_challenge(&bad_char)));
    }

    #[test]
    fn length_bounds() {
        assert!(!is_valid_verifier(""));
        assert!(!is_valid_verifier(&"a".repeat(42)));
        assert!(is_valid_verifier(&"a".repeat(43)));
        assert!(is_valid_verifier(&"a".repeat(128)));
        assert!(!is_valid_verifier(&"a".repeat(129)));
        assert!(!is_valid_challenge(&"a".repeat(42)));
        assert!(is_valid_challenge(&"a".repeat(43)));
        assert!(is_valid_challenge(&"a".repeat(128)));
        assert!(!is_valid_challenge(&"a".repeat(129)));
    }

    #[test]
    fn character_set() {
        let base = "a".repeat(42);
        for ok in ['-', '.', '_', '~', 'Z', '9'] {
            assert!(is_valid_verifier(&format!("{base}{ok}")), "{ok:?}");
            assert!(is_valid_challenge(&format!("{base}{ok}")), "{ok:?}");
        }
        for bad in ['+', '/', '=', ' ', '%', '\n', 'é', '\u{0}'] {
            assert!(!is_valid_verifier(&format!("{base}{bad}")), "{bad:?}");
            assert!(!is_valid_challenge(&format!("{base}{bad}")), "{bad:?}");
        }
    }

    #[test]
    fn multibyte_characters_count_as_bytes_and_are_refused() {
        // 43 characters but not ASCII: refused whatever the length.
        let s = "é".repeat(43);
        assert!(!is_valid_verifier(&s));
    }

    #[test]
    fn challenge_is_43_url_safe_chars() {
        let verifier = "x".repeat(128);
        let challenge = s256_challenge(&verifier);
        assert_eq!(challenge.len(), 43);
        assert!(is_valid_challenge(&challenge));
        assert!(verify_s256(&verifier, &challenge));
    }
}
