"""One training run: one pass over the data (engine), the epochs (epochs), the run from data to run
folder (fit), --resume (resume), the run folder's files and plots (rundir, plots), DDP (dist), the
linear probe (probe) and a checkpoint's accuracy and calibration (evaluate)."""
