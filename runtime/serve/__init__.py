"""Watch and ask the device: `catdog-runtime SOURCE --serve [HOST:]PORT` serves the live annotated
stream (MJPEG), the newest prediction (JSON and Server-Sent Events), POST /api/predict with dynamic
batching, /healthz and Prometheus /metrics, beside every output the run already has. The [serve]
extra (Starlette, uvicorn, prometheus-client), imported only on this path. Imports the spine, the
engine and live; takes its own ServeOptions (options.py), never the whole run's."""
