"""The end-to-end benchmark harness and its report, run once, tiny (2 cases, 1 s each), so that they cannot rot.

``make bench`` runs the real thing (every case, several interleaved rounds); this only proves that the harness still
builds its Apache, that both sides of a pair really authenticate (the harness checks 200/401/401 before it
measures), that wrk's output is still understood, and that the report is written from the results.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backends._common import require_tool
from backends.pytest_plugin import require_apache
from benchmarks import e2e, report

pytestmark = pytest.mark.apache

WRK_SAMPLE = """\
Running 1s test @ http://127.0.0.1:1/n/file/ok.txt
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   637.88us  300.01us   4.55ms   80.00%
  Latency Distribution
     50%  580.00us
     75%  700.00us
     90%  1.01ms
     99%    1.50s
  12000 requests in 1.00s, 3.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:  11999.50
"""


def test_parse_wrk_reads_every_unit() -> None:
    got = e2e.parse_wrk(WRK_SAMPLE)
    assert got == {"rps": 11999.5, "p99_ms": 1500.0, "p50_ms": 0.58, "requests": 12000, "non2xx": 7,
                   "socket_errors": 3}


def test_harness_measures_native_and_wsgiauth_and_reports(tmp_path: Path) -> None:
    require_apache()
    require_tool("wrk")
    cases = [c for c in e2e.all_cases() if c.group == "file {SHA}" and c.variant in (e2e.NATIVE, e2e.CACHE_ON)]
    assert len(cases) == 2
    result = e2e.run(cases, seconds=1, rounds=1, warmup=0, log=lambda _line: None)
    assert result["errors"] == {}
    rows = {r["variant"]: r for r in result["cases"]}
    assert set(rows) == {e2e.NATIVE, e2e.CACHE_ON}
    for row in rows.values():
        assert row["rps"] > 50 and row["p99_ms"] > 0 and row["cpu_us"] > 0
        assert row["rounds"][0]["requests"] > 50
    assert rows[e2e.NATIVE]["rps_ratio"] == 1.0
    assert rows[e2e.CACHE_ON]["rps_ratio"] == pytest.approx(rows[e2e.CACHE_ON]["rps"] / rows[e2e.NATIVE]["rps"])
    assert rows[e2e.CACHE_ON]["target"] == 1.0

    (tmp_path / "e2e.json").write_text(json.dumps(result))
    report.write(tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "file {SHA}" in text and "wsgiauth cache on" in text
    assert json.loads((tmp_path / "results.json").read_text())["e2e"]["cases"]
    assert (tmp_path / "e2e.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
