"""catdog.runtime: the torch-free layer (numpy, OpenCV, onnxruntime). It also holds the spine that
every stage above shares: PreprocessSpec, preprocess() and the model metadata schema.

Imports here stay light: onnxruntime and OpenCV load only when a function needs them, so that
`import catdog.runtime` is cheap and cold start stays close to a bare onnxruntime script."""

from catdog.runtime.errors import CatdogError
from catdog.runtime.spec import PreprocessSpec

__all__ = ["CatdogError", "PreprocessSpec"]
