"""catdog.benchmarks: latency, throughput, cold start, memory and accuracy reports across artifacts
and providers, in rooms by what each measures; each room imports only the rooms above it in this
list, export, train and the runtime (tests/test_layout.py checks it):

    common/     what every command's report shares: what a run is asked (config), the machine
                (env), report.json's records (schema), how anything is timed (timing), report.md,
                the headline ratios and compare (report), the PNG charts (charts).
    grid/       exported artifacts' speed: what to run (artifacts), on which provider (runners),
                the latency grid (measure), a model's GFLOPs against the machine's peak (compute).
    run/        the rest of `catdog-bench run`: accuracy, overhead and pipeline (sections), the
                runtime against hand-written and torch contenders (contenders, bare_* scripts),
                large photos (large), and the run end to end (bench).
    scale.py    `catdog-bench scale`: --ray's images/s against a single process.
    doctor.py   `catdog-bench doctor`: each provider proved by a real inference, OpenCV, cameras.
    int8/       `catdog-bench int8`: INT8 against fp32 on this CPU (bench), its report (report).
    serve/      `catdog-bench serve`: --serve's load (load), the fault mix (faults), end to end (run).
    live/       `catdog-bench live`: a real RTSP camera (rtsp_camera.py, run by path under Debian's
                python3) and the runtime measured from outside (measure), helpers run under other
                Pythons (live_tools.py), its report (report), end to end (run).
    cli.py      the entry module; nothing imports it."""
