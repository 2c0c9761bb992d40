"""Interoperability check: the official MCP Python SDK against a running coder server.

run.sh starts the server, creates the first user and runs this script with:

  CODER_URL       the server's access URL, e.g. http://127.0.0.1:41234
  CODER_EMAIL     the first user's email
  CODER_USERNAME  the first user's username
  CODER_PASSWORD  the first user's password
  CODER_INTEROP_VERBOSE=1  print every HTTP exchange, not only on failure

The SDK does the whole OAuth dance by itself: the 401 challenge, protected resource
metadata, authorization server metadata, dynamic client registration, PKCE and the code
exchange. This script only plays the user's browser (sign in, read the consent page, press
Allow, hand the redirect's `code` and `state` back) in the SDK's redirect and callback
handlers.

Each check is an async function in CHECKS. They run in order and share a Ctx; the first
failure stops the run and counts the checks after it as failed. The script ends with the
line `N passed, M failed`, which run.sh and .ci/run rely on.
"""

from __future__ import annotations

import builtins
import logging
import os
import re
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from html.parser import HTMLParser
from importlib.metadata import version
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import anyio
import httpx2
from mcp import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

MCP_PATH = "/api/experimental/mcp/http"
# Nothing listens here: the "browser" reads the redirect's Location instead of following it.
REDIRECT_URI = "http://127.0.0.1:33418/callback"
CLIENT_NAME = "coderd interop (MCP Python SDK)"
HTTP_TIMEOUT = httpx2.Timeout(30.0, read=120.0)


# --------------------------------------------------------------------------------------
# HTTP trace: every request the SDK and the browser make, for assertions and diagnosis.


@dataclass
class Exchange:
    who: str  # "sdk" or "browser"
    method: str
    url: str
    status: int
    form: dict[str, str]
    request_headers: dict[str, str]
    response_headers: dict[str, str]
    body: str

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    def line(self) -> str:
        extra = ""
        if self.form:
            shown = {
                k: (v if k in ("grant_type", "action", "resource", "scope") else "…") for k, v in self.form.items()
            }
            extra += f" form={shown}"
        if "www-authenticate" in self.response_headers:
            extra += f" www-authenticate={self.response_headers['www-authenticate']!r}"
        if "location" in self.response_headers:
            extra += f" location={self.response_headers['location'][:120]!r}"
        if self.status >= 400 and self.body:
            extra += f" body={self.body[:300]!r}"
        return f"[{self.who}] {self.method} {self.url[:160]} -> {self.status}{extra}"


class TracingTransport(httpx2.AsyncBaseTransport):
    def __init__(self, who: str, trace: list[Exchange], verbose: bool) -> None:
        self._inner = httpx2.AsyncHTTPTransport()
        self._who = who
        self._trace = trace
        self._verbose = verbose

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        form: dict[str, str] = {}
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            form = {k: v[0] for k, v in parse_qs(request.content.decode(), keep_blank_values=True).items()}
        body = ""
        content_type = response.headers.get("content-type", "")
        if "text/event-stream" not in content_type:
            await response.aread()
            body = response.content.decode(errors="replace")
        exchange = Exchange(
            who=self._who,
            method=request.method,
            url=str(request.url),
            status=response.status_code,
            form=form,
            request_headers={k.lower(): v for k, v in request.headers.items()},
            response_headers={k.lower(): v for k, v in response.headers.items()},
            body=body,
        )
        self._trace.append(exchange)
        if self._verbose:
            print("    " + exchange.line(), flush=True)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


# --------------------------------------------------------------------------------------
# The SDK's token storage, in memory.


class MemoryStorage(TokenStorage):
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None
        self.token_history: list[OAuthToken] = []

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens
        self.token_history.append(tokens)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


# --------------------------------------------------------------------------------------
# The user's browser.


