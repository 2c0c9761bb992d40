//! Users: the first owner, sign-in, and owner-managed accounts.

use serde_json::json;
use uuid::Uuid;

use super::{Services, conflict_field, password, require_owner, validate};
use crate::audit::AuditEvent;
use crate::domain::text::{is_lookup_key, limits};
use crate::domain::{
    DomainError, FieldError, NewUser, Page, Principal, Role, User, UserId, UserStatus,
};
use crate::ratelimit::ip_key;
use crate::secret::Secret;
use crate::store::StoreError;

/// Input for the first user and for owner-created users.
#[derive(Clone, Default)]
pub struct CreateUserRequest {
    pub email: String,
    pub username: String,
    pub name: String,
    pub password: String,
}

impl std::fmt::Debug for CreateUserRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateUserRequest")
            .field("email", &self.email)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// How a path names a user: `me`, an id, or a username.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserSelector {
    Me,
    Id(UserId),
    Username(String),
}

impl UserSelector {
    pub fn parse(raw: &str) -> Self {
        if raw == "me" {
            UserSelector::Me
        } else if let Ok(id) = Uuid::parse_str(raw) {
            UserSelector::Id(UserId(id))
        } else {
            UserSelector::Username(raw.to_owned())
        }
    }
}

const LOGIN_FAILED: &str = "Incorrect email or password.";

impl Services {
    pub async fn first_user_exists(&self) -> Result<bool, DomainError> {
        Ok(self.store.count_users().await? > 0)
    }

    /// Creates the first user, who becomes the owner. Refused once any user exists.
    pub async fn create_first_user(&self, req: CreateUserRequest) -> Result<User, DomainError> {
        let new = self.prepare_user(req, Role::Owner).await?;
        let user = self
            .store
            .create_first_user(new)
            .await
            .map_err(|e| match e {
                StoreError::FirstUserExists => {
                    DomainError::conflict("The initial user has already been created.", None)
                }
                other => user_conflict(other),
            })?;
        self.record(user_event("user.create", &user).by(user.id))
            .await;
        Ok(user)
    }

    /// An owner creates another user, with the member role unless `role` says otherwise.
    pub async fn create_user(
        &self,
        actor: &Principal,
        req: CreateUserRequest,
        role: Role,
    ) -> Result<User, DomainError> {
        require_owner(actor)?;
        let new = self.prepare_user(req, role).await?;
        let user = self.store.create_user(new).await.map_err(user_conflict)?;
        self.audit(actor, user_event("user.create", &user)).await;
        Ok(user)
    }

    /// Creates an owner without a caller: for `coder server create-admin-user`.
    pub async fn create_admin_user(&self, req: CreateUserRequest) -> Result<User, DomainError> {
        if !self.first_user_exists().await? {
            return self.create_first_user(req).await;
        }
        let new = self.prepare_user(req, Role::Owner).await?;
        self.store.create_user(new).await.map_err(user_conflict)
    }

    async fn prepare_user(
        &self,
        req: CreateUserRequest,
        role: Role,
    ) -> Result<NewUser, DomainError> {
        let email = req.email.trim().to_owned();
        let username = req.username.trim().to_owned();
        let name = req.name.trim().to_owned();
        let mut problems: Vec<FieldError> = [
            validate::email("email", &email),
            validate::name("username", &username),
            validate::display_name("name", &name),
        ]
        .into_iter()
        .filter_map(Result::err)
        .collect();
        if req.password.is_empty() {
            problems.push(FieldError::new("password", "Required."));
        } else if let Err(problem) = password::check_policy(&req.password, &username, &email) {
            problems.push(problem);
        }
        if !problems.is_empty() {
            return Err(DomainError::invalid_fields("Invalid user.", problems));
        }
        let hashed_password = password::hash(&self.hashing, req.password).await?;
        Ok(NewUser {
            id: UserId::new(),
            username,
            email,
            name,
            hashed_password,
            role,
            created_at: self.clock.now(),
        })
    }

