"""`catdog-bench serve`: what --serve costs: the server and its loads (load), the fault mix
(faults), and the run end to end with its report (run)."""
