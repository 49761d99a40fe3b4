"""Write the benchmark report: ``report.md``, ``results.json`` and ``e2e.png`` in ``benchmarks/results/``.

``make bench`` runs this last::

    .venv/bin/python -m benchmarks.report [RESULTS_DIR]

Inputs, each optional (a missing one is said so in the report), all in the results directory:

* ``e2e.json``: :mod:`benchmarks.e2e` (the headline: wsgiauth against Apache's native providers);
* ``memory.json``: :mod:`benchmarks.memory` (RSS an Apache child gains from an auth script);
* ``micro.json``: pytest-benchmark's JSON of ``benchmarks/bench_*.py`` (compacted in place: the raw per-round
  timings are dropped, the statistics kept);
* ``peers.json``: :mod:`benchmarks.bench_peers` run as a program (passlib 1.7.4 beside bcrypt 5, and the like).

``results.json`` gathers all of them; ``report.md`` is the Markdown tables; ``e2e.png`` a bar chart of the end to end
ratios (requests/second of each variant over its native provider, targets marked).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def compact_micro(path: Path) -> Any:
    """Load pytest-benchmark's JSON and drop the raw per-round timings (``stats.data``, tens of MB), in place.

    Returns:
        The compacted data, or ``None`` when the file is missing or unreadable.
    """
    data = _load(path)
    if not isinstance(data, dict):
        return None
    changed = False
    for bench in data.get("benchmarks", []):
        if "data" in bench.get("stats", {}):
            del bench["stats"]["data"]
            changed = True
    if changed:
        path.write_text(json.dumps(data, indent=1) + "\n")
    return data


def _f(value: float | None, fmt: str = "{:.2f}") -> str:
    return "—" if value is None else fmt.format(value)


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


# ------------------------------------------------------------------------------------------------ end to end


def _ceiling(cases: list[dict[str, Any]]) -> dict[str, Any] | None:
    for row in cases:
        if row["group"].startswith("ceiling") and row["variant"] == "Python returns True":
            return row
    return None


def _miss_reason(row: dict[str, Any], cases: list[dict[str, Any]]) -> str:
    """Why a target was missed, as far as the numbers of the same run tell (docs/benchmarks.md has the profile)."""
    native = next((r for r in cases if r["group"] == row["group"] and r["variant"] == "native"), None)
    ceiling = _ceiling(cases)
    parts = []
    cpu_ratio = row.get("cpu_ratio")
    if native is not None and row.get("cpu_us") and native.get("cpu_us"):
        parts.append(f"Apache CPU per request {row['cpu_us']:.0f} µs vs native {native['cpu_us']:.0f} µs")
        if cpu_ratio is not None and cpu_ratio >= row["target"]:
            parts.append("the CPU per request meets the target, so the req/s shortfall comes from how the "
                         "requests were scheduled on the busy machine (see the per-round ratios), not from more work")
    if ceiling is not None and ceiling.get("cpu_us") and native is not None and native.get("cpu_us"):
        floor = ceiling["cpu_us"]
        if native["cpu_us"] < floor * row["target"] or floor >= native["cpu_us"] / row["target"]:
            parts.append(f"a check_password that only returns True already costs {floor:.0f} µs of Apache CPU per "
                         f"request in this run (mod_wsgi calling Python), more than the {native['cpu_us'] / row['target']:.0f} "
                         "µs the target allows: out of reach for any Python hook")
        elif cpu_ratio is not None and cpu_ratio < row["target"]:
            parts.append(f"wsgiauth spends {row['cpu_us'] - native['cpu_us']:.0f} µs more per request than the "
                         f"native provider (a check_password returning True costs {floor:.0f} µs)")
    return "; ".join(parts) or "see docs/benchmarks.md"


def e2e_markdown(data: dict[str, Any]) -> list[str]:
    cfg = data["config"]
    cases = data["cases"]
    ap, wrk = cfg["apache"], cfg["wrk"]
    v = cfg.get("versions", {})
    out = ["## End to end: wsgiauth against Apache's own providers", ""]
    out.append(f"{v.get('apache', 'Apache')}, mod_wsgi {v.get('mod_wsgi', '?')}, Python {v.get('python', '?')}, "
               f"{v.get('cpus', '?')} CPUs ({v.get('machine', '')}); {ap['mpm']} MPM, {ap['processes']} processes x "
               f"{ap['threads']} threads, hooks embedded in the children, no access log; each location serves the "
               f"same static file. Load: {v.get('wrk', 'wrk')}, {wrk['threads']} thread, {wrk['connections']} "
               f"keep-alive connections, {cfg['seconds']:g} s per case and round, {cfg['rounds']} interleaved rounds "
               f"(started {cfg.get('started', '?')}, {cfg.get('elapsed_s', '?')} s). Stores hold "
               f"{cfg['filler_users']} other users; the benchmark users sit in the middle of the files.")
    out.append("")
    out.append(f"Machine load average before/after: {cfg.get('loadavg_before')} / {cfg.get('loadavg_after')} "
               "(the machine is shared: interleaving is what keeps the ratios fair).")
    out.append("")
    out.append("req/s: mean over the rounds; p99: median of the rounds' p99. Ratios are to the native provider of "
               "the same group, taken round by round (the two measured seconds apart) and reported as the median "
               "over the rounds (req/s ratio: higher is better; p99 ratio: lower is better).")
    out.append("")
    out.append("CPU µs/req: CPU time of the Apache processes per request (median over the rounds); CPU ratio: the "
               "native provider's CPU per request over the variant's (higher is better), a measure that depends "
               "much less on the rest of the machine's load than req/s.")
    out.append("")
    out.append("| group | variant | req/s | req/s ratio | p99 ms | p99 ratio | CPU µs/req | CPU ratio | target | met |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|:---:|")
    for row in cases:
        target = row.get("target")
        met = "" if row.get("met") is None else ("yes" if row["met"] else "**no**")
        out.append(f"| {row['group']} | {row['variant']} | {row['rps']:.0f} | {_ratio(row.get('rps_ratio'))} | "
                   f"{row['p99_ms']:.2f} | {_ratio(row.get('p99_ratio'))} | {_f(row.get('cpu_us'), '{:.0f}')} | "
                   f"{_ratio(row.get('cpu_ratio'))} | {'' if target is None else f'>= {target:g}x'} | {met} |")
    out.append("")
    misses = [r for r in cases if r.get("met") is False]
    targeted = [r for r in cases if r.get("met") is not None]
    out.append(f"Targets met: {len(targeted) - len(misses)} of {len(targeted)}.")
    if misses:
        out.append("")
        out.append("Missed:")
        out.append("")
        for r in misses:
            out.append(f"- {r['group']} / {r['variant']}: {_ratio(r['rps_ratio'])} req/s (target "
                       f"{r['target']:g}x; CPU ratio {_ratio(r.get('cpu_ratio'))}, per-round req/s ratios "
                       f"{', '.join(f'{x:.2f}' for x in r.get('rps_ratios', []))}): {_miss_reason(r, cases)}.")
    if data.get("errors"):
        out += ["", "Errors (cases without a number):", ""]
        out += [f"- {k}: `{v.splitlines()[0] if v else ''}`" for k, v in data["errors"].items()]
    out.append("")
    return out


def e2e_chart(data: dict[str, Any], path: Path) -> bool:
    """A horizontal bar chart of req/s ratios (log scale), targets as ticks. Returns False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = [r for r in data["cases"] if r["variant"] != "native" and r.get("rps_ratio")]
    if not rows:
        return False
    labels = [f"{r['group']} / {r['variant']}".replace("$", r"\$") for r in rows]  # no mathtext for $apr1$
    ratios = [r["rps_ratio"] for r in rows]
    colors = ["#2a9d8f" if r.get("met") else ("#e76f51" if r.get("met") is False else "#8d99ae") for r in rows]
    fig, ax = plt.subplots(figsize=(10, 0.32 * len(rows) + 1.6))
    y = list(range(len(rows)))
    ax.barh(y, ratios, color=colors)
    for i, r in enumerate(rows):
        if r.get("target"):
            ax.plot([r["target"], r["target"]], [i - 0.4, i + 0.4], color="black", linewidth=2)
        ax.text(r["rps_ratio"], i, f" {r['rps_ratio']:.2f}x", va="center", fontsize=7)
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("requests/second relative to the native Apache provider (log scale; black tick: target)")
    ax.set_title("wsgiauth vs Apache's native providers, same run (green: target met, red: missed)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ------------------------------------------------------------------------------------------ memory and micro


def memory_markdown(data: dict[str, Any]) -> list[str]:
    out = ["## Memory: RSS an Apache child gains from loading the auth script", ""]
    out.append(data.get("method", ""))
    out.append("")
    out.append("| script | RSS before (MiB) | RSS after (MiB) | added (MiB) | vs Django's handler |")
    out.append("|---|---:|---:|---:|---:|")
    for row in data.get("rows", []):
        out.append(f"| {row['name']} | {row['before_kib'] / 1024:.1f} | {row['after_kib'] / 1024:.1f} | "
                   f"{row['added_kib'] / 1024:.2f} | {_f(row.get('vs_django'), '{:.2f}')} |")
    target = data.get("target")
    if target:
        out += ["", target]
    out.append("")
    return out


def micro_markdown(data: dict[str, Any]) -> list[str]:
    out = ["## Micro benchmarks (pytest-benchmark, in process)", ""]
    machine = data.get("machine_info", {})
    out.append(f"Python {machine.get('python_version', '?')}; times per call (median, and mean), fastest first "
               "within each group.")
    out.append("")
    out.append("| group | benchmark | median µs | mean µs | rounds |")
    out.append("|---|---|---:|---:|---:|")
    benches = data.get("benchmarks", [])
    benches = sorted(benches, key=lambda b: (b.get("group") or "", b["stats"]["median"]))
    for b in benches:
        s = b["stats"]
        out.append(f"| {b.get('group') or ''} | {b['name']} | {s['median'] * 1e6:.2f} | {s['mean'] * 1e6:.2f} | "
                   f"{s['rounds']} |")
    out.append("")
    return out


def peers_markdown(data: dict[str, Any]) -> list[str]:
    out = ["## Python peers", ""]
    for key, value in data.items():
        out.append(f"- **{key}**: {value}")
    out.append("")
    return out


# ---------------------------------------------------------------------------------------------------- writer


def write(results: Path = RESULTS) -> Path:
    """Write report.md, results.json and e2e.png into ``results`` from what is there.

    Returns:
        The path of report.md.
    """
    results.mkdir(parents=True, exist_ok=True)
    inputs = {name: _load(results / f"{name}.json") for name in ("e2e", "memory", "peers")}
    inputs["micro"] = compact_micro(results / "micro.json")
    lines = ["# wsgiauth benchmarks", "",
             f"Written by `python -m benchmarks.report` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
             "from the results of `make bench` (see docs/benchmarks.md for the method).", ""]
    if inputs["e2e"]:
        lines += e2e_markdown(inputs["e2e"])
        if e2e_chart(inputs["e2e"], results / "e2e.png"):
            lines += ["![req/s ratios](e2e.png)", ""]
    else:
        lines += ["## End to end", "", "No e2e.json: run `python -m benchmarks.e2e`.", ""]
    if inputs["memory"]:
        lines += memory_markdown(inputs["memory"])
    else:
        lines += ["## Memory", "", "No memory.json: run `python -m benchmarks.memory`.", ""]
    if inputs["peers"]:
        lines += peers_markdown(inputs["peers"])
    if inputs["micro"]:
        lines += micro_markdown(inputs["micro"])
    else:
        lines += ["## Micro benchmarks", "", "No micro.json: run pytest-benchmark over benchmarks/.", ""]
    report = results / "report.md"
    report.write_text("\n".join(lines))
    (results / "results.json").write_text(json.dumps(inputs, indent=1) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = write(Path(args[0]) if args else RESULTS)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