class ConsentFormParser(HTMLParser):
    """Collects the consent page's decision form (the page's header also holds the sign-out
    form): its action and method, and its inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.method: str | None = None
        self.hidden: list[tuple[str, str]] = []
        self.buttons: list[tuple[str, str]] = []
        self._in_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        if tag == "form" and self.action is None and a.get("action", "").endswith("/oauth2/authorize"):
            self.action, self.method, self._in_form = a.get("action", ""), a.get("method", "get"), True
        elif self._in_form and tag == "input" and a.get("type") == "hidden" and "name" in a:
            self.hidden.append((a["name"], a.get("value", "")))
        elif self._in_form and tag == "button" and "name" in a:
            self.buttons.append((a["name"], a.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False


def set_cookies(response: httpx2.Response) -> dict[str, str]:
    cookies = {}
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        cookies[name.strip()] = rest.split(";", 1)[0].strip()
    return cookies


class Browser:
    """Signs in as the user and answers the consent page the way a person pressing Allow would."""

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
        self.session_token: str | None = None
        self.consents = 0
        self.authorization_urls: list[str] = []
        self._pending: AuthorizationCodeResult | None = None

    async def _request(self, method: str, url: str, *, cookies: dict[str, str], **kw: Any) -> httpx2.Response:
        # Cookies are sent explicitly: the client's own jar is emptied so only these go out.
        self.ctx.browser_http.cookies.clear()
        if cookies:
            kw.setdefault("headers", {})["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        response = await self.ctx.browser_http.request(method, url, **kw)
        self.ctx.browser_http.cookies.clear()
        return response

    async def sign_in(self) -> str:
        if self.session_token is None:
            r = await self._request(
                "POST",
                f"{self.ctx.base_url}/api/v2/users/login",
                cookies={},
                json={"email": self.ctx.email, "password": self.ctx.password},
            )
            expect(r.status_code in (200, 201), f"sign-in answered {r.status_code}: {r.text[:300]}")
            self.session_token = r.json()["session_token"]
        return self.session_token

    async def redirect_handler(self, authorization_url: str) -> None:
        """The SDK calls this with the URL it would open in a browser."""
        self.authorization_urls.append(authorization_url)
        expect(
            authorization_url.startswith(f"{self.ctx.base_url}/oauth2/authorize?"),
            f"authorization URL is not the advertised endpoint: {authorization_url}",
        )
        session = await self.sign_in()
        page = await self._request("GET", authorization_url, cookies={"coder_session_token": session})
        expect(page.status_code == 200, f"consent page answered {page.status_code}: {page.text[:500]}")
        expect(CLIENT_NAME in page.text, "consent page does not name the registered client")
        expect(self.ctx.username in page.text, "consent page does not name the signed-in user")
        form = ConsentFormParser()
        form.feed(page.text)
        expect(form.action is not None, "consent page has no form")
        expect((form.method or "").lower() == "post", f"consent form method is {form.method!r}, expected post")
        expect(("action", "allow") in form.buttons, f"consent form has no Allow button: {form.buttons}")
        fields = dict(form.hidden)
        expect(bool(fields.get("csrf_token")), "consent form has no csrf_token")
        cookies = {"coder_session_token": session}
        csrf_cookie = set_cookies(page).get("coder_csrf")
        if csrf_cookie is not None:
            cookies["coder_csrf"] = csrf_cookie
        action_url = str(httpx2.URL(authorization_url).join(form.action or ""))
        decision = await self._request(
            "POST",
            action_url,
            cookies=cookies,
            content=urlencode([*form.hidden, ("action", "allow")]),
            headers={"Origin": self.ctx.base_url, "Content-Type": "application/x-www-form-urlencoded"},
        )
        expect(decision.status_code == 302, f"consent POST answered {decision.status_code}: {decision.text[:500]}")
        location = decision.headers.get("location", "")
        expect(location.startswith(REDIRECT_URI), f"consent redirected to {location!r}, not {REDIRECT_URI}")
        query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        expect("error" not in query, f"authorization failed: {query}")
        expect("code" in query, f"no code in the redirect: {location}")
        self.consents += 1
        self._pending = AuthorizationCodeResult(code=query["code"], state=query.get("state"), iss=query.get("iss"))

    async def callback_handler(self) -> AuthorizationCodeResult:
        """The SDK calls this to wait for the redirect to its callback URL."""
        expect(self._pending is not None, "callback requested before the consent was given")
        result, self._pending = self._pending, None
        assert result is not None
        return result


# --------------------------------------------------------------------------------------
# Shared state and helpers.


class CheckFailed(Exception):
    pass


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


@dataclass
class Ctx:
    base_url: str
    email: str
    username: str
    password: str
    verbose: bool
    stack: AsyncExitStack
    trace: list[Exchange] = field(default_factory=list)
    storage: MemoryStorage = field(default_factory=MemoryStorage)
    browser_http: httpx2.AsyncClient = field(init=False)
    raw_http: httpx2.AsyncClient = field(init=False)
    browser: Browser = field(init=False)
    provider: OAuthClientProvider = field(init=False)
    client: Client | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def mcp_url(self) -> str:
        return self.base_url + MCP_PATH

    async def open(self) -> None:
        self.browser_http = await self.stack.enter_async_context(
            httpx2.AsyncClient(transport=TracingTransport("browser", self.trace, self.verbose), timeout=HTTP_TIMEOUT)
        )
        # For the checks' own direct calls (revocation, raw MCP requests): no SDK involved.
        self.raw_http = await self.stack.enter_async_context(
            httpx2.AsyncClient(transport=TracingTransport("raw", self.trace, self.verbose), timeout=HTTP_TIMEOUT)
        )
        self.browser = Browser(self)
        self.provider = OAuthClientProvider(
            server_url=self.mcp_url,
            client_metadata=OAuthClientMetadata(
                client_name=CLIENT_NAME,
                redirect_uris=[REDIRECT_URI],
                grant_types=["authorization_code", "refresh_token"],
                response_types=["code"],
            ),
            storage=self.storage,
            redirect_handler=self.browser.redirect_handler,
            callback_handler=self.browser.callback_handler,
        )

    def sdk_http(self) -> httpx2.AsyncClient:
        """An HTTP client for the SDK, authenticated by the shared OAuth provider."""
        return httpx2.AsyncClient(
            auth=self.provider, transport=TracingTransport("sdk", self.trace, self.verbose), timeout=HTTP_TIMEOUT
        )

    async def connect(self, mode: str) -> Client:
        http = await self.stack.enter_async_context(self.sdk_http())
        client = Client(streamable_http_client(self.mcp_url, http_client=http), mode=mode, cache=None)
        return await self.stack.enter_async_context(client)

    def sdk(self) -> Client:
        expect(self.client is not None, "no SDK session (the connect check failed)")
        assert self.client is not None
        return self.client

    def since(self, mark: int, who: str | None = None) -> list[Exchange]:
        return [e for e in self.trace[mark:] if who is None or e.who == who]

    async def call_tool(self, client: Client, name: str, arguments: dict[str, Any] | None = None) -> Any:
        result = await client.call_tool(name, arguments or {})
        text = " ".join(getattr(c, "text", "") for c in result.content)
        expect(not result.is_error, f"{name} returned an error: {text[:500]}")
        expect(result.structured_content is not None, f"{name} returned no structuredContent")
        return result.structured_content

    def client_auth(self) -> tuple[dict[str, str], httpx2.Auth | None]:
        """The registered client's credentials, the way it registered to present them."""
        info = self.storage.client_info
        expect(info is not None, "no registered client")
        assert info is not None
        method = info.token_endpoint_auth_method or "client_secret_basic"
        if info.client_secret and method == "client_secret_basic":
            return {}, httpx2.BasicAuth(info.client_id, info.client_secret)
        form = {"client_id": info.client_id}
        if info.client_secret and method == "client_secret_post":
            form["client_secret"] = info.client_secret
        return form, None

    async def raw_mcp(self, access_token: str, method: str = "tools/list") -> httpx2.Response:
        return await self.raw_http.post(
            self.mcp_url,
            headers={
                "Authorization": f"Bearer {access_token}",
                "Accept": "application/json, text/event-stream",
                "MCP-Protocol-Version": "2025-06-18",
            },
            json={"jsonrpc": "2.0", "id": 1, "method": method, "params": {}},
        )


