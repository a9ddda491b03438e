"""The summary `bench --profile` writes from py-spy's collapsed stacks."""

from app.tools.bench.profile import Profile

LOOP = "<module> (/x/app/cli.py:1);Runner.run (/usr/lib/python3.11/asyncio/runners.py:118)"
COLLAPSED = "\n".join(
    [
        f"{LOOP} 50",
        f"{LOOP};handle (/v/site-packages/pkg/a.py:10);encode (/v/site-packages/pkg/b.py:3) 30",
        f"{LOOP};handle (/v/site-packages/pkg/a.py:12) 10",
        "not a stack line",
    ]
)


def test_self_and_total_merge_lines_and_leave_the_bare_loop_apart() -> None:
    profile = Profile.parse(COLLAPSED)
    assert profile.samples == 90
    own, total, in_loop = profile.self_and_total()
    assert in_loop == 50
    assert own == {"encode (pkg/b.py)": 30, "handle (pkg/a.py)": 10}
    assert total["handle (pkg/a.py)"] == 40
    assert total["encode (pkg/b.py)"] == 30


def test_summary_ranks_functions_by_share_of_python_samples() -> None:
    summary = Profile.parse(COLLAPSED).summary("worker", 1.5)
    assert summary.splitlines()[0].startswith("== worker: 1.50 s of CPU; 40 samples in Python code, 50 in the bare")
    assert " 75.0%  encode (pkg/b.py)" in summary
    assert "100.0%  handle (pkg/a.py)" in summary
    assert "<module>" not in summary  # under every stack: left out


def test_speedscope_keeps_every_stack_with_its_weight() -> None:
    document = Profile.parse(COLLAPSED).speedscope("worker")
    frames = [frame["name"] for frame in document["shared"]["frames"]]  # type: ignore[index]
    (profile,) = document["profiles"]  # type: ignore[misc]
    assert profile["weights"] == [50, 30, 10]
    assert [[frames[i] for i in stack][-1] for stack in profile["samples"]] == [
        "Runner.run (/usr/lib/python3.11/asyncio/runners.py:118)",
        "encode (/v/site-packages/pkg/b.py:3)",
        "handle (/v/site-packages/pkg/a.py:12)",
    ]
