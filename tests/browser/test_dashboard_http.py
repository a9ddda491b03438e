"""The dashboard over plain HTTP on the real stack: security headers, cookie flags, CSRF, sign-in, 404s and
4xx pages on bad input."""

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from app.dashboard.session import CSRF_COOKIE, SESSION_COOKIE
from tests.helpers import wait_for

pytestmark = pytest.mark.compat


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


async def signed_in(client: httpx.AsyncClient, api_key: str) -> str:
    """Sign `client` in (again, when it was); the CSRF token of its session's forms."""
    page = await client.get("/", follow_redirects=True)
    answer = await client.post("/sign-in", data={"api_key": api_key, "csrf_token": csrf_of(page)})
    assert answer.status_code == 303 and answer.headers["location"] == "/jobs", answer.text
    return csrf_of(await client.get("/jobs"))


@pytest.fixture
async def browser_client(api: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=str(api.base_url), timeout=30) as client:
        yield client


async def test_pages_carry_the_security_headers(browser_client: httpx.AsyncClient) -> None:
    page = await browser_client.get("/")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    for directive in (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ):
        assert directive in csp
    assert "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "same-origin"
    assert page.headers["cross-origin-opener-policy"] == "same-origin"
    assert "camera=()" in page.headers["permissions-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert "<script>" not in page.text and " on" not in re.sub(r"<[^>]*>", "", page.text)[:0]
    static = await browser_client.get("/static/dashboard.js")
    assert static.status_code == 200 and "max-age" in static.headers["cache-control"]
    assert static.headers["x-content-type-options"] == "nosniff"
    missing = await browser_client.get("/static/nothing.js")
    assert missing.status_code == 404 and missing.headers["content-security-policy"] == csp


async def test_sign_in_sets_a_signed_strict_httponly_cookie(browser_client: httpx.AsyncClient, environment) -> None:
    page = await browser_client.get("/")
    nonce_cookie = page.headers["set-cookie"].lower()
    assert "httponly" in nonce_cookie and "samesite=strict" in nonce_cookie
    answer = await browser_client.post("/sign-in", data={"api_key": environment.api_key, "csrf_token": csrf_of(page)})
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    flags = [flag.strip().lower() for flag in cookie.split(";")[1:]]
    assert "httponly" in flags and "samesite=strict" in flags and "path=/" in flags and "secure" not in flags
    assert environment.api_key not in cookie
    jobs = await browser_client.get("/jobs")
    assert jobs.status_code == 200 and "hello-world" in jobs.text
    assert environment.slug in jobs.text


async def test_a_wrong_key_is_refused_and_nothing_stored(browser_client: httpx.AsyncClient) -> None:
    page = await browser_client.get("/")
    answer = await browser_client.post("/sign-in", data={"api_key": "tr_dev_wrong", "csrf_token": csrf_of(page)})
    assert answer.status_code == 401
    assert "not valid" in answer.text
    assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")
    assert (await browser_client.get("/jobs")).status_code == 303


async def test_a_post_without_its_csrf_token_is_refused(browser_client: httpx.AsyncClient, environment) -> None:
    await browser_client.get("/")
    answer = await browser_client.post("/sign-in", data={"api_key": environment.api_key})
    assert answer.status_code == 403 and "CSRF" in answer.text
    answer = await browser_client.post("/sign-in", data={"api_key": environment.api_key, "csrf_token": "forged"})
    assert answer.status_code == 403
    token = await signed_in(browser_client, environment.api_key)
    assert (await browser_client.post("/jobs/hello-world/test", data={"payload": "{}"})).status_code == 403
    # A token is bound to its nonce cookie: another browser's token is refused.
    async with httpx.AsyncClient(base_url=str(browser_client.base_url)) as other:
        other.cookies.set(SESSION_COOKIE, browser_client.cookies[SESSION_COOKIE])
        other.cookies.set(CSRF_COOKIE, "x" * 32)
        forged = await other.post("/jobs/hello-world/test", data={"payload": "{}", "csrf_token": token})
        assert forged.status_code == 403


async def test_signed_out_pages_redirect_to_sign_in(browser_client: httpx.AsyncClient, environment) -> None:
    for path in ("/jobs", "/jobs/hello-world", "/jobs/hello-world/test"):
        answer = await browser_client.get(path)
        assert answer.status_code == 303 and answer.headers["location"] == "/"
    browser_client.cookies.set(SESSION_COOKIE, "forged.signature")
    assert (await browser_client.get("/jobs")).status_code == 303
    token = await signed_in(browser_client, environment.api_key)
    out = await browser_client.post("/sign-out", data={"csrf_token": token})
    assert out.status_code == 303
    assert (await browser_client.get("/jobs")).status_code == 303


async def test_bad_input_gives_4xx_pages(browser_client: httpx.AsyncClient, environment) -> None:
    token = await signed_in(browser_client, environment.api_key)
    missing = await browser_client.get("/jobs/no-such-job")
    assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]
    assert "no-such-job" in missing.text and missing.headers["content-security-policy"]
    bad = await browser_client.post("/jobs/hello-world/test", data={"payload": "{nope", "csrf_token": token})
    assert bad.status_code == 400 and "not valid JSON" in bad.text and "{nope" in bad.text
    deep = await browser_client.post(
        "/jobs/hello-world/test", data={"payload": "[" * 40 + "]" * 40, "csrf_token": token}
    )
    assert deep.status_code == 400
    unknown = await browser_client.post("/jobs/no-such-job/test", data={"payload": "{}", "csrf_token": token})
    assert unknown.status_code == 404


