"""What every dashboard page shares: rendering (Jinja2, autoescaped), the security headers, the signed-in
environment (`dashboard_env`), CSRF checks of form posts, and the HTML error pages.

A page handler of the dashboard takes `env: DashboardEnv` to need a signed-in user (anyone else is redirected
to `/`), and answers `render(request, "page.html", env=env, ...)`; a form it posts carries
`<input type="hidden" name="csrf_token" value="{{ csrf_token }}">` and its POST handler calls
`await posted_form(request, sessions)` first (a missing or wrong token is a 403 page)."""

import logging
from pathlib import Path
from typing import Any
from uuid import UUID

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from litestar import Response
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.enums import MediaType
from litestar.exceptions import HTTPException
from litestar.response import Redirect
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.adapters.store import ConcurrencyConflict
from app.adapters.ttl_cache import TtlCache
from app.api.common import AnyRequest, Service
from app.dashboard import formats
from app.dashboard.session import CSRF_COOKIE, CSRF_FIELD, SESSION_COOKIE, SESSION_SECONDS, Sessions
from app.errors import ClientError
from app.service import JobsService
from app.service.environments import EnvironmentInfo, hash_key
from domain.status import InvalidTransition

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
TEMPLATES = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"], default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
TEMPLATES.filters.update(formats.FILTERS)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()"),
]


class SecurityHeaders:
    """Route middleware of the dashboard: the headers above on every answer, error pages included (it wraps
    Litestar's exception handling), and `Cache-Control: no-store` on whatever set no cache policy itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def answer(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != b"x-frame-options"]
                if not any(k.lower() == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = [*headers, *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, answer)


OPT_KEY = "dashboard"


class SignInRequired(Exception):
    """No valid session: the handler's answer is a redirect to the sign-in page."""


class Signed:
    """The signed-in environment of a request, from its session cookie. The environment is looked up by id (its
    key opened from the sealed store, then found as the API finds a key) and kept a few seconds."""

    def __init__(self, sessions: Sessions, ttl_seconds: float = 5.0) -> None:
        self.sessions = sessions
        self._service: JobsService | None = None
        self._environments: TtlCache[UUID, EnvironmentInfo | None] = TtlCache(self._load, ttl_seconds)

    async def environment(self, request: AnyRequest, service: JobsService) -> EnvironmentInfo | None:
        session = self.sessions.decode(request.cookies.get(SESSION_COOKIE))
        if session is None:
            return None
        self._service = service  # the process's one JobsService, the same on every request: the cache loads with it
        env = await self._environments.get(session.environment_id)
        if env is None or self.sessions.fingerprint(hash_key(env.api_key)) != session.key_fingerprint:
            return None  # the key was rotated or revoked since: sign in again
        return env

    async def _load(self, environment_id: UUID) -> EnvironmentInfo | None:
        assert self._service is not None
        try:
            api_key = await self._service.authenticator.api_key(environment_id)
        except LookupError:  # its key was revoked
            return None
        env = await self._service.authenticator.authenticate(api_key)
        return env if env is not None and env.id == environment_id else None


def signed_of(request: AnyRequest) -> Signed:
    """The dashboard's Signed, which its router hands every handler in `opt`."""
    signed: Signed = request.route_handler.opt[OPT_KEY]
    return signed


async def dashboard_env(request: AnyRequest, service: Service) -> EnvironmentInfo:
    """The dependency of every signed-in page: the session's environment, or a redirect to `/`."""
    env = await signed_of(request).environment(request, service)
    if env is None:
        raise SignInRequired
    return env


DashboardEnv = NamedDependency[EnvironmentInfo]


def csrf_cookie(request: AnyRequest, sessions: Sessions) -> tuple[str, Cookie | None]:
    """The request's CSRF nonce, and the cookie to set when it had none."""
    nonce = request.cookies.get(CSRF_COOKIE)
    if nonce and 16 <= len(nonce) <= 64:
        return nonce, None
    nonce = sessions.new_nonce()
    return nonce, _cookie(request, CSRF_COOKIE, nonce, SESSION_SECONDS)


