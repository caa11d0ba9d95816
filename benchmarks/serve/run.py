"""catdog-bench serve, end to end: the in-process reference, POST load at each concurrency, MJPEG
viewers against inference FPS, the soak, the fault soak; then reports/<name>/report.{md,json} with
the targets of issues 23 and 32 checked against the numbers of this one run (benchmarks/serve/load.py
measures)."""

from __future__ import annotations

import os
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from catdog.benchmarks.serve.faults import FaultMix, fault_soak
from catdog.benchmarks.serve.load import Log, ServeBenchConfig, Server, in_process, post_load, viewer
from catdog.runtime.spine.folders import list_images
from catdog.runtime.spine.isa import int8_path
from catdog.runtime.spine.reports import md_table, write_report_pair


def _video(cfg: ServeBenchConfig, photos: list[Path], fps: float = 30.0, frames: int | None = None,
           name: str = ".bench-video.avi") -> Path:
    import cv2

    path = cfg.out_dir / name
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, cfg.video_size)
    imgs = [cv2.resize(cv2.imread(str(p)), cfg.video_size) for p in photos[:24]]
    for i in range(frames or cfg.video_frames):
        vw.write(imgs[i % len(imgs)])
    vw.release()
    return path


def _fps(server: Server, n_viewers: int, window_s: float) -> dict[str, Any]:
    stop, counts = threading.Event(), [[0] for _ in range(n_viewers)]
    threads = [threading.Thread(target=viewer, args=(server.port, stop, c), daemon=True) for c in counts]
    for t in threads:
        t.start()
    time.sleep(1.0)  # viewers connected and streaming
    f0, v0, t0 = server.gauge("catdog_frames_total"), sum(c[0] for c in counts), time.perf_counter()
    time.sleep(window_s)
    f1, v1, t1 = server.gauge("catdog_frames_total"), sum(c[0] for c in counts), time.perf_counter()
    stop.set()
    for t in threads:
        t.join(5)
    fps = (f1 - f0) / (t1 - t0)
    return {"viewers": n_viewers, "inference_fps": fps,
            "stream_fps_per_viewer": (v1 - v0) / (t1 - t0) / n_viewers if n_viewers else 0.0}


def measure(cfg: ServeBenchConfig, log: Log) -> dict[str, Any]:
    paths = list_images(cfg.photos)
    if not paths:
        raise ValueError(f"{cfg.photos}: no photos")
    bodies = [p.read_bytes() for p in paths]
    log(f"in-process reference on {len(paths)} photos")
    ref = in_process(paths, cfg.model)
    model = ["--model", cfg.model] if cfg.model else []
    api = Server(*model)
    try:
        post_load(api.port, bodies, 2, 16)  # warm-up
        load = []
        for n in cfg.clients:
            log(f"POST /api/predict, {n} client(s)")
            load.append(post_load(api.port, bodies, n, cfg.requests))
        log(f"soak: {cfg.soak_s:g} s at {cfg.soak_clients} clients")
        rss0 = api.rss_mb()
        soak = post_load(api.port, bodies, cfg.soak_clients, 10**9, deadline_s=cfg.soak_s)
        soak.update(rss_start_mb=rss0, rss_end_mb=api.rss_mb())
    finally:
        api.stop()
    video = _video(cfg, paths)
    try:
        runs: dict[int, list[dict[str, Any]]] = {n: [] for n in cfg.viewers}
        for r in range(cfg.rounds):  # interleaved: a drift in the machine's speed hits every count alike
            for n in cfg.viewers:
                log(f"MJPEG, {n} viewer(s), round {r + 1}/{cfg.rounds}")
                live = Server(video, *model)  # a fresh run per measurement: the video never ends inside one
                try:
                    time.sleep(1.0)
                    runs[n].append(_fps(live, n, cfg.window_s))
                finally:
                    live.stop()
    finally:
        video.unlink(missing_ok=True)
    streams = [{"viewers": n, "inference_fps": statistics.median(x["inference_fps"] for x in rs),
                "stream_fps_per_viewer": statistics.median(x["stream_fps_per_viewer"] for x in rs),
                "rounds": [x["inference_fps"] for x in rs]} for n, rs in runs.items()]
    out = {"reference": ref, "load": load, "soak": soak, "streams": streams}
    mix = cfg.faults or FaultMix()
    if mix.seconds > 0:
        out["faults"] = run_faults(cfg, mix, paths, bodies, model, log)
    return out


