//! The signed-in form post every page action shares: who posted it and what, or the answer that
//! stands in for the action (sign in first, or "this form expired" when the CSRF check fails).

use std::marker::PhantomData;

use axum::Form;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::Response;

use super::{FormFields, csrf, form_expired, sign_in_first};
use crate::domain::Principal;
use crate::http::extract::MaybeBrowserUser;
use crate::web::AppState;

/// Which page a form lives on, given the path it posts to: where the sign-in redirect returns
/// and where the "form expired" page links back to.
pub(crate) trait FormPage {
    fn page(posted_to: &str) -> String;
}

/// Forms that post to their page, or to an action under it (see [`page_of`]).
pub(crate) struct ActionPath;

impl FormPage for ActionPath {
    fn page(posted_to: &str) -> String {
        page_of(posted_to)
    }
}

/// A form POST from a signed-in user, carrying this browser's CSRF token.
pub(crate) struct SignedInForm<P: FormPage = ActionPath> {
    pub me: Principal,
    pub fields: FormFields,
    page: PhantomData<fn() -> P>,
}

impl<P: FormPage> FromRequest<AppState> for SignedInForm<P> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let page = P::page(req.uri().path());
        let (mut parts, body) = req.into_parts();
        let MaybeBrowserUser(user) =
            match MaybeBrowserUser::from_request_parts(&mut parts, state).await {
                Ok(user) => user,
                Err(never) => match never {},
            };
        let Some(me) = user else {
            return Err(sign_in_first(&page));
        };
        let headers = parts.headers.clone();
        // An unreadable form carries no token, so it is refused as an expired one.
        let form =
            Form::<Vec<(String, String)>>::from_request(Request::from_parts(parts, body), state)
                .await;
        let fields = FormFields(form.map(|f| f.0).unwrap_or_default());
        if !csrf::verify(state, &headers, fields.get(csrf::FIELD)) {
            return Err(form_expired(&page));
        }
        Ok(SignedInForm {
            me,
            fields,
            page: PhantomData,
        })
    }
}

/// The actions a form may post to under its page. `delete` removes the item it follows, so its
/// page is the list the item was in.
const ACTIONS: [&str; 5] = ["delete", "revoke", "builds", "active", "secrets"];

/// The page of a form posted to `path`: `/settings/tokens/ID/delete` → `/settings/tokens`,
/// `/workspaces/ID/builds` → `/workspaces/ID`, `/apps/A/secrets/S/delete` → `/apps/A`; a path
/// without an action is its own page.
fn page_of(path: &str) -> String {
    let mut segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    while segments.len() > 2 {
        let Some(last) = segments.last().copied() else {
            break;
        };
        if !ACTIONS.contains(&last) {
            break;
        }
        segments.pop();
        if last == "delete" {
            segments.pop();
        }
    }
    let page = segments.join("/");
    if page.is_empty() {
        "/".to_owned()
    } else {
        page
    }
}

#[cfg(test)]
mod tests {
    use super::page_of;

    #[test]
    fn a_forms_page_is_its_path_without_the_action() {
        for (posted, page) in [
            ("/settings/tokens", "/settings/tokens"),
            ("/settings/tokens/abc/delete", "/settings/tokens"),
            (
                "/settings/oauth2-provider/revoke",
                "/settings/oauth2-provider",
            ),
            ("/workspaces/w1/builds", "/workspaces/w1"),
            ("/workspaces/new", "/workspaces/new"),
            ("/templates/t1/active", "/templates/t1"),
            ("/templates/t1/delete", "/templates"),
            (
                "/deployment/oauth2-provider/apps/a1",
                "/deployment/oauth2-provider/apps/a1",
            ),
            (
                "/deployment/oauth2-provider/apps/a1/secrets",
                "/deployment/oauth2-provider/apps/a1",
            ),
            (
                "/deployment/oauth2-provider/apps/a1/secrets/s1/delete",
                "/deployment/oauth2-provider/apps/a1",
            ),
            (
                "/deployment/oauth2-provider/apps/a1/delete",
                "/deployment/oauth2-provider/apps",
            ),
            ("/delete", "/delete"),
            ("/", "/"),
        ] {
            assert_eq!(page_of(posted), page, "{posted}");
        }
    }
}