def find(exchanges: list[Exchange], pred: Callable[[Exchange], bool], what: str) -> Exchange:
    for e in exchanges:
        if pred(e):
            return e
    raise CheckFailed(f"expected {what}; saw:\n      " + "\n      ".join(e.line() for e in exchanges))


def www_auth_param(header: str, name: str) -> str | None:
    m = re.search(rf'{name}="([^"]*)"', header)
    return m.group(1) if m else None


# --------------------------------------------------------------------------------------
# Checks. Each returns a short detail for the report, or raises.


async def check_connect(ctx: Ctx) -> str:
    """The SDK connects with no credentials and authorizes itself from the 401."""
    ctx.data["connect_mark"] = len(ctx.trace)
    ctx.client = await ctx.connect("auto")
    expect(ctx.browser.consents == 1, f"expected one consent, saw {ctx.browser.consents}")
    expect(ctx.storage.tokens is not None, "the SDK stored no tokens")
    server = ctx.client.server_info
    named = f"{server.name} {server.version}" if server else "(anonymous)"
    return f"protocol {ctx.client.protocol_version}, server {named}"


async def check_discovery_sequence(ctx: Ctx) -> str:
    """The SDK's requests follow the spec's discovery sequence, and the server answered each."""
    seq = ctx.since(ctx.data["connect_mark"], who="sdk")
    first = seq[0]
    expect(first.path == MCP_PATH and first.status == 401, f"first request: {first.line()}")
    challenge = first.response_headers.get("www-authenticate", "")
    prm_url = www_auth_param(challenge, "resource_metadata")
    expect(prm_url == f"{ctx.base_url}/.well-known/oauth-protected-resource{MCP_PATH}", f"challenge: {challenge}")
    prm = find(seq, lambda e: e.method == "GET" and e.url == prm_url, "a GET of the PRM URL from the challenge")
    expect(prm.status == 200, f"PRM: {prm.line()}")
    asm = find(
        seq,
        lambda e: (
            e.method == "GET"
            and e.path.startswith(("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"))
            and e.status == 200
        ),
        "authorization server metadata",
    )
    expect(asm.status == 200, f"AS metadata: {asm.line()}")
    reg = find(seq, lambda e: e.method == "POST" and e.path == "/oauth2/register", "dynamic client registration")
    expect(reg.status in (200, 201), f"registration: {reg.line()}")
    tok = find(
        seq,
        lambda e: e.path == "/oauth2/tokens" and e.form.get("grant_type") == "authorization_code",
        "the code exchange",
    )
    expect(tok.status == 200, f"code exchange: {tok.line()}")
    expect(bool(tok.form.get("code_verifier")), "the code exchange carried no PKCE verifier")
    expect(tok.form.get("resource") == ctx.mcp_url, f"code exchange resource={tok.form.get('resource')!r}")
    auth_url = ctx.browser.authorization_urls[-1]
    auth_q = {k: v[0] for k, v in parse_qs(urlsplit(auth_url).query).items()}
    expect(auth_q.get("code_challenge_method") == "S256", f"authorize query: {auth_q}")
    expect(auth_q.get("resource") == ctx.mcp_url, f"authorize resource={auth_q.get('resource')!r}")
    retried = [e for e in seq if e.path == MCP_PATH and e.status == 200]
    expect(bool(retried), "no MCP request succeeded after the token exchange")
    info = ctx.storage.client_info
    assert info is not None
    return (
        f"401 → PRM → {asm.path} → register ({info.token_endpoint_auth_method}) → consent "
        f"(scope {auth_q.get('scope')!r}) → token → retry"
    )