async def test_another_environments_run_and_a_malformed_id_are_404_pages(
    browser_client: httpx.AsyncClient, api: httpx.AsyncClient, environment, container
) -> None:
    from domain.environments import EnvironmentType

    run_id = (await api.post("/api/v1/jobs/hello-world/test", json={"payload": {}})).json()["runId"]
    _, other_key = await container.service.environments.create("other", EnvironmentType.PRODUCTION)
    token = await signed_in(browser_client, other_key)
    for path in (f"/runs/{run_id}", f"/runs/{run_id}/fragment", "/runs/not-a-uuid", "/runs/%3Cscript%3E"):
        page = await browser_client.get(path)
        assert page.status_code == 404, path
        assert "text/html" in page.headers["content-type"] and "Not found" in page.text
        assert "<script>" not in page.text
    for action in ("cancel", "rerun", "continue"):
        refused = await browser_client.post(f"/runs/{run_id}/{action}", data={"csrf_token": token})
        assert refused.status_code == 404, action
    # Its own environment sees it, and its live region alone (what a live update swaps in).
    token = await signed_in(browser_client, environment.api_key)
    assert (await browser_client.get(f"/runs/{run_id}")).status_code == 200
    fragment = await browser_client.get(f"/runs/{run_id}/fragment")
    assert fragment.status_code == 200 and fragment.text.startswith('<section id="run-live"')
    assert "<html" not in fragment.text and f'value="{token}"' in fragment.text


async def test_cookies_are_secure_behind_https(browser_client: httpx.AsyncClient, environment) -> None:
    """Behind a TLS proxy (a trusted X-Forwarded-Proto: https, as uvicorn reads it) both cookies are Secure."""
    https = {"x-forwarded-proto": "https"}
    page = await browser_client.get("/", headers=https)
    nonce, *flags = page.headers["set-cookie"].split(";")
    assert "secure" in [flag.strip().lower() for flag in flags]
    browser_client.cookies.clear()  # the client keeps a Secure cookie from plain http: send it by hand
    answer = await browser_client.post(
        "/sign-in",
        data={"api_key": environment.api_key, "csrf_token": csrf_of(page)},
        headers={**https, "cookie": nonce},
    )
    assert answer.status_code == 303
    assert "secure" in [flag.strip().lower() for flag in answer.headers["set-cookie"].split(";")]


async def test_oversized_and_unstorable_payloads_are_4xx_pages(browser_client: httpx.AsyncClient, environment) -> None:
    token = await signed_in(browser_client, environment.api_key)
    nul = await browser_client.post("/jobs/hello-world/test", data={"payload": '{"a": "\\u0000"}', "csrf_token": token})
    assert nul.status_code == 400 and "NUL" in nul.text
    huge = await browser_client.post(
        "/jobs/hello-world/test", data={"payload": '"' + "x" * 2_000_000 + '"', "csrf_token": token}
    )
    assert 400 <= huge.status_code < 500 and "text/html" in huge.headers["content-type"]
    assert huge.headers["content-security-policy"]


async def test_rotating_the_key_ends_its_sessions(browser_client: httpx.AsyncClient, environment, container) -> None:
    await signed_in(browser_client, environment.api_key)
    assert (await browser_client.get("/jobs")).status_code == 200
    await container.service.environments.rotate_key(environment.slug)

    async def signed_out() -> bool:
        return (await browser_client.get("/jobs")).status_code == 303

    await wait_for(signed_out, timeout=30, interval=0.5)  # the environment is cached for 5 s