def session_cookie(request: AnyRequest, value: str | None) -> Cookie:
    """The session cookie holding `value`, or (None) the one that deletes it."""
    return _cookie(request, SESSION_COOKIE, value or "", SESSION_SECONDS if value else 0)


def _cookie(request: AnyRequest, name: str, value: str, max_age: int) -> Cookie:
    secure = request.url.scheme == "https"
    return Cookie(key=name, value=value, max_age=max_age, path="/", httponly=True, samesite="strict", secure=secure)


def csrf_token_of(request: AnyRequest) -> str:
    """The CSRF token of the request's nonce cookie (empty when it has none yet)."""
    nonce = request.cookies.get(CSRF_COOKIE)
    return signed_of(request).sessions.csrf_token(nonce) if nonce else ""


def render(
    request: AnyRequest,
    template: str,
    status_code: int = 200,
    cookies: list[Cookie] | None = None,
    **context: Any,
) -> Response[str]:
    """A page: the template rendered with `context`, the request's CSRF token and the signed-in `env` (or None)."""
    sessions = signed_of(request).sessions
    nonce, new_cookie = csrf_cookie(request, sessions)
    context.setdefault("env", None)
    page = TEMPLATES.get_template(template)
    html = page.render(csrf_token=sessions.csrf_token(nonce), request_path=request.url.path, **context)
    all_cookies = [*(cookies or []), *([new_cookie] if new_cookie else [])]
    return Response(html, status_code=status_code, media_type=MediaType.HTML, cookies=all_cookies)


def render_fragment(template: str, **context: Any) -> str:
    """A partial template, as text (what a live update sends)."""
    return TEMPLATES.get_template(template).render(**context)


class CsrfRefused(Exception):
    """A form post without the token of its session's nonce."""


async def posted_form(request: AnyRequest) -> dict[str, str]:
    """The fields of a form post, once its CSRF token is checked (CsrfRefused otherwise)."""
    sessions = signed_of(request).sessions
    form = await request.form()
    token = form.get(CSRF_FIELD)
    if not isinstance(token, str) or not sessions.csrf_valid(request.cookies.get(CSRF_COOKIE), token):
        raise CsrfRefused
    return {name: value for name, value in form.items() if isinstance(value, str)}


# -- error pages ----------------------------------------------------------------------------------------


def error_page(request: AnyRequest, status_code: int, title: str, message: str) -> Response[str]:
    return render(request, "error.html", status_code=status_code, title=title, message=message)


def _sign_in_required(_: AnyRequest, __: SignInRequired) -> Response[Any]:
    return Redirect("/", status_code=303)


def _csrf_refused(request: AnyRequest, _: CsrfRefused) -> Response[str]:
    message = (
        "The form was not sent from this dashboard's page (its CSRF token is missing or wrong). "
        "Reload the page and try again."
    )
    return error_page(request, 403, "Refused", message)


def _client_error(request: AnyRequest, error: ClientError) -> Response[str]:
    return error_page(request, error.status_code, _TITLES.get(error.status_code, "Refused"), error.message)


def _http_error(request: AnyRequest, error: HTTPException) -> Response[str]:
    status = error.status_code if 400 <= error.status_code < 500 else 500
    if status >= 500:
        log.exception("dashboard error", exc_info=error)
    return error_page(request, status, _TITLES.get(status, "Error"), str(error.detail))


def _invalid_transition(request: AnyRequest, error: InvalidTransition) -> Response[str]:
    return error_page(request, 409, "Not now", f"The run is {error.current}: it cannot go to {error.target}.")


def _conflict(request: AnyRequest, _: ConcurrencyConflict) -> Response[str]:
    return error_page(request, 409, "Not now", "The run was changing at that moment; try again.")


_TITLES = {400: "Invalid request", 401: "Not signed in", 403: "Refused", 404: "Not found", 409: "Not now"}

EXCEPTION_HANDLERS: dict[Any, Any] = {
    SignInRequired: _sign_in_required,
    CsrfRefused: _csrf_refused,
    ClientError: _client_error,
    HTTPException: _http_error,
    InvalidTransition: _invalid_transition,
    ConcurrencyConflict: _conflict,
}
