"""`bench --profile DIR`: py-spy samples each role process during the throughput phase.

Per role it writes `<role>.txt` (py-spy's collapsed stacks, one `frame;frame;... count` line per distinct stack),
`<role>.speedscope.json` (open it at https://www.speedscope.app) and, for all roles, `summary.txt`: each role's
CPU time in the phase, and the functions most often running Python code (self: the innermost frame; total:
anywhere in the stack), by share of those samples. py-spy cannot tell uvloop waiting for I/O from uvloop working
(both show as the bare event loop, `Runner.run`), so those samples are counted apart, not in the shares.
py-spy runs beside the roles (non-blocking: it does not pause them), so its own CPU is not counted as theirs.
"""

import contextlib
import json
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from app.tools.bench.stack import ROLES, BenchStack

SAMPLES_PER_SECOND = 200
TOP = 20
_EVENT_LOOP = "Runner.run "


@contextlib.contextmanager
def profiling(stack: BenchStack, out_dir: Path | None) -> Iterator[None]:
    """Sample every role while the block runs (nothing when `out_dir` is None); then write the profiles."""
    if out_dir is None:
        yield
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    py_spy = Path(sys.executable).parent / "py-spy"
    samplers: dict[str, subprocess.Popen[bytes]] = {}
    began = {role: _cpu_seconds(stack.processes[role].pid) for role in ROLES}
    for role in ROLES:
        command = [str(py_spy), "record", "--pid", str(stack.processes[role].pid), "--format", "raw"]
        command += ["--rate", str(SAMPLES_PER_SECOND), "--nonblocking", "--output", str(out_dir / f"{role}.txt")]
        log = (out_dir / f"{role}.py-spy.log").open("wb")
        samplers[role] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
    try:
        yield
    finally:
        spent = {role: _cpu_seconds(stack.processes[role].pid) - began[role] for role in ROLES}
        for sampler in samplers.values():
            sampler.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        for role, sampler in samplers.items():
            try:
                sampler.wait(30)
            except subprocess.TimeoutExpired:
                sampler.kill()
                sampler.wait()
                print(f"# profile: py-spy on {role} did not finish writing")
    summaries = []
    for role in ROLES:
        collapsed = out_dir / f"{role}.txt"
        if not collapsed.exists():
            summaries.append(f"== {role}: no profile (see {role}.py-spy.log)")
            continue
        profile = Profile.parse(collapsed.read_text())
        (out_dir / f"{role}.speedscope.json").write_text(json.dumps(profile.speedscope(role)))
        summaries.append(profile.summary(role, spent[role]))
    (out_dir / "summary.txt").write_text("\n\n".join(summaries) + "\n")
    print(f"# profiles of {', '.join(ROLES)} in {out_dir} (summary.txt)")


@dataclass
class Profile:
    """Collapsed stacks: each stack (outermost frame first) and how many samples found it."""

    stacks: list[tuple[list[str], int]] = field(default_factory=list)

    @classmethod
    def parse(cls, collapsed: str) -> "Profile":
        profile = cls()
        for line in collapsed.splitlines():
            stack, _, count = line.rpartition(" ")
            if stack and count.isdigit():
                profile.stacks.append((stack.split(";"), int(count)))
        return profile

    @property
    def samples(self) -> int:
        return sum(count for _, count in self.stacks)

    def self_and_total(self) -> tuple[Counter[str], Counter[str], int]:
        """Samples per function (its line numbers merged) with it innermost, and with it anywhere, over the
        samples in Python code; and how many samples found the bare event loop."""
        own: Counter[str] = Counter()
        total: Counter[str] = Counter()
        in_loop = 0
        for frames, count in self.stacks:
            functions = [_function(frame) for frame in frames]
            if functions[-1].startswith(_EVENT_LOOP):
                in_loop += count
                continue
            own[functions[-1]] += count
            for function in set(functions):
                total[function] += count
        return own, total, in_loop

    def summary(self, role: str, cpu_seconds: float) -> str:
        own, total, in_loop = self.self_and_total()
        busy = self.samples - in_loop
        # the entry point and the event loop, under (nearly) every stack: no news
        shared = {function for function, n in total.items() if n >= 0.8 * busy and own[function] < 0.01 * busy}
        lines = [
            f"== {role}: {cpu_seconds:.2f} s of CPU; {busy} samples in Python code, {in_loop} in the bare event loop "
            f"(waiting, or uvloop's own work), at {SAMPLES_PER_SECOND}/s"
        ]
        for title, counts in (("self", own), ("total", total)):
            lines.append(f"-- top {TOP} by {title} time, % of the samples in Python code")
            top = [(function, n) for function, n in counts.most_common() if function not in shared][:TOP]
            lines.extend(f"{100 * n / max(busy, 1):5.1f}%  {function}" for function, n in top)
        return "\n".join(lines)

    def speedscope(self, name: str) -> dict[str, object]:
        """The profile in speedscope's file format (a sampled profile, weights in samples)."""
        index: dict[str, int] = {}
        samples = []
        for frames, _ in self.stacks:
            samples.append([index.setdefault(frame, len(index)) for frame in frames])
        weights = [count for _, count in self.stacks]
        return {
            "$schema": "https://www.speedscope.app/file-format-schema.json",
            "shared": {"frames": [{"name": frame} for frame in index]},
            "profiles": [
                {
                    "type": "sampled",
                    "name": name,
                    "unit": "none",
                    "startValue": 0,
                    "endValue": sum(weights),
                    "samples": samples,
                    "weights": weights,
                }
            ],
            "name": name,
            "activeProfileIndex": 0,
            "exporter": "jobs-service bench --profile",
        }


def _cpu_seconds(pid: int) -> float:
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


def _function(frame: str) -> str:
    """`name (/…/site-packages/pkg/module.py:123)` → `name (pkg/module.py)`: a function's lines count as one."""
    head, _, tail = frame.rpartition(":")
    if head and tail.rstrip(")").isdigit():
        frame = f"{head})"
    name, _, path = frame.partition(" (")
    for root in ("site-packages/", f"{Path.cwd()}/", "lib/python3."):
        if root in path:
            path = path.split(root, 1)[1]
            if root == "lib/python3.":
                path = "python/" + path.split("/", 1)[-1]
    return f"{name} ({path}" if path else name