async def check_tools_list(ctx: Ctx) -> str:
    result = await ctx.sdk().list_tools()
    names = [t.name for t in result.tools]
    expect("coder_get_authenticated_user" in names, f"coder_get_authenticated_user not listed: {names}")
    missing = [t.name for t in result.tools if t.annotations is None]
    expect(not missing, f"tools without annotations: {missing}")
    return f"{len(names)} tools: {', '.join(names)}"


async def check_get_authenticated_user(ctx: Ctx) -> str:
    user = await ctx.call_tool(ctx.sdk(), "coder_get_authenticated_user")
    expect(user.get("username") == ctx.username, f"username {user.get('username')!r}, expected {ctx.username!r}")
    return f"username={user['username']}"


TEMPLATE_MANIFEST = "agent:\n  startup_script: echo started\n"


async def check_template_through_mcp(ctx: Ctx) -> str:
    """The owner builds a template with the MCP template tools, as an agent would."""
    client = ctx.sdk()
    uploaded = await ctx.call_tool(client, "coder_upload_tar_file", {"files": {"coder.yaml": TEMPLATE_MANIFEST}})
    version = await ctx.call_tool(client, "coder_create_template_version", {"file_id": uploaded["id"]})
    # The import is a job; its status is on the REST API (no MCP tool reads one version).
    session = await ctx.browser.sign_in()
    status = ""
    for _ in range(120):
        r = await ctx.raw_http.get(
            f"{ctx.base_url}/api/v2/templateversions/{version['id']}", headers={"Coder-Session-Token": session}
        )
        status = r.json()["job"]["status"]
        if status not in ("pending", "running"):
            break
        await anyio.sleep(0.25)
    expect(status == "succeeded", f"template version import ended {status!r}")
    template = await ctx.call_tool(
        client,
        "coder_create_template",
        {"name": "interop", "display_name": "Interop", "description": "Made by the interop check", "version_id": version["id"]},
    )
    ctx.data["version_id"] = template["active_version_id"]
    return f"template {template['name']} at version {template['active_version_id']}"


