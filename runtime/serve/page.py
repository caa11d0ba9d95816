"""The page at /: one self-contained HTML file (no CDN, no fonts, no internet: the device is often
offline). The stream is an <img> on /stream.mjpg; the label, top-k bars, FPS and stage times come
from /api/events (Server-Sent Events); both carry the session cookie the token set. The empty
data: icon keeps browsers from asking for /favicon.ico: a 404 (or a 401 with a token) on every
visit, and an error in the console."""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>catdog-edge live</title><link rel="icon" href="data:,">
<style>
body{font-family:system-ui,sans-serif;margin:0;background:#111;color:#eee;display:flex;flex-wrap:wrap}
#view{flex:2 1 480px;padding:12px}#view img{width:100%;max-width:960px;background:#000;min-height:120px}
#side{flex:1 1 280px;padding:12px}h1{font-size:1.1em;margin:0 0 8px}
#label{font-size:2.2em;font-weight:600}#score{color:#9c9}.unsure{color:#fc6}
.bar{background:#333;margin:4px 0;height:20px;position:relative}
.bar span{position:absolute;left:6px;top:1px;font-size:.85em}.bar div{background:#3a7;height:100%}
table{border-collapse:collapse;margin-top:10px;font-size:.9em}td{padding:2px 10px 2px 0}
#meta{color:#999;font-size:.85em;margin-top:10px}
</style></head><body>
<div id="view"><img id="stream" src="stream.mjpg" alt="live stream"></div>
<div id="side"><h1>catdog-edge</h1>
<div id="label">waiting...</div><div id="score"></div><div id="bars"></div>
<table id="stages"
 title="this frame: capture wait = for the next camera frame, decode = capture thread CPU, age = arrival to label">
</table><div id="meta"></div><div id="updates" data-count="0"></div></div>
<script>
const $ = id => document.getElementById(id);
function show(p) {
  $("label").textContent = p.label; $("label").className = p.unsure ? "unsure" : "";
  $("score").textContent = "score " + p.score.toFixed(3) + (p.frame != null ? "  frame " + p.frame : "");
  $("bars").innerHTML = "";
  for (const [name, prob] of p.topk) {
    const bar = document.createElement("div"); bar.className = "bar";
    const fill = document.createElement("div"); fill.style.width = (100 * prob).toFixed(1) + "%";
    const text = document.createElement("span"); text.textContent = name + " " + prob.toFixed(3);
    bar.append(fill, text); $("bars").append(bar);
  }
  const rows = [["FPS", (p.fps || 0).toFixed(1)]].concat(Object.entries(p.stage_ms || {}).map(
    ([k, v]) => [k, v.toFixed(2) + " ms"]));
  $("stages").innerHTML = "";
  for (const [k, v] of rows) { const tr = $("stages").insertRow(); tr.insertCell().textContent = k;
    tr.insertCell().textContent = v; }
  $("meta").textContent = p.model + " on " + p.provider + " | " + p.source;
  const u = $("updates"); u.dataset.count = String(Number(u.dataset.count) + 1);
}
let events = null;
function listen() { events = new EventSource("api/events"); events.onmessage = e => show(JSON.parse(e.data)); }
listen();
// A page left for another keeps living in the back/forward cache, and with it its MJPEG stream
// (one of the server's --max-viewers slots) and its event stream: let both go on the way out and
// open them again if the page is brought back.
addEventListener("pagehide", () => { events.close(); $("stream").removeAttribute("src"); });
addEventListener("pageshow", e => { if (e.persisted) { $("stream").src = "stream.mjpg"; listen(); } });
</script></body></html>
"""
