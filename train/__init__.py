"""catdog.train: data, models, the training loop and checkpoints, in rooms by concept; the path says
which room a file is in and what it may import (tests/test_layout.py checks it). Each room imports
only the rooms above it in this list, and the runtime:

    plumbing/   progress bars, Ctrl-C that cannot be lost, output folders removed when unused.
    recipe.py   the training recipe (TrainConfig) and the optimizer/scheduler/AMP/device it implies.
    options.py  what each catdog-train command is told, one frozen dataclass per command.
    presets.py  named recipes: the seeds' exercises and the shipped model's recipe, as data.
    models/     the registry, the families, --weights loading, checkpoints (checkpoint).
    data/       datasets (split, decode, loaders), CIFAR archives and their cache, prepare and stats.
    loop/       one training run: engine (one pass), epochs, fit, resume, rundir, plots, dist (DDP),
                probe (the linear probe), evaluate (a checkpoint's accuracy, calibration).
    studies/    cv (k-fold cross-validation of a recipe), bench (training throughput).
    run.py      the train, probe and cv commands as the library runs them.
    cli.py      the entry module (parse, call the library); nothing imports it."""
