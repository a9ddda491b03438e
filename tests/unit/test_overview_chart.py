"""The Overview's SVG chart, built from counts (no I/O): bars to scale, stacked by status, labels escaped,
nothing inline that a strict CSP would refuse."""

from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

from app.dashboard.chart import HEIGHT, Series, nice_ceiling, runs_chart

NOW = datetime(2026, 11, 28, 12, 30, 40, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"


def minute(ago: int) -> datetime:
    return NOW.replace(second=0, microsecond=0) - timedelta(minutes=ago)


def bars(svg: str) -> list[ElementTree.Element]:
    return [e for e in ElementTree.fromstring(svg).iter(f"{SVG}rect") if "chart-bar" in e.get("class", "")]


def test_bars_are_stacked_by_status_and_drawn_to_scale() -> None:
    series = Series(NOW, {minute(0): {"SUCCESS": 8, "FAILURE": 2}, minute(30): {"SUCCESS": 5}, minute(90): {"X": 1}})
    svg = str(runs_chart(series))
    drawn = bars(svg)
    assert [e.get("class") for e in drawn] == [
        "chart-bar chart-success",
        "chart-bar chart-success",
        "chart-bar chart-failure",
    ]
    heights = [float(e.get("height", "0")) for e in drawn]
    assert heights[1] == 4 * heights[2]  # 8 against 2 in the same minute
    assert abs(heights[0] - 5 / 8 * heights[1]) < 0.11
    assert float(drawn[2].get("y", "0")) + heights[2] == float(drawn[1].get("y", "0"))  # failures sit on successes
    # The last minute is the rightmost bar, the one 30 minutes before in the middle; 90 minutes ago is not shown.
    xs = [float(e.get("x", "0")) for e in drawn]
    assert xs[1] > xs[0] > 300
    assert series.totals() == {"SUCCESS": 13, "FAILURE": 2}
    assert "10 runs" not in svg and "15 runs" in svg  # the title counts the hour's runs
    assert f"{NOW:%H:%M}" in svg


def test_an_empty_hour_draws_axes_and_no_bar() -> None:
    svg = str(runs_chart(Series(NOW, {})))
    assert bars(svg) == []
    assert "0 runs" in svg
    ElementTree.fromstring(svg)


def test_no_inline_style_or_script_and_labels_escaped() -> None:
    hostile = '<script>alert(1)</script>" onload="x'
    svg = str(runs_chart(Series(NOW, {minute(1): {hostile: 3}})))
    assert "<script" not in svg and "style=" not in svg
    tree = ElementTree.fromstring(svg)  # still well-formed: the status became text
    assert not [name for e in tree.iter() for name in e.attrib if name.lower().startswith("on")]
    assert [e.get("class") for e in bars(svg)] == ["chart-bar chart-other"]
    titles = [e.text or "" for e in tree.iter(f"{SVG}title")]
    assert any(hostile in title for title in titles)
    assert tree.get("viewBox") == f"0 0 720 {HEIGHT}"


def test_axis_tops_are_round() -> None:
    assert [nice_ceiling(n) for n in (0, 1, 3, 7, 10, 11, 260, 1001)] == [1, 1, 5, 10, 10, 20, 500, 2000]
