"""Live input and output: what SOURCE means, frame capture (newest frame only for cameras and
streams), the --show window, result sinks (table, JSON lines, CSV), the overlay and --save video,
and the frame loop. Imports the spine and the engine."""
