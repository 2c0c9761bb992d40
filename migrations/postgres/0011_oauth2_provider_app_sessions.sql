-- API sessions opened through a first-party OAuth client (`coder login --device` approves the
-- built-in Coder CLI client, whose device grant yields an API key): a third key login type,
-- `oauth2_provider_app`, Coder's name for keys minted by its OAuth2 provider.
ALTER TABLE api_keys DROP CONSTRAINT api_keys_login_type_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_login_type_check
    CHECK (login_type IN ('password', 'token', 'oauth2_provider_app'));
