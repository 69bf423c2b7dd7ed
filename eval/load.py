"""Load test: N simulated users ask gold questions through the Gradio API of a `rag ui`.

    python eval/load.py                          # starts `rag ui`, 20 users, 300 s
    python eval/load.py --users 4 --seconds 40 --model smollm2-135m --json load.json
    python eval/load.py --url http://127.0.0.1:7860 --server-pid 1234

Each user is a thread with its own gradio_client and asks `/chat` one question after another
(gold questions from eval/gold.jsonl, in a seeded random order) until the time is up. After
that no new question starts; answers in flight get --grace seconds, then they are cancelled
and counted as unfinished. The whole run therefore stops by itself, within
start-up + --seconds + --grace (+ a few seconds to stop the server it started).

Reported (printed, and as JSON with --json): requests served, errors (the goal is 0) with
samples, unfinished, latency p50/p95/max of the served ones, throughput, and the server's
resident memory (RSS) after a warm-up question (the model is loaded lazily) versus at the end,
as growth in percent. Only a server on this machine is accepted (127.0.0.1, ::1, localhost).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from rag.eval.metrics import percentile

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_GOLD = ROOT / "eval" / "gold.jsonl"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


# --- the server ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_bytes(pid: int) -> int | None:
    """Resident memory of a process (Linux /proc; None elsewhere or when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def pid_listening_on(port: int) -> int | None:
    """The process listening on a local TCP port, from /proc (Linux; best effort)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(cols[9])
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    return int(proc.name)
        except OSError:
            continue
    return None


def wait_until_up(url: str, proc: subprocess.Popen | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(
                f"load: the server exited with code {proc.returncode} before it was up "
                "(see its log)"
            )
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"load: {url} did not answer within {timeout:.0f} s")


def start_server(args, log_path: Path) -> tuple[subprocess.Popen, str]:
    port = args.port or free_port()
    cmd = [sys.executable, "-m", "rag.cli", "ui", "--host", "127.0.0.1", "--port", str(port)]
    if args.model:
        cmd += ["--model", args.model]
    if args.data_dir:
        cmd += ["--data-dir", str(args.data_dir)]
    env = dict(os.environ)
    env.pop("RAG_UI_AUTH", None)  # a local server; the client does not log in
    log = open(log_path, "w")
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    return proc, f"http://127.0.0.1:{port}/"


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


# --- the users -------------------------------------------------------------------------------


def load_questions(path: Path) -> list[str]:
    questions = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            questions.append(json.loads(line)["question"])
    if not questions:
        raise SystemExit(f"load: no questions in {path}")
    return questions


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.unfinished = 0
        self.started = 0
        self.places: dict[int, list[int]] = {}  # user → their place in line, per question

    def ok(self, seconds: float) -> None:
        with self.lock:
            self.latencies.append(seconds)

    def error(self, message: str) -> None:
        with self.lock:
            self.errors.append(message[:300])

    def place(self, user: int, place: int) -> None:
        with self.lock:
            self.places.setdefault(user, []).append(place)

    def cut(self) -> None:
        with self.lock:
            self.unfinished += 1


def user(
    n: int,
    url: str,
    questions: list[str],
    deadline: float,
    hard_stop: float,
    stats: Stats,
    seed: int,
) -> None:
    from gradio_client import Client

    rng = random.Random(seed * 1000 + n)
    try:
        client = Client(url, verbose=False)
    except Exception as exc:  # cannot even connect: every user would say so
        stats.error(f"user {n}: connect: {type(exc).__name__}: {exc}")
        return
    while time.monotonic() < deadline:
        question = rng.choice(questions)
        with stats.lock:
            stats.started += 1
        t0 = time.monotonic()
        job = None
        try:
            job = client.submit(question, api_name="/chat")
            stats.place(n, wait_in_line(job, hard_stop))
            answer = job.result(timeout=max(1.0, hard_stop - time.monotonic()))
        except TimeoutError:
            if job is not None:
                job.cancel()
            stats.cut()
            return
        except Exception as exc:
            if time.monotonic() >= hard_stop:
                stats.cut()
                return
            stats.error(f"{question!r}: {type(exc).__name__}: {exc}")
            continue
        if not isinstance(answer, str) or not answer.strip():
            stats.error(f"{question!r}: empty answer {answer!r}")
            continue
        stats.ok(time.monotonic() - t0)


def wait_in_line(job, hard_stop: float) -> int:
    """Follow a submitted question until the model takes it; returns the place in line it was
    first given by the server's queue (1 = next; 0 = it never had to wait)."""
    from gradio_client.utils import Status

    first = 0
    while time.monotonic() < hard_stop and not job.done():
        status = job.status()
        if status.code == Status.IN_QUEUE and status.rank is not None and not first:
            first = status.rank + 1
        if status.code in (Status.PROCESSING, Status.ITERATING, Status.FINISHED):
            break
        time.sleep(0.2)
    return first


def mb(n: int | None) -> float | None:
    return round(n / 2**20, 1) if n else None


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--users", type=int, default=20, help="simulated users (default 20)")
    p.add_argument(
        "--seconds", type=float, default=300, help="how long users keep asking (default 300)"
    )
    p.add_argument(
        "--grace",
        type=float,
        default=180,
        help=(
            "after --seconds, how long answers in flight may take before they are cancelled "
            "(default 180)"
        ),
    )
    p.add_argument(
        "--model", help="model preset (or .gguf) for the server this script starts (rag ui --model)"
    )
    p.add_argument(
        "--url", help="use this running `rag ui` instead of starting one (127.0.0.1/localhost only)"
    )
    p.add_argument(
        "--server-pid",
        type=int,
        help="with --url: the server's pid, for its memory (found from the port otherwise)",
    )
    p.add_argument("--data-dir", type=Path, help="RAG_DATA_DIR for the server this script starts")
    p.add_argument(
        "--port", type=int, help="port for the server this script starts (default: a free one)"
    )
    p.add_argument(
        "--startup-timeout",
        type=float,
        default=600,
        help="wait this long for the server to come up (default 600)",
    )
    p.add_argument(
        "--gold", type=Path, default=DEFAULT_GOLD, help="questions, JSONL (default eval/gold.jsonl)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, dest="json_out", help="write the report here as JSON")
    args = p.parse_args(argv)
    if args.users < 1 or args.seconds <= 0 or args.grace < 0:
        p.error("--users must be >= 1, --seconds > 0 and --grace >= 0")
    if args.url:
        host = urlparse(args.url).hostname or ""
        if host not in LOCAL_HOSTS:
            p.error(
                "--url must point to this machine (127.0.0.1, ::1 or localhost), "
                f"not {host or args.url!r}"
            )
        if args.model or args.data_dir:
            p.error("--model and --data-dir configure a server this script starts; not with --url")
    return args


def run(args: argparse.Namespace) -> dict:
    questions = load_questions(args.gold)
    server = None
    log_path = Path(tempfile.mkstemp(prefix="rag-load-", suffix=".log")[1])
    t_start = time.monotonic()
    try:
        if args.url:
            url = args.url.rstrip("/") + "/"
            wait_until_up(url, None, args.startup_timeout)
            pid = args.server_pid or pid_listening_on(urlparse(url).port or 80)
        else:
            server, url = start_server(args, log_path)
            print(f"load: starting rag ui at {url} (log: {log_path})", file=sys.stderr)
            wait_until_up(url, server, args.startup_timeout)
            pid = server.pid
        rss_ready = rss_bytes(pid) if pid else None

        # One question first: the server loads its model on the first one.
        from gradio_client import Client

        t0 = time.monotonic()
        warm = Client(url, verbose=False).predict(questions[0], api_name="/chat")
        if not isinstance(warm, str) or not warm.strip():
            raise SystemExit(f"load: the warm-up question got {warm!r}")
        warmup_s = time.monotonic() - t0
        startup_s = time.monotonic() - t_start
        rss_start = rss_bytes(pid) if pid else None

        print(f"load: {args.users} users for {args.seconds:.0f} s against {url}", file=sys.stderr)
        stats = Stats()
        began = time.monotonic()
        deadline = began + args.seconds
        hard_stop = deadline + args.grace
        threads = [
            threading.Thread(
                target=user,
                args=(n, url, questions, deadline, hard_stop, stats, args.seed),
                daemon=True,
                name=f"user-{n}",
            )
            for n in range(args.users)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=max(0.0, hard_stop + 15 - time.monotonic()))
        stuck = sum(t.is_alive() for t in threads)  # daemon threads: abandoned at exit
        elapsed = time.monotonic() - began
        rss_end = rss_bytes(pid) if pid else None
        server_alive = server.poll() is None if server else True
    finally:
        if server is not None:
            stop_server(server)

    lat = stats.latencies
    report = {
        "url": url,
        "config": {
            "users": args.users,
            "seconds": args.seconds,
            "grace_s": args.grace,
            "model": args.model or ("(server's)" if args.url else "(default)"),
            "seed": args.seed,
        },
        "served": len(lat),
        "errors": len(stats.errors),
        "error_samples": stats.errors[:10],
        "unfinished": stats.unfinished + stuck,
        "requests_started": stats.started,
        "elapsed_s": round(elapsed, 1),
        "startup_s": round(startup_s, 1),
        "warmup_s": round(warmup_s, 1),
        "throughput_per_min": round(len(lat) / elapsed * 60, 2) if elapsed else 0.0,
        "latency_s": {
            "p50": round(percentile(lat, 50) or 0.0, 2),
            "p95": round(percentile(lat, 95) or 0.0, 2),
            "max": round(max(lat), 2) if lat else 0.0,
            "mean": round(sum(lat) / len(lat), 2) if lat else 0.0,
        },
        "rss_mb": {
            "ready": mb(rss_ready),
            "start": mb(rss_start),
            "end": mb(rss_end),
            "growth_pct": round((rss_end - rss_start) / rss_start * 100, 1)
            if rss_start and rss_end
            else None,
        },
        "queue_place": {
            "p50": percentile([p for ps in stats.places.values() for p in ps], 50) or 0,
            "max": max((p for ps in stats.places.values() for p in ps), default=0),
            "by_user": {str(u): ps for u, ps in sorted(stats.places.items())},
        },
        "server_alive_at_end": server_alive,
        "server_pid": pid,
    }
    if server is not None:
        report["server_log"] = str(log_path)
    return report


def summary(r: dict) -> str:
    lat, rss = r["latency_s"], r["rss_mb"]
    lines = [
        (
            f"users {r['config']['users']}, {r['elapsed_s']} s of load "
            f"(+ {r['startup_s']} s start-up incl. a {r['warmup_s']} s warm-up)"
        ),
        f"served      {r['served']}  ({r['throughput_per_min']}/min)",
        f"errors      {r['errors']}" + ("  (goal: 0)" if r["errors"] else ""),
        f"unfinished  {r['unfinished']}  (still waiting when the run ended; cancelled)",
        f"latency     p50 {lat['p50']} s   p95 {lat['p95']} s   max {lat['max']} s",
        f"queue place p50 {r['queue_place']['p50']}   max {r['queue_place']['max']}   "
        "(1 = next in line; per user in the JSON)",
        f"server RSS  {rss['start']} MB after warm-up -> {rss['end']} MB at the end"
        + (f"  ({rss['growth_pct']:+.1f} %)" if rss["growth_pct"] is not None else "  (unknown)"),
    ]
    lines += [f"  error: {e}" for e in r["error_samples"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args)
    print(summary(report))
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0 if report["errors"] == 0 and report["served"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
