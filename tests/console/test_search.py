"""The web console's search in a real browser (Debian's chromium through Playwright) against a
real collector child process holding real logs (``conftest.py``): the URL is the query, the
hits are exactly what ``wharf grep`` prints, the histogram's buckets are what ``wharf grep -c``
counts over their ranges, zooming writes the URL, facets are the CLI's counts, a record's
context, lines that look like HTML stay text, and the copied link and command run the same
query."""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.console.conftest import XSS_LINES
from tests.console.helpers import CUT_CHARS, ConsolePage, json_lines, rfc3339
from tests.harness import WHARF, CollectorProcess, clean_env

# Real traffic of the Apache log (17 May 2015, UTC): 418 requests.
WEB = [("topic", "web"), ("from", "2015-05-17T10:00:00Z"), ("to", "2015-05-17T14:00:00Z")]
# The Kafka controller's hour: trace, debug and info lines, and a few without a level.
KAFKA = [("topic", "kafka"), ("from", "2016-12-19T18:00:00Z"), ("to", "2016-12-19T19:00:00Z")]


def grep(c: CollectorProcess, *args: str) -> list[dict[str, Any]]:
    done = c.wharf("grep", *args, "-o", "json")
    assert done.returncode in (0, 1), done.stderr
    return json_lines(done.stdout)


def count(c: CollectorProcess, *args: str) -> int:
    done = c.wharf("grep", "-c", *args)
    assert done.returncode in (0, 1), done.stderr
    return int(done.stdout)


def cut(line: str) -> str:
    return line[:CUT_CHARS]


def test_a_search_url_shows_exactly_the_matching_lines(
    console: ConsolePage, collector: CollectorProcess
) -> None:
    query = [*WEB, ("q", "LogStash"), ("icase", "1"), ("where", "status=200"), ("order", "asc")]
    console.open(collector.url, query)
    console.wait_done()
    want = grep(
        collector, "-i", "LogStash", "-t", "web", "--where", "status=200",
        "--from", "2015-05-17T10:00:00Z", "--to", "2015-05-17T14:00:00Z",
    )  # fmt: skip
    assert 20 < len(want) < 418  # some of the 418 requests of those hours, not all
    assert console.lines() == [cut(h["line"]) for h in want]
    assert console.progress().startswith(f"{len(want)} hits")
    # The form shows the query the URL gave.
    page = console.page
    assert page.input_value("#q") == "LogStash"
    assert page.is_checked("#icase") and not page.is_checked("#fixed")
    assert page.input_value("#where") == "status=200"
    assert page.input_value("#from") == "2015-05-17T10:00:00Z"
    # Every match is marked, as text in a <mark>.
    marks = page.eval_on_selector_all("#hits mark", "ms => ms.map(m => m.textContent)")
    assert marks and {m.lower() for m in marks} == {"logstash"}


def test_newest_first_and_load_more_follow_the_cursor(
    console: ConsolePage, collector: CollectorProcess
) -> None:
    console.open(collector.url, [*WEB, ("limit", "100")])
    console.wait_done()
    want = grep(
        collector, "", "-t", "web", "--newest-first", "--from", WEB[1][1], "--to", WEB[2][1]
    )
    assert len(want) == 418
    assert console.lines() == [cut(h["line"]) for h in want[:100]]
    for pages in (2, 3, 4, 5):
        console.page.click("#more")
        console.wait_state("done")
        assert console.progress().startswith(f"{min(418, 100 * pages)} hits")
    assert console.page.is_hidden("#more")  # the last page had no cursor
    assert console.lines() == [cut(h["line"]) for h in want]


