"""Signing in and out, the jobs of the environment, and a job's tabs (Runs, Test, Versions)."""

import json
from typing import Any

from litestar import Response, get, post
from litestar.params import FromPath
from litestar.response import Redirect

from app.adapters.json_limits import JsonRefused, decode_untrusted
from app.adapters.reads import RunFilter
from app.api.common import AnyRequest, Service
from app.dashboard import queries
from app.dashboard.session import SESSION_COOKIE
from app.dashboard.web import DashboardEnv, posted_form, render, session_cookie, signed_of
from app.service.environments import EnvironmentInfo, hash_key
from app.service.runs import RunOptions

JOB_RUNS_SHOWN = 50
MAX_API_KEY = 200


@get("/", include_in_schema=False)
async def sign_in_page(request: AnyRequest, service: Service) -> Response[Any]:
    if await signed_of(request).environment(request, service) is not None:
        return Redirect("/overview", status_code=303)
    return render(request, "sign_in.html")


@post("/sign-in", include_in_schema=False, status_code=303)
async def sign_in(request: AnyRequest, service: Service) -> Response[Any]:
    form = await posted_form(request)
    api_key = form.get("api_key", "").strip()
    env = await service.authenticator.authenticate(api_key) if 0 < len(api_key) <= MAX_API_KEY else None
    if env is None:
        message = "That API key is not valid: no environment has it." if api_key else "Enter an API key."
        return render(request, "sign_in.html", status_code=401, error=message)
    cookie = session_cookie(request, signed_of(request).sessions.encode(env.id, hash_key(api_key)))
    return Redirect("/jobs", status_code=303, cookies=[cookie])


@post("/sign-out", include_in_schema=False, status_code=303)
async def sign_out(request: AnyRequest) -> Response[Any]:
    await posted_form(request)
    response: Response[Any] = Redirect("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@get("/jobs", include_in_schema=False)
async def jobs_page(request: AnyRequest, service: Service, env: DashboardEnv) -> Response[str]:
    jobs = await service.catalog.jobs(env)
    latest = {row.job_slug: row.metadata for row in await service.reads.latest_versions(env.id)}
    figures = await queries.runs_by_job(service.reads, env.id)
    rows = [
        {"job": job, "trigger": queries.trigger_of(latest.get(job.slug)), "runs": figures.get(job.slug)} for job in jobs
    ]
    return render(request, "jobs.html", env=env, rows=rows)


async def _job(service: Service, env: EnvironmentInfo, slug: str) -> dict[str, Any]:
    job, versions = await service.catalog.job(env, slug)
    latest = next((v for v in versions if v.version == job.latest_version), versions[0] if versions else None)
    metadata = latest.metadata if latest is not None else None
    return {"job": job, "versions": versions, "metadata": metadata, "trigger": queries.trigger_of(metadata)}


@get("/jobs/{slug:str}", include_in_schema=False)
async def job_runs_tab(request: AnyRequest, service: Service, env: DashboardEnv, slug: FromPath[str]) -> Response[str]:
    context = await _job(service, env, slug)
    runs, _ = await service.runs.page(env, RunFilter(job=slug), JOB_RUNS_SHOWN, None)
    return render(request, "job.html", env=env, tab="runs", runs=runs, **context)


@get("/jobs/{slug:str}/versions", include_in_schema=False)
async def job_versions_tab(
    request: AnyRequest, service: Service, env: DashboardEnv, slug: FromPath[str]
) -> Response[str]:
    context = await _job(service, env, slug)
    versions = [(row, queries.trigger_of(row.metadata)) for row in context["versions"]]
    return render(request, "job.html", env=env, tab="versions", version_rows=versions, **context)


@get("/jobs/{slug:str}/test", include_in_schema=False)
async def job_test_tab(request: AnyRequest, service: Service, env: DashboardEnv, slug: FromPath[str]) -> Response[str]:
    context = await _job(service, env, slug)
    examples = queries.examples_of(context["metadata"])
    payload = json.dumps(examples[0]["payload"], indent=2, ensure_ascii=False) if examples else "{}"
    return render(request, "job.html", env=env, tab="test", examples=examples, payload=payload, error=None, **context)


@post("/jobs/{slug:str}/test", include_in_schema=False, status_code=303)
async def run_test(request: AnyRequest, service: Service, env: DashboardEnv, slug: FromPath[str]) -> Response[Any]:
    """TestJob, as `POST /api/v1/jobs/{slug}/test` does it; invalid JSON is shown again with its error."""
    form = await posted_form(request)
    text = form.get("payload", "")
    try:
        payload = decode_untrusted(text.encode(), "the payload") if text.strip() else {}
    except JsonRefused as error:
        context = await _job(service, env, slug)
        examples = queries.examples_of(context["metadata"])
        return render(
            request, "job.html", 400, env=env, tab="test", examples=examples, payload=text, error=str(error), **context
        )
    created = await service.runs.test(env, slug, payload, None, RunOptions())
    return Redirect(f"/runs/{created.run_id}", status_code=303)


HANDLERS = [sign_in_page, sign_in, sign_out, jobs_page, job_runs_tab, job_versions_tab, job_test_tab, run_test]
