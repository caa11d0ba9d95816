"""catdog-bench live's report: the Markdown beside report.json, the targets of issue 31 checked
against this run's own numbers, and the lines the command prints."""

from __future__ import annotations

from typing import Any

from catdog.runtime.spine.reports import md_table

TARGET_SHARE = 0.98  # classified / sent when inference is faster than the camera


def _f(v: Any, fmt: str = ".1f", none: str = "n/a") -> str:
    return none if v is None else format(v, fmt)


def cpu_line(data: dict[str, Any]) -> str:
    c = data["cpu"]
    isa = ", ".join(k for k, v in c["isa"].items() if v) or "none listed"
    return (f"{c['cpu']} ({c['arch']}), {c['cores_usable']} usable cores, {data.get('ram_gb')} GB RAM; "
            f"ISA: {isa}; ONNX Runtime's integer path: {c['int8_path']}")


def keeps_up(cell: dict[str, Any]) -> bool | None:
    """Whether the runtime's per-frame work (preprocess + inference, the runtime's own means) is
    shorter than the camera's frame interval: then every frame should be classified."""
    st = cell.get("stage_ms") or {}
    if st.get("inference") is None:
        return None
    return (st.get("preprocess") or 0.0) + st["inference"] < 1000.0 / cell["fps"]


