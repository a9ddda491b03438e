"""Calls to a user's endpoint in the trigger.dev v2 endpoint protocol (INDEX_ENDPOINT, EXECUTE_JOB), and
other outgoing POSTs (run callbacks). On aiohttp: every run costs at least one call, and its C parser and
pooled keep-alive connections cost a fraction of the CPU of a pure-Python client.

Every connection is checked against the URL policy on the addresses it is about to use: the resolver refuses a
name that resolves to a forbidden address, and the client refuses a forbidden IP-literal host (aiohttp does
not ask the resolver about those)."""

import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec
import yarl
from aiohttp.abc import AbstractResolver, ResolveResult
from opentelemetry.trace import SpanKind

from app.adapters.json_limits import JsonRefused, decode_untrusted
from app.adapters.url_policy import UrlPolicy
from app.observability import tracing
from app.observability.calls import timed_call

PROTOCOL_VERSION = "2023-11-01"
CONNECT_TIMEOUT_SECONDS = 10.0
MAX_REDIRECTS = 5
MAX_FETCHED_BYTES = 1024 * 1024  # what a fetched answer may hold: as much as a request body may
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class EndpointError(Exception):
    """The endpoint could not be reached, or answered outside the protocol."""

    def __init__(self, message: str, timed_out: bool = False, refused: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out  # connected, but no answer in time
        self.refused = refused  # refused here (the URL policy, an answer too big): trying again would not help


class AddressRefused(OSError):
    """A connection was about to reach an address the URL policy forbids."""


class GuardedResolver(AbstractResolver):
    """Resolves through the policy's resolver and refuses a name if any of its addresses is forbidden."""

    def __init__(self, policy: UrlPolicy) -> None:
        self.policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self.policy.resolve(host, port, family)
        for result in results:
            if reason := self.policy.refusal(ipaddress.ip_address(result["host"])):
                raise AddressRefused(f"{host} resolves to {reason}")
        return results

    async def close(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class EndpointResponse:
    status_code: int
    headers: Mapping[str, str]  # case-insensitive names
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    def json(self) -> Any:
        return decode_untrusted(self.content, "the answer")


class EndpointClient:
    def __init__(self, policy: UrlPolicy, timeout_seconds: float = 300.0) -> None:
        self.policy = policy
        # No total: a job may stream for long; but no read may stall, and a free connection is waited for no longer
        # than an answer would be.
        self.timeout = aiohttp.ClientTimeout(
            total=None, connect=timeout_seconds, sock_connect=CONNECT_TIMEOUT_SECONDS, sock_read=timeout_seconds
        )
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        # Made on first use: a session belongs to the event loop it is made in.
        if self._session is None:
            # No pool limit: the worker's concurrency bounds the calls in flight, and a second bound below it would
            # queue runs unseen.
            connector = aiohttp.TCPConnector(
                limit=0, limit_per_host=0, keepalive_timeout=30, resolver=GuardedResolver(self.policy)
            )
            self._session = aiohttp.ClientSession(connector=connector, timeout=self.timeout, auto_decompress=True)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(self, url: str, content: bytes, headers: Mapping[str, str]) -> EndpointResponse:
        """POST to an endpoint or a callback URL, in a client span of the current trace (its `traceparent`
        sent), timed by outcome."""
        action = headers.get("x-trigger-action") or "callback"
        with tracing.span(f"POST {action}", SpanKind.CLIENT, {"http.request.method": "POST", "jobs.action": action}):
            with timed_call() as call:
                response = await self._post(
                    url, content, {**headers, tracing.TRACEPARENT: tracing.outgoing_traceparent()}
                )
                call.answered(response.status_code)
                return response

    async def _post(self, url: str, content: bytes, headers: Mapping[str, str]) -> EndpointResponse:
        self._refuse_literal_host(url)
        try:
            async with self._http().post(url, data=content, headers=headers, allow_redirects=False) as response:
                body = await response.read()
                return EndpointResponse(response.status, response.headers, body)
        except (TimeoutError, aiohttp.ServerTimeoutError) as error:
            timed_out = not isinstance(error, aiohttp.ConnectionTimeoutError)
            raise EndpointError(f"could not reach {url}: timed out", timed_out) from error
        except aiohttp.ClientConnectorError as error:
            if isinstance(error.os_error, AddressRefused):
                raise EndpointError(f"refused to call {url}: {error.os_error}") from error
            raise EndpointError(f"could not reach {url}: {error.__class__.__name__}: {error}") from error
        except (aiohttp.ClientResponseError, aiohttp.ClientPayloadError) as error:
            # Their text quotes what the peer sent, and messages reach callers: name the fault only.
            raise EndpointError(f"could not reach {url}: its answer is not valid HTTP") from error
        except (aiohttp.ClientError, OSError, ValueError) as error:
            raise EndpointError(f"could not reach {url}: {error.__class__.__name__}: {error}") from error

    async def fetch(
        self, method: str, url: str, headers: Mapping[str, str], body: str | None, timeout_seconds: float
    ) -> EndpointResponse:
        """Any request a server-performed task asks for (io.backgroundFetch...). Redirects are followed, at most
        MAX_REDIRECTS, each hop checked against the policy as every connection is; a body over
        MAX_FETCHED_BYTES is refused. Raises EndpointError (`timed_out` when the time ran out)."""
        timeout = aiohttp.ClientTimeout(
            total=timeout_seconds, sock_connect=min(timeout_seconds, CONNECT_TIMEOUT_SECONDS)
        )
        content = body.encode() if body is not None else None
        sent = dict(headers)
        for _ in range(MAX_REDIRECTS + 1):
            self._refuse_literal_host(url)
            try:
                async with self._http().request(
                    method, url, data=content, headers=sent, allow_redirects=False, timeout=timeout
                ) as response:
                    location = response.headers.get("location")
                    if response.status in _REDIRECTS and location:
                        target = response.url.join(yarl.URL(location))
                        if target.origin() != response.url.origin():  # as fetch does: no credentials elsewhere
                            sent = {k: v for k, v in sent.items() if k.lower() not in ("authorization", "cookie")}
                        url = str(target)
                        if response.status == 303 or (response.status in (301, 302) and method == "POST"):
                            method, content = "GET", None
                        continue
                    data = bytearray()
                    async for chunk in response.content.iter_chunked(64 * 1024):
                        data += chunk
                        if len(data) > MAX_FETCHED_BYTES:
                            raise EndpointError(
                                f"the answer of {url} is larger than {MAX_FETCHED_BYTES} bytes", refused=True
                            )
                    return EndpointResponse(response.status, response.headers, bytes(data))
            except (TimeoutError, aiohttp.ServerTimeoutError) as error:
                raise EndpointError(f"could not reach {url}: timed out", timed_out=True) from error
            except aiohttp.ClientConnectorError as error:
                if isinstance(error.os_error, AddressRefused):
                    raise EndpointError(f"refused to call {url}: {error.os_error}", refused=True) from error
                raise EndpointError(f"could not reach {url}: {error.__class__.__name__}: {error}") from error
            except (aiohttp.ClientResponseError, aiohttp.ClientPayloadError) as error:
                raise EndpointError(f"could not reach {url}: its answer is not valid HTTP") from error
            except (aiohttp.ClientError, OSError, ValueError) as error:
                raise EndpointError(f"could not reach {url}: {error.__class__.__name__}: {error}") from error
        raise EndpointError(f"could not reach {url}: more than {MAX_REDIRECTS} redirects")

    def _refuse_literal_host(self, url: str) -> None:
        try:
            address = ipaddress.ip_address(yarl.URL(url).host or "")
        except ValueError:
            return  # a name (the resolver checks it) or no host (aiohttp refuses the URL)
        if reason := self.policy.refusal(address):
            raise EndpointError(f"refused to call {url}: its host is {reason}", refused=True)

    async def call(self, url: str, api_key: str, action: str, body: Any) -> EndpointResponse:
        headers = {
            "content-type": "application/json",
            "accept": "application/json",
            "x-trigger-api-key": api_key,
            "x-trigger-action": action,
            "x-trigger-version": PROTOCOL_VERSION,
        }
        return await self.post(url, msgspec.json.encode(body), headers)

    async def index(self, url: str, api_key: str) -> "EndpointIndex":
        response = await self.call(url, api_key, "INDEX_ENDPOINT", {})
        if response.status_code != 200:
            # Not the body: a caller must not read a target's content through a registration.
            raise EndpointError(f"INDEX_ENDPOINT answered HTTP {response.status_code}, not 200")
        try:
            body = response.json()
            jobs = body["jobs"]
            if not isinstance(jobs, list) or not all(isinstance(j, dict) and "id" in j for j in jobs):
                raise TypeError
        except (JsonRefused, KeyError, TypeError):
            raise EndpointError("INDEX_ENDPOINT answered without a valid `jobs` list") from None
        jobs = [_job_metadata(number, job) for number, job in enumerate(jobs, 1)]
        return EndpointIndex(jobs, _dynamic_schedule_ids(body.get("dynamicSchedules")))


@dataclass(frozen=True, slots=True)
class EndpointIndex:
    """What INDEX_ENDPOINT answered that the service keeps: the jobs' metadata and the DynamicSchedule ids."""

    jobs: list[dict[str, Any]]
    dynamic_schedules: list[str]


def _dynamic_schedule_ids(entries: Any) -> list[str]:
    if entries is None:
        return []
    if not isinstance(entries, list) or not all(isinstance(e, dict) and isinstance(e.get("id"), str) for e in entries):
        raise EndpointError("INDEX_ENDPOINT answered a `dynamicSchedules` that is not a list of {id, jobs}")
    return [entry["id"] for entry in entries]


def _job_metadata(number: int, job: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(job.get("version"), str):
        raise EndpointError(f"INDEX_ENDPOINT answered a `jobs` list whose job #{number} has no string `version`")
    return job