async def check_workspace_command(ctx: Ctx) -> str:
    """Create a workspace, wait until it is ready, and run `echo hi` in it."""
    client = ctx.sdk()
    created = await ctx.call_tool(
        client, "coder_create_workspace", {"template_version_id": ctx.data["version_id"], "name": "interop"}
    )
    ready: dict[str, Any] = {}
    for _ in range(6):
        ready = await ctx.call_tool(client, "coder_workspace_readiness", {"workspace": "interop", "wait_ms": 10000})
        if ready.get("ready"):
            break
    expect(ready.get("ready") is True, f"workspace never became ready: {ready}")
    ran = await ctx.call_tool(client, "coder_workspace_bash", {"workspace": "interop", "command": "echo hi"})
    expect(ran.get("output", "").strip() == "hi", f"echo hi printed {ran.get('output')!r}")
    expect(ran.get("exit_code") == 0, f"exit code {ran.get('exit_code')}")
    return f"workspace {created['name']} ready; echo hi → {ran['output'].strip()!r}"


async def check_legacy_handshake(ctx: Ctx) -> str:
    """A second session forced onto the `initialize` handshake reuses the SDK's stored token."""
    mark = len(ctx.trace)
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(ctx.sdk_http())
        client = await stack.enter_async_context(
            Client(streamable_http_client(ctx.mcp_url, http_client=http), mode="legacy", cache=None)
        )
        user = await ctx.call_tool(client, "coder_get_authenticated_user")
        expect(user.get("username") == ctx.username, f"username {user.get('username')!r}")
        version_ = client.protocol_version
    unauthorized = [e for e in ctx.since(mark, "sdk") if e.status == 401]
    expect(not unauthorized, f"the stored token was refused: {unauthorized[0].line() if unauthorized else ''}")
    return f"initialize negotiated {version_}"