    /// Checks the password and opens a browser session. Rate limited per client IP; a failure
    /// never reveals whether the email exists.
    pub async fn login(
        &self,
        email: &str,
        password_attempt: String,
        client_ip: &str,
    ) -> Result<(User, Secret), DomainError> {
        if let Err(retry) = self.login_limiter.check(&ip_key(client_ip)) {
            return Err(DomainError::RateLimited {
                message: "Too many sign-in attempts. Wait a minute and try again.".into(),
                retry_after_secs: retry.0,
            });
        }
        // No account can have an email that breaks the stored-text rule (NUL, which PostgreSQL
        // cannot even compare); such an attempt fails like any wrong email.
        let email = email.trim();
        // Per account too: an attacker with many addresses still guesses slowly. Unknown emails
        // are counted alike, so the backoff does not tell which accounts exist.
        let account = email.to_lowercase();
        if let Err(retry) = self.account_backoff.check(&account) {
            return Err(DomainError::RateLimited {
                message: "Too many wrong passwords for this account. Wait and try again.".into(),
                retry_after_secs: retry.0,
            });
        }
        let found = if validate::text("email", email, limits::EMAIL).is_ok() {
            self.store.get_user_credentials_by_email(email).await?
        } else {
            None
        };
        let stored_hash = found.as_ref().map(|c| c.hashed_password.clone());
        let verified = password::verify(&self.hashing, password_attempt, stored_hash).await?;
        let user = match found {
            Some(creds) if verified => creds.user,
            _ => {
                self.account_backoff.fail(&account);
                return Err(DomainError::Unauthenticated(LOGIN_FAILED.into()));
            }
        };
        self.account_backoff.succeed(&account);
        if user.status != UserStatus::Active {
            return Err(DomainError::Unauthenticated(
                "Your account is suspended. Contact an owner of this deployment.".into(),
            ));
        }
        let now = self.clock.now();
        self.store.touch_user_last_seen(user.id, now).await?;
        let (session, key) = self.create_session(user.id).await?;
        self.record(
            AuditEvent::new("user.login", "api_key", key.0)
                .by(user.id)
                .from_ip(client_ip)
                .details(json!({ "login_type": "password" })),
        )
        .await;
        Ok((
            User {
                last_seen_at: now,
                ..user
            },
            session,
        ))
    }

    /// Finds the user a path names, as `actor` may see it: members see only themselves, and
    /// anyone else is "not found" so that accounts cannot be probed.
    pub async fn get_user(
        &self,
        actor: &Principal,
        who: &UserSelector,
    ) -> Result<User, DomainError> {
        let found = match who {
            UserSelector::Me => return Ok(actor.user.clone()),
            UserSelector::Id(id) if *id == actor.user.id => return Ok(actor.user.clone()),
            UserSelector::Id(id) => self.store.get_user_by_id(*id).await?,
            UserSelector::Username(name) if is_lookup_key(name) => {
                self.store.get_user_by_username(name).await?
            }
            UserSelector::Username(_) => None,
        };
        match found {
            Some(user) if user.id == actor.user.id || actor.is_owner() => Ok(user),
            _ => Err(DomainError::NotFound("User not found.".into())),
        }
    }

    /// The user a verified access token was issued to, if they still exist. No access check:
    /// the token already proved the caller is this user.
    pub async fn get_token_subject(&self, id: UserId) -> Result<Option<User>, DomainError> {
        Ok(self.store.get_user_by_id(id).await?)
    }

    pub async fn list_users(
        &self,
        actor: &Principal,
        page: Page,
    ) -> Result<(Vec<User>, i64), DomainError> {
        require_owner(actor)?;
        Ok(self.store.list_users(page).await?)
    }

    /// An owner deletes another user; their sessions and tokens stop working at once.
    pub async fn delete_user(
        &self,
        actor: &Principal,
        who: &UserSelector,
    ) -> Result<UserId, DomainError> {
        require_owner(actor)?;
        let user = self.get_user(actor, who).await?;
        if user.id == actor.user.id {
            return Err(DomainError::Forbidden("You cannot delete yourself.".into()));
        }
        let now = self.clock.now();
        if !self.store.delete_user(user.id, now).await? {
            return Err(DomainError::NotFound("User not found.".into()));
        }
        // Their sessions went with the account; their OAuth grants stop working now too.
        self.revoke_grants(user.id, now).await?;
        self.audit(actor, user_event("user.delete", &user)).await;
        Ok(user.id)
    }