def test_histogram_buckets_equal_grep_counts(
    console: ConsolePage, collector: CollectorProcess
) -> None:
    console.open(collector.url, KAFKA)
    console.wait_done()
    buckets = console.histogram()
    assert len(buckets) >= 10
    assert buckets[0]["from"] == 1482170400000  # 18:00Z, the range's start
    assert buckets[-1]["to"] == 1482174000000  # 19:00Z, its end
    levels = console.page.eval_on_selector_all(
        "#histogram rect.bar", "rs => [...new Set(rs.map(r => r.dataset.level))]"
    )
    assert {"trace", "debug", "info"} <= set(levels)

    def cli(b: dict[str, int]) -> int:
        return count(
            collector, "", "-t", "kafka", "--from", rfc3339(b["from"]), "--to", rfc3339(b["to"])
        )

    with ThreadPoolExecutor(3) as pool:
        counted = list(pool.map(cli, buckets))
    assert [b["count"] for b in buckets] == counted
    assert sum(counted) == count(
        collector, "", "-t", "kafka", "--from", KAFKA[1][1], "--to", KAFKA[2][1]
    )
    # The level colours come from the CSS variables, one per level.
    fills = console.page.eval_on_selector_all(
        "#histogram rect.bar",
        "rs => Object.fromEntries(rs.map(r => [r.dataset.level, getComputedStyle(r).fill]))",
    )
    assert len(set(fills.values())) == len(fills)