async def check_refresh(ctx: Ctx) -> str:
    """The SDK refreshes an expired token by itself; the server rotates both tokens."""
    before = ctx.storage.tokens
    assert before is not None
    expect(bool(before.refresh_token), "the code exchange issued no refresh token")
    expect(before.expires_in is not None, "the code exchange gave no expires_in")
    # Make the SDK believe its access token has expired; its next request refreshes first.
    ctx.provider.context.token_expiry_time = time.time() - 1
    mark = len(ctx.trace)
    user = await ctx.call_tool(ctx.sdk(), "coder_get_authenticated_user")
    expect(user.get("username") == ctx.username, f"username {user.get('username')!r}")
    refresh = find(
        ctx.since(mark, "sdk"),
        lambda e: e.path == "/oauth2/tokens" and e.form.get("grant_type") == "refresh_token",
        "a refresh_token grant",
    )
    expect(refresh.status == 200, f"refresh: {refresh.line()}")
    after = ctx.storage.tokens
    assert after is not None
    expect(after.access_token != before.access_token, "the access token did not change")
    expect(
        bool(after.refresh_token) and after.refresh_token != before.refresh_token, "the refresh token was not rotated"
    )
    expect(ctx.browser.consents == 1, "the refresh asked the user again")
    return f"rotated; resource={refresh.form.get('resource')!r}, call after refresh ok"


async def check_revoke(ctx: Ctx) -> str:
    """Revoking the refresh token (RFC 7009) revokes the grant; its access token gets 401."""
    tokens = ctx.storage.tokens
    assert tokens is not None and tokens.refresh_token
    ctx.data["revoked"] = tokens
    ok = await ctx.raw_mcp(tokens.access_token)
    expect(ok.status_code == 200, f"the current access token does not work before revocation: {ok.status_code}")
    form, auth = ctx.client_auth()
    r = await ctx.raw_http.post(
        f"{ctx.base_url}/oauth2/revoke",
        data={**form, "token": tokens.refresh_token, "token_type_hint": "refresh_token"},
        auth=auth,
    )
    expect(r.status_code == 200, f"revoke answered {r.status_code}: {r.text[:300]}")
    denied = await ctx.raw_mcp(tokens.access_token)
    expect(denied.status_code == 401, f"the revoked grant's access token got {denied.status_code}, not 401")
    challenge = denied.headers.get("www-authenticate", "")
    expect('error="invalid_token"' in challenge, f"401 challenge: {challenge}")
    expect("resource_metadata=" in challenge, f"401 challenge lacks resource_metadata: {challenge}")
    return "revoke 200, then 401 invalid_token"


async def check_revoked_refresh_token(ctx: Ctx) -> str:
    tokens: OAuthToken = ctx.data["revoked"]
    form, auth = ctx.client_auth()
    r = await ctx.raw_http.post(
        f"{ctx.base_url}/oauth2/tokens",
        data={
            **form,
            "grant_type": "refresh_token",
            "refresh_token": tokens.refresh_token or "",
            "resource": ctx.mcp_url,
        },
        auth=auth,
    )
    expect(r.status_code == 400, f"refresh with a revoked token answered {r.status_code}: {r.text[:300]}")
    expect(r.json().get("error") == "invalid_grant", f"error body: {r.text[:300]}")
    return "400 invalid_grant"


async def check_sdk_recovers_after_revoke(ctx: Ctx) -> str:
    """The SDK's next call gets 401, and it re-authorizes with its existing registration."""
    mark = len(ctx.trace)
    consents = ctx.browser.consents
    user = await ctx.call_tool(ctx.sdk(), "coder_get_authenticated_user")
    expect(user.get("username") == ctx.username, f"username {user.get('username')!r}")
    seq = ctx.since(mark, "sdk")
    first = find(seq, lambda e: e.path == MCP_PATH, "an MCP request")
    expect(first.status == 401, f"the SDK's first call after revocation got {first.status}, not 401")
    expect(not [e for e in seq if e.path == "/oauth2/register"], "the SDK registered a new client")
    expect(ctx.browser.consents == consents + 1, "the SDK did not ask for consent again")
    return "401 → re-authorized without re-registering → ok"


