"""What every catdog-bench command's report shares: what a run is asked (config), the machine
(env), report.json's records (schema), how anything is timed (timing), report.md, ratios and
compare (report), and the PNG charts (charts)."""