def test_drag_and_click_on_the_histogram_zoom_and_write_the_url(
    console: ConsolePage, collector: CollectorProcess
) -> None:
    console.open(collector.url, KAFKA)
    console.wait_done()
    svg = console.page.locator("#histogram svg")
    box = svg.bounding_box()
    assert box is not None
    y = box["y"] + 40
    mouse = console.page.mouse
    mouse.move(box["x"] + box["width"] * 0.25, y)
    mouse.down()
    mouse.move(box["x"] + box["width"] * 0.5, y, steps=5)
    mouse.up()
    console.wait_done()
    q = console.query()
    assert "since" not in q
    lo, hi = q["from"][0], q["to"][0]
    # A quarter to a half of 18:00-19:00, give or take a pixel's worth of time.
    assert "2016-12-19T18:14:" <= lo <= "2016-12-19T18:16:"
    assert "2016-12-19T18:29:" <= hi <= "2016-12-19T18:31:"
    assert console.page.input_value("#from") == lo
    assert console.progress().startswith(
        f"{count(collector, '', '-t', 'kafka', '--from', lo, '--to', hi)} hits"
    )
    # A click zooms to the bucket under it.
    buckets = console.histogram()
    target = console.page.locator("#histogram g.bucket").nth(len(buckets) // 2)
    tb = target.bounding_box()
    assert tb is not None
    mouse.click(tb["x"] + tb["width"] / 2, y)
    console.wait_done()
    b = buckets[len(buckets) // 2]
    assert console.query()["from"] == [rfc3339(b["from"])]
    assert console.query()["to"] == [rfc3339(b["to"])]
    # Back returns to the dragged range.
    console.page.go_back()
    console.wait_done()
    assert console.query()["from"] == [lo]


def test_facets_equal_the_cli_counts(console: ConsolePage, collector: CollectorProcess) -> None:
    console.open(collector.url, WEB)
    console.wait_done()
    title = console.page.text_content(".facet-title")
    assert title == "host: 1 of 1 values"  # every line was shipped from this machine
    console.page.select_option("#facets select", "field…")
    console.page.fill("#facets input", "status")
    console.page.press("#facets input", "Enter")
    console.page.wait_for_selector(".facet-title >> text=status:")
    console.page.wait_for_function(
        "() => document.getElementById('facets').dataset.state === 'ready'"
    )
    values = console.page.eval_on_selector_all(
        ".facet-list li", "ls => ls.map(l => [l.dataset.value, Number(l.dataset.count)])"
    )
    hits = grep(collector, "", "-t", "web", "--from", WEB[1][1], "--to", WEB[2][1])
    statuses = Counter(str(h["fields"]["status"]) for h in hits)
    shown = f"status: {len(values)} of {len(statuses)} values"
    assert console.page.text_content(".facet-title") == shown
    for value, n in values:
        assert n == statuses[value]
        where = f"status={value}"
        assert n == count(
            collector, "", "-t", "web", "--where", where, "--from", WEB[1][1], "--to", WEB[2][1]
        )
    assert [v for v, _ in values] == [
        v for v, _ in sorted(statuses.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    # Excluding a value writes it into where; including another narrows to it.
    console.page.click(".facet-list li[data-value='404'] .facet-out")
    console.wait_done()
    assert console.query()["where"] == ['status!="404"']
    assert console.progress().startswith(f"{sum(statuses.values()) - statuses['404']} hits")


def test_record_detail_and_its_context(console: ConsolePage, collector: CollectorProcess) -> None:
    days = [("topic", "web"), ("from", "2015-05-17T00:00:00Z"), ("to", "2015-05-21T00:00:00Z")]
    console.open(
        collector.url, [*days, ("q", "kibana-search.png"), ("fixed", "1"), ("order", "asc")]
    )
    console.wait_done()
    console.page.click("#hits .row >> nth=2")
    detail = console.page.locator("#detail")
    hit = grep(
        collector, "-F", "kibana-search.png", "-t", "web", "--limit", "3",
        "--from", days[1][1], "--to", days[2][1],
    )[2]  # fmt: skip
    assert (
        detail.locator("h2").text_content()
        == f"web · partition {hit['partition']} · offset {hit['offset']}"
    )
    table = dict(
        console.page.eval_on_selector_all(
            "#detail table.fields tr",
            "rs => rs.map(r => [r.cells[0].textContent, r.cells[1].textContent])",
        )
    )
    assert table["status"] == str(hit["fields"]["status"])
    assert table["fields.host"] == hit["fields"]["host"]  # the client, not the record's host
    assert table["host"] == hit["host"]
    console.context.grant_permissions(["clipboard-read", "clipboard-write"])
    detail.get_by_role("button", name="Copy JSON").click()
    copied = json_lines(console.clipboard())[0]
    assert copied == hit  # the nanoseconds too
    detail.get_by_role("button", name="Context").click()
    console.page.wait_for_selector("#detail .context-list li.ctx-hit")
    shown = console.page.eval_on_selector_all(
        "#detail .context-list li",
        "ls => ls.map(l => [l.classList.contains('ctx-hit'), l.querySelector('.line').textContent])",
    )
    around = grep(collector, "-F", hit["line"], "-t", "web", "-C", "10")
    assert [line for _, line in shown] == [h["line"] for h in around]
    assert [line for marked, line in shown if marked] == [hit["line"]]
    # Include a field value from the table: it becomes a where clause.
    console.page.click("#detail tr:has(th:text-is('method')) button[title^='only']")
    console.wait_done()
    assert console.query()["where"] == ['method="GET"']
    assert console.page.is_hidden("#detail")


def test_lines_that_look_like_html_render_as_text(
    console: ConsolePage, collector: CollectorProcess
) -> None:
    console.open(collector.url, [("topic", "xss"), ("since", "7d"), ("order", "asc")])
    console.wait_done()
    assert console.lines() == XSS_LINES
    console.page.click("#hits .row >> nth=0")
    console.page.get_by_role("button", name="Context").click()
    console.page.wait_for_selector("#detail .context-list li.ctx-hit")
    console.page.select_option("#facets select", "field…")
    console.page.fill("#facets input", "user")
    console.page.press("#facets input", "Enter")
    console.page.wait_for_selector(".facet-title >> text=user:")
    assert console.page.text_content(".facet-list .name") == "<img src=x onerror=alert(2)>"
    assert "<script>alert(1)</script>" in (console.page.text_content("#detail table") or "")
    # Nothing became an element: two scripts (the page's own), no image, no svg but the
    # histogram's, no <b>.
    assert console.page.evaluate("document.scripts.length") == 2
    assert console.page.locator("img").count() == 0
    assert console.page.locator("b").count() == 0
    assert console.page.locator("svg").count() == 1
    # (The console fixture fails the test on any dialog: alert() never ran.)


def test_copy_link_and_copy_as_cli_run_the_same_query(
    console: ConsolePage, collector: CollectorProcess
) -> None:
    console.context.grant_permissions(["clipboard-read", "clipboard-write"])
    query = [*KAFKA, ("q", "replica"), ("level", "debug+"), ("order", "asc")]
    console.open(collector.url, query)
    console.wait_done()
    shown = console.lines()
    assert shown
    console.page.click("#copy-cli")
    command = console.clipboard()
    assert command.startswith("wharf grep -t kafka --level debug+ --from 2016-12-19T18:00:00Z")
    # The command as a user pastes it into a shell: `wharf` found on the PATH.
    env = clean_env(PATH=f"{Path(WHARF).parent}:{os.environ['PATH']}")
    run = subprocess.run(
        ["bash", "-c", f"{command} -o json"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert [cut(h["line"]) for h in json_lines(run.stdout)] == shown
    # A relative range becomes absolute in the link; the link runs the same query.
    console.open(collector.url, [("topic", "kafka"), ("since", "30d")])
    console.wait_state("done")
    console.page.click("#copy-link")
    link = console.clipboard()
    assert link.startswith(f"{collector.url}/?topic=kafka&from=")
    assert "since=" not in link and "&to=" in link
    console.page.goto(link)
    console.wait_done()
    assert console.page.input_value("#range") == "custom"


def test_level_chips_and_the_keyboard(console: ConsolePage, collector: CollectorProcess) -> None:
    page = console.page
    console.open(collector.url, [*KAFKA, ("order", "asc")])
    console.wait_done()
    page.click("#levels button:text-is('debug+')")
    console.wait_done()
    assert console.query()["level"] == ["debug+"]
    debug_up = count(
        collector,
        "",
        "-t",
        "kafka",
        "--level",
        "debug+",
        "--from",
        KAFKA[1][1],
        "--to",
        KAFKA[2][1],
    )
    assert console.progress().startswith(f"{debug_up} hits")
    levels = page.eval_on_selector_all(
        "#hits .row .lvl", "ls => [...new Set(ls.map(l => l.textContent))]"
    )
    assert set(levels) <= {"debug", "info", "warn", "error", "fatal"}
    # "/" focuses the pattern, Esc clears it.
    page.focus("#hits")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.type("zzz")
    page.keyboard.press("Escape")
    assert page.input_value("#q") == ""
    # j/k move the selection (from the first row in view), Enter expands the selected row,
    # o opens its detail, Esc closes it.
    page.focus("#hits")
    first = int(str(page.get_attribute("#hits .row >> nth=0", "data-seq")))
    for key in "jjjk":
        page.keyboard.press(key)
    page.wait_for_selector(f"#hits .row.sel[data-seq='{first + 1}']")
    assert page.locator("#hits .row.sel").count() == 1
    long_row = page.locator("#hits .row:has(button.more)").first
    long_row.click()
    page.keyboard.press("Escape")
    page.keyboard.press("Enter")
    page.wait_for_selector("#hits .row.sel.expanded")
    expanded = page.locator("#hits .row.expanded")
    assert (expanded.bounding_box() or {"height": 0})["height"] > 40
    page.keyboard.press("o")
    assert page.is_visible("#detail")
    page.keyboard.press("Escape")
    assert page.is_hidden("#detail")


BIG = 100_000


@pytest.fixture(scope="module")
def big(collector: CollectorProcess) -> list[str]:
    """Topic ``big``: 100,000 short lines, shipped once."""
    lines = [f"big line {i:06d} " + "x" * (i % 50) for i in range(BIG)]
    collector.ship("big", "raw", "-", stdin="".join(f"{line}\n" for line in lines))
    return lines


def test_a_new_query_cancels_the_old_request(
    console: ConsolePage, collector: CollectorProcess, big: list[str]
) -> None:
    page = console.page
    aborted: list[str] = []
    page.on(
        "requestfailed",
        lambda r: (
            aborted.append(r.url) if "/v1/search" in r.url and "limit=100000" in r.url else None
        ),
    )
    # A slow network (200 kB/s): the 100,000 hits (15 MB) are still streaming when the user
    # asks something else, however fast the machine.
    cdp = console.context.new_cdp_session(page)
    cdp.send("Network.enable")
    slow = {"offline": False, "latency": 0, "uploadThroughput": -1}
    cdp.send("Network.emulateNetworkConditions", {**slow, "downloadThroughput": 200_000})
    console.open(collector.url, [("topic", "big"), ("since", "1h"), ("limit", str(BIG))])
    page.wait_for_selector("#hits .row")
    assert console.state() == "searching"
    page.fill("#q", "big line 012345 ")
    page.check("#fixed")  # a toggle runs the query at once
    cdp.send("Network.emulateNetworkConditions", {**slow, "downloadThroughput": -1})
    console.wait_done()
    assert console.lines() == [big[12345]]
    assert console.query()["q"] == ["big line 012345 "]
    for _ in range(100):  # the browser reports the abort as the request's failure
        if aborted:
            break
        page.wait_for_timeout(50)
    assert aborted, "the first search was not cancelled"


def test_a_hundred_thousand_hits_keep_the_dom_bounded(
    console: ConsolePage, collector: CollectorProcess, big: list[str]
) -> None:
    n = BIG
    lines = big
    console.open(
        collector.url, [("topic", "big"), ("since", "1h"), ("limit", str(n)), ("order", "asc")]
    )
    samples = []
    for _ in range(200):  # while the hits stream in
        samples.append(console.dom_rows())
        if console.state() == "done":
            break
        console.page.wait_for_timeout(50)
    console.wait_done()
    assert console.progress().startswith(f"{n:,} hits")
    rows = console.rows(max_screens=20)  # the first 20 screens, then straight to the end
    assert rows["lines"][:10] == lines[:10]
    console.page.evaluate(
        "() => { const v = document.getElementById('hits'); v.scrollTop = v.scrollHeight; }"
    )
    console.page.wait_for_function(
        "(t) => [...document.querySelectorAll('#hits .row .line')].some(l => l.textContent === t)",
        arg=lines[-1],
    )
    bound = 150  # two overscans of 20 and a 900 px screen of 20 px rows, with room to spare
    assert max([*samples, rows["most"], console.dom_rows()]) <= bound
    assert console.page.evaluate("document.querySelectorAll('#hits *').length") < bound * 10


def test_screenshots_light_and_dark(console: ConsolePage, collector: CollectorProcess) -> None:
    page = console.page
    console.open(collector.url, [*KAFKA, ("q", "controller"), ("icase", "1")])
    console.wait_done()
    page.click("#hits .row >> nth=3")
    bg = "getComputedStyle(document.body).backgroundColor"
    assert page.evaluate(bg) == "rgb(255, 255, 255)"
    console.screenshot("search-light")
    # Dark follows the system...
    page.emulate_media(color_scheme="dark")
    assert page.evaluate(bg) == "rgb(13, 17, 23)"
    console.screenshot("search-dark")
    # ... unless the toggle says otherwise, and the choice outlives a reload.
    page.click("#theme")
    assert page.text_content("#theme") == "Theme: light"
    assert page.evaluate(bg) == "rgb(255, 255, 255)"
    page.reload()
    console.wait_done()
    assert page.text_content("#theme") == "Theme: light"
    assert page.evaluate(bg) == "rgb(255, 255, 255)"
    page.click("#theme")
    page.emulate_media(color_scheme="light")
    assert page.evaluate(bg) == "rgb(13, 17, 23)"  # the toggle's dark beats the light system
    page.click("#theme")
    assert page.text_content("#theme") == "Theme: system"
    assert page.evaluate(bg) == "rgb(255, 255, 255)"
