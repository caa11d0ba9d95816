"""How a long command behaves as a process: progress bars (progress), a Ctrl-C that cannot be lost
(interrupt), output folders removed again when a command wrote nothing into them (outdir). Knows
nothing about training; imports nothing else from catdog.train."""
