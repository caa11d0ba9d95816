"""Scale-out on Ray Data (`catdog-runtime SOURCE --ray`): the driver, the actor that runs the same
Classifier, the Parquet part files and their manifest, the input listing. The [ray] extra; ray is
imported only on this path. Imports the spine, the engine and live sources; takes its own
ScaleOptions (options.py), never the whole run's."""

LOCAL = "local"  # `--ray` alone: Ray's own address for "start a new local instance" (cli.ray_alone, driver)