Check = Callable[[Ctx], Awaitable[str]]

CHECKS: list[tuple[str, Check]] = [
    ("connect through OAuth (discovery, DCR, PKCE, consent, token)", check_connect),
    ("discovery sequence on the wire", check_discovery_sequence),
    ("tools/list", check_tools_list),
    ("tools/call coder_get_authenticated_user", check_get_authenticated_user),
    ("template through the MCP template tools", check_template_through_mcp),
    ("workspace: create, wait until ready, echo hi", check_workspace_command),
    ("legacy initialize handshake with the stored token", check_legacy_handshake),
    ("refresh (SDK-driven, rotating)", check_refresh),
    ("revoke → 401", check_revoke),
    ("revoked refresh token → invalid_grant", check_revoked_refresh_token),
    ("SDK re-authorizes after revocation", check_sdk_recovers_after_revoke),
]


# --------------------------------------------------------------------------------------


_EXCEPTION_GROUP = getattr(builtins, "BaseExceptionGroup", ())  # Python 3.11+; anyio raises these


def describe(exc: BaseException) -> str:
    if isinstance(exc, CheckFailed):
        return str(exc)
    if isinstance(exc, _EXCEPTION_GROUP):
        return "; ".join(describe(e) for e in exc.exceptions)
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


class _NoTraceback(logging.Filter):
    """The SDK logs its own tracebacks for OAuth errors; the check's FAIL line already says why."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        return True


def setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("    sdk log: %(levelname)s %(name)s: %(message)s"))
    if not os.environ.get("CODER_INTEROP_TRACEBACK"):
        handler.addFilter(_NoTraceback())
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    # Only the SDK's own debug lines: httpx2/httpcore2 would drown the exchange trace.
    if verbose:
        logging.getLogger("mcp").setLevel(logging.DEBUG)


async def main() -> int:
    base_url = os.environ["CODER_URL"].rstrip("/")
    verbose = os.environ.get("CODER_INTEROP_VERBOSE", "") not in ("", "0")
    setup_logging(verbose)
    print(f"MCP Python SDK: mcp {version('mcp')} (httpx2 {version('httpx2')}); server {base_url}", flush=True)
    passed = failed = 0
    async with AsyncExitStack() as stack:
        ctx = Ctx(
            base_url=base_url,
            email=os.environ["CODER_EMAIL"],
            username=os.environ["CODER_USERNAME"],
            password=os.environ["CODER_PASSWORD"],
            verbose=verbose,
            stack=stack,
        )
        await ctx.open()
        stopped = False
        for name, check in CHECKS:
            if stopped:
                print(f"FAIL {name}: not run (an earlier check failed)", flush=True)
                failed += 1
                continue
            mark = len(ctx.trace)
            started = time.monotonic()
            try:
                detail = await check(ctx)
            except Exception as exc:  # noqa: BLE001 - every failure is reported, then the run stops
                failed += 1
                stopped = True
                print(f"FAIL {name}: {describe(exc)}", flush=True)
                if not verbose:
                    print("  HTTP exchanges during this check:", flush=True)
                    for e in ctx.trace[mark:]:
                        print("    " + e.line(), flush=True)
                if os.environ.get("CODER_INTEROP_TRACEBACK"):
                    traceback.print_exc()
            else:
                passed += 1
                print(f"ok   {name} ({time.monotonic() - started:.2f}s): {detail}", flush=True)
    print(f"{passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    try:
        sys.exit(anyio.run(main))
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception:  # noqa: BLE001 - a crash outside a check still ends with the summary line
        traceback.print_exc()
        print(f"0 passed, {len(CHECKS)} failed", flush=True)
        sys.exit(1)
