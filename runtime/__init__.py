"""catdog.runtime: the torch-free layer (numpy, OpenCV, onnxruntime), in rooms by job; the path
says which room a file is in and what it may import (tests/test_layout.py checks it):

    spine/    shared by every stage: spec, preprocess, metadata, images, fileio, folders, metrics,
              labels, artifacts, isa, errors, boundary; records (the result record: Prediction,
              Failure) and serialize (its every output shape). Imports nothing above it.
    engine/   session, providers, trt, classifier, fit, stats, shipped. Imports the spine.
    live/     sources, capture, window, sinks, video, loop. Imports the spine and the engine.
    scale/    Ray Data driver, actor, parts, sources ([ray] extra), its own ScaleOptions. Imports the
              rooms above.
    options.py  RunOptions: every flag's default, help and range. Imports the spine.
    run.py    one catdog-runtime run, as the library does it. Imports every room but cli.
    cli/      the entry module (parse, call run.run); nothing imports it.

Imports here stay light: onnxruntime and OpenCV load only when a function needs them, so that
`import catdog.runtime` is cheap and cold start stays close to a bare onnxruntime script."""

from catdog.runtime.spine.errors import CatdogError
from catdog.runtime.spine.spec import PreprocessSpec

__all__ = ["CatdogError", "PreprocessSpec"]
