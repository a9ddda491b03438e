"""Schemathesis against the service's own OpenAPI document: no input makes a 5xx or breaks the schema. The
classes it does not generate (deep nesting, bad encodings, NUL bytes in paths, calendar edges) come from
tests/hostile.py, from the same document."""

import os
import subprocess
import sys
from pathlib import Path

from app.service.environments import EnvironmentInfo
from app.settings import Settings
from tests.faults.harness import cluster

MAX_EXAMPLES = "25"


def test_the_api_survives_schemathesis(settings: Settings, logs: Path, environment: EnvironmentInfo) -> None:
    with cluster(settings, logs) as roles:
        roles.start("api")
        base = f"http://127.0.0.1:{settings.port}"
        fuzz = subprocess.run(
            [
                str(Path(sys.executable).parent / "schemathesis"),
                "run",
                f"{base}/schema/openapi.json",
                "--checks",
                "not_a_server_error,response_schema_conformance,content_type_conformance",
                "--max-examples",
                MAX_EXAMPLES,
                "--mode",
                "all",  # negative cases too: wrong types, missing fields, values out of range
                "--generation-allow-x00",
                "true",
                "--generation-codec",
                "utf-8",
                "--seed",
                "20261127",
                "--request-timeout",
                "20",
                "--header",
                f"Authorization: Bearer {environment.api_key}",
                "--suppress-health-check",
                "all",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "NO_COLOR": "1"},
            check=False,
        )
    summary = fuzz.stdout[-4000:]
    print("\n" + summary)
    assert fuzz.returncode == 0, summary + fuzz.stderr[-2000:]
