"""scripts/bad_inputs.py's rows for issue 32's outputs over inputs, a failed run's folders, a foreign
file in a --ray --out, and training data or options that used to train the wrong model silently
(a file of its own: bad_inputs.py stays under the 300-line house limit). Imports catdog only."""

from __future__ import annotations

import shutil
from pathlib import Path


def corpus_issue32(t: Path, p: dict[str, Path]) -> None:
    """Adds to bad_inputs.build_corpus's folder `t` (its tiny.onnx, nometa.onnx, flat/ and run/ are used)."""
    import pyarrow as pa

    from catdog.runtime.scale.parts import Job, PartWriter, schema
    from catdog.runtime.spine.fileio import file_sha256

    shutil.copy(p["model"], t / "victim.onnx")
    (t / "labels.txt").write_text("cat\ndog\n")
    # A finished --ray --out of tiny.onnx (one part), and a copy of that part under another name.
    photo = str(t / "flat" / "cat.168.jpg")
    w = PartWriter(t / "ray-out", Job("tiny.onnx", file_sha256(p["model"]), ("cat", "dog")), log=print)
    w.open([photo], resume=False)
    part = w.write(pa.table({"source": [photo], "label": ["cat"], "score": [0.9], "probs": [{"cat": 0.9, "dog": 0.1}],
                             "error": [None]}, schema=schema(("cat", "dog"))))
    shutil.copy(part, t / "ray-out" / "extra.parquet")
    for name in ("unreadable-class", "linked-class"):  # cat/ and dog/ class folders of flat/'s photos
        for ph in sorted((t / "flat").iterdir()):
            cls = ph.name.split(".")[0]
            (t / name / cls).mkdir(parents=True, exist_ok=True)
            if name == "unreadable-class" and cls == "dog":
                (t / name / cls / ph.name).write_text("not a photo\n")
            else:
                shutil.copy(ph, t / name / cls / ph.name)
    (t / "linked-class" / "cat" / "more").symlink_to("../dog", target_is_directory=True)
    (t / "e-ro").mkdir()
    (t / "e-ro" / "model.onnx").write_text("an export the user locked\n")
    (t / "e-ro" / "model.onnx").chmod(0o444)


def cases_issue32(t: Path, p: dict[str, Path], tiny: list) -> list[tuple[str, list, dict]]:
    rt, tr, ex, photo = ["catdog-runtime"], ["catdog-train"], ["catdog-export"], p["photo"]
    return [
        ("--csv naming the model", rt + [photo, "--model", t / "victim.onnx", "--csv", t / "victim.onnx"], {}),
        ("--csv naming the --labels file",
         rt + [photo, "--model", t / "nometa.onnx", "--labels", t / "labels.txt", "--csv", t / "labels.txt"], {}),
        ("bad model, --csv in new folders (none left behind)",
         rt + [photo, "--model", t / "readme.onnx", "--csv", t / "leftover" / "deep" / "x.csv"], {}),
        ("--ray --resume, a foreign Parquet file in --out",
         rt + [t / "flat", "--model", p["model"], "--ray", "--out", t / "ray-out", "--resume"], {}),
        ("train: a class whose images are all unreadable",
         tr + ["--data", t / "unreadable-class", "--out", t / "r5", *tiny], {}),
        ("train: a symlink from one class folder into another",
         tr + ["--data", t / "linked-class", "--out", t / "r6", *tiny], {}),
        ("train: mistyped --arch-kw",
         tr + ["--data", t / "flat", "--out", t / "r7", *tiny, "--arch-kw", "dropuot=0.1"], {}),
        ("export: read-only model.onnx in --out",
         ex + ["--ckpt", t / "run" / "last.pth", "--out", t / "e-ro", "--parity", t / "flat"], {}),
    ]
