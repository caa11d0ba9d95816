"""catdog.export: checkpoint -> TorchScript and ONNX (fp32, fp16, INT8, baked preprocessing), with
parity gates, in rooms by concept; each room imports only the rooms above it in this list, train
and the runtime (tests/test_layout.py checks it):

    options.py   one export's settings and the one home of their defaults.
    builders/    a model or graph made into an artifact: torchscript, onnx_export, tta, bake, fp16,
                 simplify, and the metadata stamped into each (meta).
    int8/        quantize, qdq_surgery, sensitivity, int8_choice.
    artifacts/   export's side of the artifact table (formats) and the build order (build).
    verify/      the calibration and parity photos (images), parity and its gates (parity).
    output/      what lands in --out: staging, publish, report, report_sections, gallery.
    pipeline.py  one export, end to end.
    cli.py       the entry module; nothing imports it."""
