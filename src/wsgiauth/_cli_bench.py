"""``wsgiauth bench``: latency and throughput of the configured backend, cache off and on, at 1..N threads."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Any

__all__ = ["bench", "measure"]


def measure(backend: Any, user: bytes, password: bytes, threads: int, duration: float,
            progress: Any = None) -> dict[str, float]:
    """Call ``backend.authenticate`` from ``threads`` threads for ``duration`` seconds.

    Returns:
        ``{"checks": n, "per_second": ..., "p50_ms": ..., "p99_ms": ..., "errors": n}``.
    """
    stop = threading.Event()
    samples: list[list[float]] = [[] for _ in range(threads)]
    errors = [0] * threads

    def worker(i: int) -> None:
        out = samples[i]
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                d = backend.authenticate(user, password, "127.0.0.1")
                if not d.granted:
                    errors[i] += 1
            except Exception:  # noqa: BLE001 - counted, reported in the table
                errors[i] += 1
            out.append(time.perf_counter() - t0)

    pool = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    start = time.perf_counter()
    for t in pool:
        t.start()
    while (elapsed := time.perf_counter() - start) < duration:
        if progress is not None:
            progress(min(elapsed / duration, 1.0))
        time.sleep(min(0.1, max(duration - elapsed, 0.0)))
    stop.set()
    for t in pool:
        t.join()
    wall = time.perf_counter() - start
    if progress is not None:
        progress(1.0)
    lat = sorted(x for s in samples for x in s)
    n = len(lat)

    def pct(q: float) -> float:
        return lat[min(n - 1, int(q * n))] * 1000 if n else float("nan")

    return {"checks": float(n), "per_second": n / wall if wall else 0.0, "p50_ms": pct(0.50), "p99_ms": pct(0.99),
            "errors": float(sum(errors))}


def _bar(label: str) -> Any:
    tty = sys.stderr.isatty()

    def show(fraction: float) -> None:
        width = 30
        filled = int(fraction * width)
        line = f"\r{label:<22} [{'#' * filled}{'.' * (width - filled)}] {fraction * 100:3.0f}%"
        if tty or fraction >= 1.0:
            sys.stderr.write(line + ("\n" if fraction >= 1.0 else ""))
            sys.stderr.flush()
    return show


def bench(args: argparse.Namespace) -> int:
    from .adapter import Outcome
    from .cache import cached
    from .cli import CliError, _load, read_password

    cfg = _load(args.config)
    try:
        counts = sorted({int(x) for x in args.threads.split(",") if x.strip()})
    except ValueError:
        raise CliError("--threads takes comma-separated integers, e.g. 1,2,4,8") from None
    if not counts or counts[0] < 1 or counts[-1] > 256:
        raise CliError("--threads: between 1 and 256 threads")
    if args.duration <= 0:
        raise CliError("--duration must be positive")
    user = args.user.encode("utf-8")
    password = read_password(f"Password for {args.user}: ")
    top = cfg.settings["top"]["backend"]
    plain = cfg.backends[top]  # without the top-level cache and throttle (throttling would distort a benchmark)
    first = plain.authenticate(user, password, "127.0.0.1")
    if first.outcome is not Outcome.GRANTED:
        print(f"wsgiauth: {args.user} is not granted by {plain.label} ({first.outcome.value}): bench needs a "
              "working login", file=sys.stderr)
        return 1
    modes: list[tuple[str, Any]] = []
    if args.cache in ("off", "both"):
        modes.append(("off", plain))
    if args.cache in ("on", "both"):
        modes.append(("on", cached(plain, ttl=3600, max_size=1000)))
    rows: list[tuple[str, int, dict[str, float]]] = []
    for mode, backend in modes:
        for n in counts:
            label = f"cache {mode}, {n} thread{'s' * (n > 1)}"
            result = measure(backend, user, password, n, args.duration, _bar(label))
            rows.append((mode, n, result))
    print(f"backend: {plain.label}   user: {args.user}   {args.duration:g} s per row")
    print(f"{'cache':<6} {'threads':>7} {'checks/s':>10} {'p50 ms':>9} {'p99 ms':>9} {'errors':>7}")
    for mode, n, r in rows:
        rate = f"{r['per_second']:.1f}" if r["per_second"] < 100 else f"{r['per_second']:.0f}"
        print(f"{mode:<6} {n:>7} {rate:>10} {r['p50_ms']:>9.3f} {r['p99_ms']:>9.3f} {r['errors']:>7.0f}")
    if args.png:
        try:
            import matplotlib  # type: ignore[import-not-found,unused-ignore]

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            print("wsgiauth: --png needs matplotlib (pip install 'wsgiauth-backends[bench]'); table only",
                  file=sys.stderr)
            return 0
        fig, ax = plt.subplots(figsize=(6, 4))
        for mode, _ in modes:
            pts = [(n, r["per_second"]) for m, n, r in rows if m == mode]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"cache {mode}")
        ax.set_xlabel("threads")
        ax.set_ylabel("checks per second")
        ax.set_title(f"wsgiauth bench: {plain.label}")
        ax.legend()
        fig.savefig(args.png, dpi=100, bbox_inches="tight")
        print(f"chart written to {args.png}")
    return 0
