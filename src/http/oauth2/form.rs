//! Reading OAuth requests: form bodies (RFC 6749 Appendix B) and HTTP Basic client credentials.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use base64::Engine;

use crate::oauth::OAuthError;
use crate::oauth::client_auth::ClientForm;

/// An `application/x-www-form-urlencoded` body as ordered pairs (so repeats can be detected).
pub struct OAuthForm(pub Vec<(String, String)>);

impl OAuthForm {
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl<S: Send + Sync> FromRequest<S> for OAuthForm {
    type Rejection = OAuthError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !is_form {
            return Err(OAuthError::invalid_request(
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                OAuthError::invalid_request("the request body is too large").with_status(413)
            } else {
                OAuthError::invalid_request("the request body could not be read")
            }
        })?;
        Ok(OAuthForm(
            url::form_urlencoded::parse(&bytes).into_owned().collect(),
        ))
    }
}

/// `Authorization: Basic` credentials, each part form-urlencoded (RFC 6749 §2.3.1).
/// `Ok(None)` without such a header; an unreadable one is an `invalid_client` error.
/// A client's request to an endpoint that authenticates clients, as the endpoint could read it:
/// the form's parameters with the credentials of an `Authorization: Basic` header, noting a
/// secret put in the query (refused later, after the per-IP limit counted the request).
pub fn client_request<T: ClientForm>(
    form: Result<OAuthForm, OAuthError>,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<T, OAuthError> {
    let form = form?;
    let mut request = T::from_pairs(form.pairs());
    request.client_mut().basic = basic_credentials(headers)?;
    request.client_mut().secret_in_query = secret_in_query(uri.query());
    Ok(request)
}

pub fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(None);
    };
    let Some((scheme, encoded)) = value.trim().split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let malformed = || OAuthError::invalid_client("the Authorization: Basic header is malformed");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    Ok(Some((form_decode(id), form_decode(secret))))
}

fn form_decode(part: &str) -> String {
    url::form_urlencoded::parse(format!("v={part}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Whether the URL query carries a `client_secret` (never accepted there).
pub fn secret_in_query(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        url::form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == "client_secret")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn basic_credentials_are_url_decoded() {
        let mut headers = HeaderMap::new();
        let encoded = base64::engine::general_purpose::STANDARD.encode("my%20id:s%3Acret+x");
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {encoded}"))
                .unwrap_or(HeaderValue::from_static("")),
        );
        let creds = basic_credentials(&headers).ok().flatten();
        assert_eq!(creds, Some(("my id".to_owned(), "s:cret x".to_owned())));
    }

    #[test]
    fn secrets_in_the_query_are_noticed() {
        assert!(secret_in_query(Some("a=b&client_secret=x")));
        assert!(!secret_in_query(Some("client_id=x")));
        assert!(!secret_in_query(None));
    }
}