def run_faults(cfg: ServeBenchConfig, mix: FaultMix, paths: list[Path], bodies: list[bytes], model: list,
               log: Log) -> dict[str, Any]:
    """The fault soak on a fresh server that serves a camera-like video (--realtime, so that the
    stream has frames for the viewers that never read)."""
    video = _video(cfg, paths, fps=mix.video_fps, frames=int(mix.video_fps * (mix.seconds + 90)),
                   name=".bench-faults.avi")
    try:
        server = Server(video, *model, "--realtime", "--request-timeout", mix.request_timeout,
                        "--idle-timeout", mix.idle_timeout)
        try:
            return fault_soak(server, bodies, mix, log)
        finally:
            server.stop()
    finally:
        video.unlink(missing_ok=True)


def verdicts(m: dict[str, Any]) -> list[tuple[str, str, bool]]:
    ref, load = m["reference"], {x["clients"]: x for x in m["load"]}
    fps = {x["viewers"]: x["inference_fps"] for x in m["streams"]}
    soak = m["soak"]
    out = []
    if 8 in load:
        r = load[8]["images_per_s"] / ref["folder_images_per_s"]
        out.append(("8 clients: POST img/s >= 0.8x in-process folder img/s", f"{r:.2f}x", r >= 0.8))
    if 1 in load:  # the same percentile on both sides: p99 of one photo at a time, in-process and over HTTP
        lim = ref["b1_p99_ms"] + 5
        out.append(("1 client: p99 <= in-process b1 p99 + 5 ms", f"{load[1]['p99_ms']:.1f} vs {lim:.1f} ms",
                    load[1]["p99_ms"] <= lim))
    if 0 in fps and 10 in fps:
        cost = 1 - fps[10] / fps[0]
        out.append(("10 viewers cost <= 5% of inference FPS", f"{100 * cost:.1f}%", cost <= 0.05))
    growth = soak["rss_end_mb"] / soak["rss_start_mb"] - 1
    out.append((f"soak {soak['requests']} requests: 0 errors", str(soak["errors"]), soak["errors"] == 0))
    out.append(("soak RSS growth <= 10%", f"{100 * growth:.1f}%", growth <= 0.10))
    return out + fault_verdicts(m["faults"]) if "faults" in m else out


def fault_verdicts(f: dict[str, Any]) -> list[tuple[str, str, bool]]:
    growth = f["rss_end_mb"] / f["rss_start_mb"] - 1
    return [
        ("fault soak: each request answered as meant (504 for ?timeout=, 200 or a 504 past --request-timeout for "
         "the others): outcomes that were neither", f"{f['unexpected']} of {f['requests']}", f["unexpected"] == 0),
        ("fault soak: /healthz 200 throughout (the batcher alive, as the 200s show)",
         f"{f['health_checks'] - f['health_not_200']}/{f['health_checks']}",
         f["health_not_200"] == 0 and f["health_checks"] > 0),
        (f"after it: {f['after_requests']} normal requests all succeed", f"{f['after_ok']}/{f['after_requests']}",
         f["after_ok"] == f["after_requests"] and f["health_after"] == 200),
        ("after it: a new viewer gets frames (idle viewers' slots given back)", f"{f['viewer_frames_after']} frames",
         f["viewer_frames_after"] > 0),
        ("fault soak RSS growth <= 15%", f"{100 * growth:.1f}%", growth <= 0.15),
        ("fault soak: no traceback printed", str(f["tracebacks"]), f["tracebacks"] == 0),
    ]


def render_faults(f: dict[str, Any]) -> list[str]:
    e = f["server_errors"]
    kinds = ", ".join(f"{k} {v:.0f}" for k, v in sorted(e.items())) or "none"
    return ["## Fault soak", "",
            f"{f['seconds']:g} s at {f['clients']} clients: {f['requests']} requests, {f['ok']} normal ones answered "
            f"200 and {f.get('slow', 0)} answered 504 (past `--request-timeout` on this machine's load), "
            f"{f['timed_out']} timed out ({100 * f['timed_out_share']:.1f}%: `?timeout={f['ask_timeout']:g}`, "
            f"shorter than any batch, under `--request-timeout {f['request_timeout']:g}`), {f['aborted']} aborted "
            f"mid-body ({100 * f['aborted_share']:.1f}%), {f['unexpected']} unexpected; beside them "
            f"{f['idle_viewers']} stream viewers that never read and {f['half_open']} half-open sockets (half send "
            f"nothing, half half a request head; `--idle-timeout {f['idle_timeout']:g}`), each put back when the "
            f"server closed it ({f['half_open_closed']} closed). `/healthz`: {f['health_checks']} checks, "
            f"{f['health_not_200']} not 200. Server RSS {f['rss_start_mb']:.0f} -> {f['rss_end_mb']:.0f} MB (peak "
            f"{f['rss_peak_mb']:.0f}); tracebacks printed: {f['tracebacks']}.", "",
            f"After it: {f['after_ok']}/{f['after_requests']} normal requests answered 200, `/healthz` "
            f"{f['health_after']}, a new viewer got {f['viewer_frames_after']} frames.", "",
            f"What the server counted (`catdog_errors_total` by kind): {kinds}.", ""]