    /// An owner suspends or reactivates another user. A suspended user cannot sign in, and
    /// every credential they hold is refused while they stay suspended (API keys by
    /// `authenticate_api_key`, OAuth tokens by the revocation of their grants).
    pub async fn set_user_status(
        &self,
        actor: &Principal,
        who: &UserSelector,
        status: UserStatus,
    ) -> Result<User, DomainError> {
        require_owner(actor)?;
        let user = self.get_user(actor, who).await?;
        if user.id == actor.user.id && status == UserStatus::Suspended {
            return Err(DomainError::invalid("You cannot suspend yourself."));
        }
        // Asking again is no change, and no entry in the audit log.
        if user.status == status {
            return Ok(user);
        }
        let now = self.clock.now();
        if !self.store.set_user_status(user.id, status, now).await? {
            return Err(DomainError::NotFound("User not found.".into()));
        }
        if status == UserStatus::Suspended {
            // Access tokens verify without the database (and the MCP endpoint caches users for
            // a few seconds): revoking the grants stops them now, on every replica within the
            // revocation sync. Reactivated users authorize their apps again.
            self.revoke_grants(user.id, now).await?;
        }
        let action = match status {
            UserStatus::Suspended => "user.suspend",
            UserStatus::Active => "user.activate",
        };
        let user = User {
            status,
            updated_at: now,
            ..user
        };
        self.audit(actor, user_event(action, &user)).await;
        Ok(user)
    }

    /// An owner sets another user's site roles (Coder's `PUT /users/{user}/roles`): `owner`,
    /// or none (`member` is implied and may be named).
    pub async fn set_user_roles(
        &self,
        actor: &Principal,
        who: &UserSelector,
        roles: &[String],
    ) -> Result<User, DomainError> {
        require_owner(actor)?;
        let role = role_from_site_roles(roles)?;
        let user = self.get_user(actor, who).await?;
        if user.id == actor.user.id && role != Role::Owner {
            return Err(DomainError::invalid(
                "You cannot remove your own owner role; ask another owner.",
            ));
        }
        if user.role == role {
            return Ok(user);
        }
        let now = self.clock.now();
        if !self.store.set_user_role(user.id, role, now).await? {
            return Err(DomainError::NotFound("User not found.".into()));
        }
        let previous = user.role;
        let user = User {
            role,
            updated_at: now,
            ..user
        };
        self.audit(
            actor,
            AuditEvent::new("user.role.update", "user", user.id.0).details(json!({
                "username": user.username,
                "from": previous.as_str(),
                "to": role.as_str(),
            })),
        )
        .await;
        Ok(user)
    }
}

impl Services {
    /// Revokes every OAuth grant `user` holds, denied at once on this replica.
    async fn revoke_grants(
        &self,
        user: UserId,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), DomainError> {
        let revoked = self.store.revoke_user_grants(user, None, now).await?;
        if let Some(deps) = &self.oauth_apps {
            deps.revocations.add(revoked, now);
        }
        Ok(())
    }
}

/// The one role this server stores, from Coder's list of site roles.
fn role_from_site_roles(roles: &[String]) -> Result<Role, DomainError> {
    let mut role = Role::Member;
    let mut problems = Vec::new();
    for name in roles {
        match Role::parse(name.trim()) {
            Some(Role::Owner) => role = Role::Owner,
            Some(Role::Member) => {}
            None => problems.push(FieldError::new(
                "roles",
                format!(
                    "{name:?} is not a site role of this deployment; use \"owner\" or \"member\"."
                ),
            )),
        }
    }
    if problems.is_empty() {
        Ok(role)
    } else {
        Err(DomainError::invalid_fields("Invalid roles.", problems))
    }
}

/// An entry about `user`, naming them in the details (the id alone outlives nothing useful
/// once the account is deleted).
fn user_event(action: &'static str, user: &User) -> AuditEvent {
    AuditEvent::new(action, "user", user.id.0).details(json!({
        "username": user.username,
        "email": user.email,
        "role": user.role.as_str(),
        "status": user.status.as_str(),
    }))
}

fn user_conflict(err: StoreError) -> DomainError {
    match conflict_field(&err) {
        Some("username") => DomainError::conflict(
            "A user with this username already exists.",
            Some("username"),
        ),
        Some("email") => {
            DomainError::conflict("A user with this email already exists.", Some("email"))
        }
        _ => err.into(),
    }
}
