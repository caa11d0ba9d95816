"""`catdog-bench live`: the runtime on a real RTSP camera, measured from outside: the camera
(rtsp_camera.py) and the helpers run under other Pythons (live_tools.py), both run by path, never
imported; one cell measured (measure), the report (report), the run end to end (run)."""