def _cpu() -> str:
    """The CPU's model and the cores this process may use, e.g. 'AMD EPYC 9B14 (2 cores)'."""
    from catdog.benchmarks.common.env import cpu_info

    info = cpu_info()
    return f"{info['cpu']} ({info.get('cores_usable') or info.get('cores_logical') or '?'} cores)"


def _load_note(m: dict[str, Any]) -> list[str]:
    """The machine's load beside the run: on a shared machine the cost figures say as much about the
    other jobs as about the server (the fault soak's checks do not depend on it)."""
    if "load_avg" not in m:
        return []
    (a, b), cpus = m["load_avg"], os.cpu_count() or 1
    shared = ": other jobs shared them, so compare cost figures only within this run" if max(a, b) > 0.75 * cpus else ""
    return [f"Machine load (1-min average) at the start and the end of this run: {a:.1f} and {b:.1f} on "
            f"{cpus} CPUs{shared}.", ""]


def render(m: dict[str, Any], cfg: ServeBenchConfig) -> str:
    ref = m["reference"]
    cpu = f"{_cpu()}, integer path {int8_path()}"
    L = ["# catdog-bench serve", "", f"`{cfg.command}`; CPU: {cpu}; model {ref['model']}.", "",
         f"In-process (the same photos): folder run {ref['folder_images_per_s']:.1f} img/s; one photo at a time "
         f"(decode + inference) p50 {ref['b1_p50_ms']:.1f} ms, p99 {ref['b1_p99_ms']:.1f} ms.", "",
         *_load_note(m), "## POST /api/predict", ""]
    L += md_table(["clients", "requests", "errors", "img/s", "vs in-process", "p50 ms", "p90 ms", "p99 ms"],
                  [[x["clients"], x["requests"], x["errors"], f"{x['images_per_s']:.1f}",
                    f"{x['images_per_s'] / ref['folder_images_per_s']:.2f}x", f"{x['p50_ms']:.1f}",
                    f"{x['p90_ms']:.1f}", f"{x['p99_ms']:.1f}"] for x in m["load"]], right=range(1, 8))
    L += ["", "## MJPEG viewers vs inference", ""]
    L += md_table(["viewers", "inference FPS", "stream FPS per viewer"],
                  [[x["viewers"], f"{x['inference_fps']:.1f}", f"{x['stream_fps_per_viewer']:.1f}"]
                   for x in m["streams"]], right=(1, 2))
    s = m["soak"]
    L += ["", "## Soak", "", f"{s['requests']} requests from {cfg.soak_clients} clients in {cfg.soak_s:g} s, "
          f"{s['errors']} errors; server RSS {s['rss_start_mb']:.0f} -> {s['rss_end_mb']:.0f} MB.", ""]
    if "faults" in m:
        L += render_faults(m["faults"])
    L += ["## Targets", ""]
    L += md_table(["target", "measured", "met"], [[t, v, "yes" if ok else "NO"] for t, v, ok in verdicts(m)])
    return "\n".join(L) + "\n"


def run_serve_bench(cfg: ServeBenchConfig, log: Log) -> dict[str, Any]:
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    load0 = os.getloadavg()[0]
    m = measure(cfg, log)
    m["load_avg"] = [load0, os.getloadavg()[0]]  # the machine's 1-min load at the start and the end
    data = {**m, "cpu": _cpu(), "int8_path": int8_path(),
            "command": cfg.command, "targets": [{"target": t, "measured": v, "met": ok} for t, v, ok in verdicts(m)]}
    write_report_pair(cfg.out_dir, "report", data, render(m, cfg), sort_keys=False)
    return data