def target_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Where inference is faster than the camera: the share of the camera's frames classified in the
    steady window (the start-up's drops are reported beside it, not hidden in it)."""
    out = []
    for c in data["cells"]:
        share = None if c.get("error") else c.get("classified_of_window")
        if share is None or not keeps_up(c):
            continue
        w = c["window"]
        out.append({"target": f"{c['backend']} {c['fps']} fps: inference faster than the camera, "
                              f">= {TARGET_SHARE:.0%} of the camera's frames classified (steady window)",
                    "measured": f"{share:.1%} ({w['classified']} of {w['camera_frames']} in {w['seconds']:.1f} s)",
                    "met": share >= TARGET_SHARE})
    return out


def _backend_rows(data: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for b in data["backends"]:
        cv = (b.get("probe") or {}).get("opencv") or {}
        status = b["unavailable"] or ("available" + ("" if b.get("timings") else "; runtime has no --timings"))
        rows.append([b["backend"], f"`{b['python']}`", f"{cv.get('version', '-')} `{cv.get('path', '-')}`", status])
    return rows


def _pc(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _frame_rows(data: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for c in data["cells"]:
        if c.get("error"):
            rows.append([c["fps"], c["backend"], f"error: {c['error']}"] + [""] * 9)
            continue
        w = c["window"]
        rows.append([c["fps"], c["backend"], c["sent"], c["read"], c["classified"], _pc(c["classified_of_sent"]),
                     c["dropped"], c["dropped_before_window"], w["camera_frames"], w["classified"],
                     _pc(c["classified_of_window"]), f"{_f(w['classified_per_s'])} / {_f(w['camera_fps'])}"])
    return rows


def _cost_rows(data: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for c in data["cells"]:
        if c.get("error"):
            continue
        a, g, u = c["age_ms"], c["lag_ms"], c["usage"]
        rows.append([c["fps"], c["backend"], _f(a["p50"]), _f(a["p99"]), _f(g["p50"]), _f(g["p99"]),
                     c.get("summary_frame_age") or "n/a", _f(u["runtime"]["cpu_percent"], ".0f"),
                     _f(u["runtime"]["rss_mb_median"], ".0f"), _f(u["runtime"]["rss_mb_max"], ".0f"),
                     _f(u["camera"]["cpu_percent"], ".0f"), _f(u["machine_cpu_percent"], ".0f"),
                     _f(u.get("others_cpu_percent"), ".0f")])
    return rows


def render(data: dict[str, Any]) -> str:
    others = [c["usage"]["others_cpu_percent"] for c in data["cells"] if not c.get("error")]
    shared = (f" Other jobs took {min(others):.0f}-{max(others):.0f}% of one core during the cells: measured "
              "while other work shared the machine." if others and max(others) >= 10 else "")
    L = ["# catdog-bench live", "", f"`{data['command']}` (commit {data.get('commit') or 'unknown'})", "",
         f"CPU: {cpu_line(data)}.{shared}", "",
         f"Camera: benchmarks/live/rtsp_camera.py ({(data['camera'] or {}).get('gstreamer_version')}, x264 ultrafast "
         f"zerolatency, 2 Mbit/s, keyframe every second), {data['size']}, photos {', '.join(data['photos'])} each for "
         f"{data['frames_per_image']} frames, `--shared`; one fresh camera and runtime per cell, "
         f"{data['seconds']:g} s measured after a {data['warmup_s']:g} s warm-up; model: {data['model']}.", "",
         "## Backends", ""]
    L += md_table(["backend", "Python", "OpenCV", "status"], _backend_rows(data))
    L += ["", "## Live: frames classified against frames the camera sent", "",
          "Whole run: *sent* is the camera's count of frames pushed into its encoder (SENT), from the runtime's "
          "connection to its exit; *read* the frames the runtime decoded (its highest frame number + 1; sent - read "
          "is what was still in flight when it stopped); *classified* its JSON lines; *dropped* its own count "
          "(newest frame wins), of which *at start-up* the frames read before the steady window and never "
          "classified. Steady window: the camera's frames (by the runtime's frame numbers) and the labels "
          "between the window's first and last label.", ""]
    L += md_table(["fps", "backend", "sent", "read", "classified", "of sent", "dropped", "at start-up",
                   "window: camera frames", "classified", "of camera", "classified/s / camera fps"],
                  _frame_rows(data), right=range(2, 12))
    L += ["", "## Frame age, CPU and memory (steady window)", "",
          "*age*: capture to label, from the runtime's per-frame timings (`--timings`). *lag*: each label's "
          "lateness on the camera's clock (label time - frame number / fps) over the fastest frame's, measured "
          "from outside: what queueing and stalls add to the glass-to-label time (a frame lost before the runtime's "
          "frame counter would add 1/fps to every later lag; sent - read bounds those). CPU: % of one core over the "
          "window (runtime, camera); machine: all cores busy; other jobs: what the machine's cores spent beyond "
          "the runtime, the camera and this benchmark, in % of one core. RSS sampled every 0.5 s.", ""]
    L += md_table(["fps", "backend", "age p50 ms", "age p99 ms", "lag p50 ms", "lag p99 ms", "runtime's frame age",
                   "runtime CPU %", "RSS MB median", "RSS MB max", "camera CPU %", "machine CPU %",
                   "other jobs CPU %"], _cost_rows(data), right=(2, 3, 4, 5, 7, 8, 9, 10, 11, 12))
    L += ["", "The runtime's own per-frame stage times in the steady window (`--timings`: wait for the camera's "
          "next frame; decode = the capture thread's CPU on the frame, where FFmpeg decodes, while GStreamer "
          "decodes in its own threads), p50 / p99 ms; and its summary's means over the whole run:", ""]
    keys = ("wait_ms", "decode_ms", "preprocess_ms", "inference_ms")
    L += md_table(["fps", "backend", *(k.removesuffix("_ms") + " p50 / p99" for k in keys),
                   "summary means: wait / decode / inference"],
                  [[c["fps"], c["backend"],
                    *(f"{_f(t.get('p50'), '.2f')} / {_f(t.get('p99'), '.2f')}"
                      for t in ((c.get("timings_ms") or {}).get(k, {}) for k in keys)),
                    " / ".join(_f(c["stage_ms"][k], ".2f") for k in ("capture wait", "decode", "inference"))]
                   for c in data["cells"] if not c.get("error")], right=range(2, 7))
    L += ["", "## Decoding alone", "",
          "The camera's H.264 (same encoder settings, same photos) as a Matroska file, decoded to BGR as fast as "
          "each backend's OpenCV goes (no camera pacing, no inference), decoder threads at their defaults; "
          "median of the repeats.", ""]
    L += md_table(["stream", "backend", "OpenCV", "frames", "ms/frame (median)", "repeats (ms/frame)"],
                  [[f"{d['fps']} fps", d["backend"], f"error: {d['error']}", "", "", ""] if d.get("error") else
                   [f"{d['fps']} fps", d["backend"], d["opencv"], d["frames"], f"{d['ms_per_frame']:.2f}",
                    ", ".join(f"{x:.2f}" for x in d["runs_ms_per_frame"])] for d in data["decode"]],
                  right=(3, 4))
    notes = observations(data)
    L += (["", "## What this run shows", ""] + [f"- {n}" for n in notes]) if notes else []
    L += ["", "## Targets", ""]
    L += md_table(["target", "measured", "met"],
                  [[t["target"], t["measured"], "yes" if t["met"] else "NO"] for t in data["targets"]]) \
        if data["targets"] else ["No cell where the runtime's inference is faster than the camera."]
    return "\n".join(L) + "\n"


def observations(data: dict[str, Any]) -> list[str]:
    """Read off this run's own figures: start-up drops, lag well above age, a shared machine."""
    out = []
    for c in data["cells"]:
        if c.get("error"):
            continue
        name, a, g = f"{c['backend']} at {c['fps']} fps", c["age_ms"], c["lag_ms"]
        if c.get("ended_early"):
            out.append(f"{name}: the runtime ended inside the window ({c['ended_early']}); its figures cover "
                       f"{c['window']['seconds']:.1f} s")
        if c["dropped_before_window"] >= 5:
            out.append(f"{name}: {c['dropped_before_window']} of its {c['dropped']} drops came before the steady "
                       "window (the first frames arrive in a burst while the stream opens and the first inference "
                       "runs; newest frame wins)")
        if a["p50"] is not None and g["p50"] is not None and g["p50"] > a["p50"] + 2000.0 / c["fps"]:
            out.append(f"{name}: lag on the camera's clock (p50 {g['p50']:.0f} ms) is well above the runtime's own "
                       f"frame age (p50 {a['p50']:.0f} ms, from arrival in its capture thread): frames waited in the "
                       "backend before the runtime got them, or were lost before its frame counter")
    return out


def summary_lines(data: dict[str, Any]) -> list[str]:
    out = [f"CPU: {cpu_line(data)}"]
    for b in data["backends"]:
        if b["unavailable"]:
            out.append(f"unavailable: {b['unavailable']}")
    for c in data["cells"]:
        if c.get("error"):
            out.append(f"{c['backend']} {c['fps']} fps: {c['error']}")
            continue
        a, g, u, w = c["age_ms"], c["lag_ms"], c["usage"]["runtime"], c["window"]
        out.append(f"{c['backend']} {c['fps']} fps: classified {c['classified']} of {c['sent']} sent "
                   f"(dropped {c['dropped']}, {c['dropped_before_window']} at start-up); steady window "
                   f"{w['classified']} of {w['camera_frames']}; age p50/p99 {_f(a['p50'])}/{_f(a['p99'])} ms, "
                   f"lag p50/p99 {_f(g['p50'])}/{_f(g['p99'])} ms; CPU {_f(u['cpu_percent'], '.0f')}%, "
                   f"RSS {_f(u['rss_mb_max'], '.0f')} MB")
    for d in data["decode"]:
        out.append(f"decode alone, {d['backend']}, {d['fps']} fps stream: "
                   + (f"error: {d['error']}" if d.get("error") else f"{d['ms_per_frame']:.2f} ms/frame"))
    for t in data["targets"]:
        out.append(f"{t['target']}: {t['measured']} ({'met' if t['met'] else 'NOT met'})")
    return out
