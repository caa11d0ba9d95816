"""`catdog-runtime SOURCE --ray [ADDRESS] --out OUT`: the same torch-free runtime on a Ray cluster.

The driver lists the inputs, checks the model, ships its bytes once through the object store and
streams blocks of paths through a pool of actors (scale_actor.ClassifyBlock: one onnxruntime session
each, the spine's decode and preprocessing); each block of results comes back to the driver and is
written as one Parquet part file (scale_parts). Without ADDRESS a local Ray starts (and stops) here;
with one the run joins that cluster. Imported only on the --ray path: ray never loads otherwise.

Actors read the bytes themselves (from paths, or URIs through pyarrow) rather than through
ray.data.read_binary_files: a file that cannot be read would fail a read task, and with it the job,
where here it becomes an error row; and a resume needs the list of inputs on the driver anyway."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from catdog.runtime.engine.stats import model_line, summary_text
from catdog.runtime.scale import LOCAL
from catdog.runtime.scale.options import ScaleOptions
from catdog.runtime.spine.boundary import Terminated, interrupt_reason, say
from catdog.runtime.spine.errors import CatdogError, ClusterError, InputError, error_line

if TYPE_CHECKING:
    from catdog.runtime.engine.classifier import Classifier

GPU_PROVIDERS = ("cuda",)
RAY_PROVIDERS = ("cpu", *GPU_PROVIDERS)
# CPUs the actor pool never reserves, so Ray Data's own tasks (reads, splits) can always be scheduled:
# a pool that reserves every CPU starves them and the job waits forever (seen on 2 CPUs).
RESERVE_CPUS = 0.5
MAX_BLOCK_ROWS = 1024  # rows per part file at most: resume granularity vs number of files
BLOCKS_PER_ACTOR = 8  # at least this many blocks per actor when inputs allow: the tail stays short

Log = Callable[[str], None]


@dataclass(frozen=True)
class Plan:
    """How the pool is laid out on the cluster (all per actor except `actors` and `block_rows`)."""

    actors: int
    threads: int  # onnxruntime intra-op threads
    workers: int  # decode threads
    num_cpus: float  # what Ray reserves; may be below threads + workers (they share the cores)
    num_gpus: float
    block_rows: int  # inputs per map_batches call, per result block, per part file


def make_plan(cpus: float, gpus: float, inputs: int, *, actors: int | None, threads: int | None, workers: int,
              batch: int, provider: str, gpus_per_actor: float) -> Plan:
    """Defaults that fit any cluster: one single-threaded actor per CPU (one GPU per actor with
    cuda), every reservation fractional and below the cluster's size less RESERVE_CPUS."""
    usable = max(cpus - RESERVE_CPUS, 0.1)
    if provider in GPU_PROVIDERS:
        if gpus < gpus_per_actor:
            raise ClusterError(f"--provider {provider}: the Ray cluster has {gpus:g} GPU(s), an actor needs "
                               f"{gpus_per_actor:g}; add GPU nodes, lower --gpus-per-actor, or use --provider cpu")
        n = actors or max(1, int(gpus // gpus_per_actor))
        if n * gpus_per_actor > gpus + 1e-9:
            raise ClusterError(f"--actors {n} x --gpus-per-actor {gpus_per_actor:g} needs {n * gpus_per_actor:g} "
                               f"GPUs; the cluster has {gpus:g} (Ray would wait for them forever)")
        want, gpu = float(workers), gpus_per_actor
    else:
        n = actors or max(1, int(cpus // (threads or 1)))
        want, gpu = float(threads or 1), 0.0
    per_actor = math.ceil(inputs / (n * BLOCKS_PER_ACTOR))
    rows = min(MAX_BLOCK_ROWS, max(batch, math.ceil(per_actor / batch) * batch))
    n = min(n, math.ceil(inputs / rows))  # an actor without a block would only cost start-up
    num_cpus = math.floor(1000 * min(want, usable / n)) / 1000  # rounded down: the sum stays within `usable`
    return Plan(n, threads or 1, workers, num_cpus, gpu, rows)


@dataclass
class Outcome:
    """What a run did; `arrivals` are (seconds since the pool started, rows) per block received."""

    inputs: int = 0
    skipped: int = 0  # already in OUT (--resume)
    rows: int = 0
    errors: int = 0
    parts: int = 0
    ray_start_s: float = 0.0
    run_s: float = 0.0
    stop: KeyboardInterrupt | None = None  # the Ctrl-C or SIGTERM (boundary.Terminated) that ended the run
    set_aside: int = 0  # parts --resume could not vouch for, moved aside (scale_parts)
    arrivals: list[tuple[float, int]] = field(default_factory=list)
    plan: Plan | None = None  # None: nothing was left to do
    model: str = ""
    cluster: str = ""

    @property
    def interrupted(self) -> bool:
        return self.stop is not None

    @property
    def first_result_s(self) -> float | None:
        return self.arrivals[0][0] if self.arrivals else None

    def steady_ips(self) -> float | None:
        """Images/s once every actor has delivered a block (start-up and first batches excluded)."""
        k = min(self.plan.actors if self.plan else 1, len(self.arrivals) - 1)
        if k < 1:
            return None
        t0, t1 = self.arrivals[k - 1][0], self.arrivals[-1][0]
        rows = sum(n for _, n in self.arrivals[k:])
        return rows / (t1 - t0) if t1 > t0 else None

    @property
    def overall_ips(self) -> float:
        return self.rows / self.run_s if self.run_s > 0 else 0.0


def start_ray(address: str) -> tuple[Any, str]:
    """ray.init for `address` (LOCAL: a new local instance on this machine). Returns (ray, how)."""
    import signal
    import threading

    try:
        import ray
    except ImportError:
        raise ClusterError("--ray needs Ray: pip install 'catdog-edge[ray]'") from None
    # ray.init replaces the SIGTERM handler with sys.exit(15): the run would end with exit 15 and no
    # word. The CLI's (boundary.Terminated) makes SIGTERM stop it as Ctrl-C does: parts kept, summary,
    # 143. A default handler is not put back: it would kill the driver before ray.shutdown.
    main = threading.current_thread() is threading.main_thread()
    on_sigterm = signal.getsignal(signal.SIGTERM) if main else None
    if on_sigterm is signal.SIG_DFL:
        on_sigterm = None
    try:
        if address == LOCAL:
            ray.init(address=LOCAL, include_dashboard=False)
        else:
            ray.init(address=address)
    except Exception as e:  # noqa: BLE001 - ray raises ConnectionError, ValueError, RuntimeError for a bad address
        hint = ("start one with `ray start --head`, or pass its address (HOST:6379, ray://HOST:10001, auto); "
                "a cluster with token authentication also needs RAY_AUTH_MODE=token and its token")
        raise ClusterError(f"cannot {'start a local Ray' if address == LOCAL else 'join the Ray cluster at ' + address}"
                           f" ({error_line(e)}); {hint}") from None
    finally:
        if on_sigterm is not None:
            signal.signal(signal.SIGTERM, on_sigterm)
    return ray, "local Ray" if address == LOCAL else f"Ray cluster at {address}"


def classify(ray: Any, sources: Sequence[str], plan: Plan, actor_kwargs: dict[str, Any],
             write: Callable[[Any], Any], outcome: Outcome) -> None:
    """Stream `sources` through the actor pool; `write` gets each result block as it arrives."""
    import pyarrow as pa

    from catdog.runtime.scale.actor import ClassifyBlock

    n, rows = len(sources), plan.block_rows
    blocks = [pa.table({"source": pa.array(sources[i:i + rows], pa.string())}) for i in range(0, n, rows)]
    ds = ray.data.from_arrow(blocks).map_batches(
        ClassifyBlock, fn_constructor_kwargs=actor_kwargs, batch_size=rows, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=plan.actors), num_cpus=plan.num_cpus,
        num_gpus=plan.num_gpus or None)
    t0 = time.perf_counter()
    try:
        for table in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            write(table)
            outcome.parts += 1
            outcome.rows += table.num_rows
            outcome.errors += table.num_rows - table.column("error").null_count
            outcome.arrivals.append((time.perf_counter() - t0, table.num_rows))
    except KeyboardInterrupt as e:
        outcome.stop = e
    except CatdogError:
        raise  # the part writer's OutputError: already one line that says what to do
    except Exception as e:  # noqa: BLE001 - Ray wraps a worker's failure (an actor that cannot start) in pages
        raise ClusterError(f"the Ray job stopped: {error_line(e, last=True)}; {outcome.rows} result(s) are "
                           "kept, finish with --resume once that is fixed") from None
    outcome.run_s = time.perf_counter() - t0


def _model(o: ScaleOptions, provider: str) -> tuple[Path, Classifier]:
    """The model file and a driver-side Classifier: a bad model, label file or spec fails here,
    before Ray starts, with the same message as a single-process run."""
    from catdog.runtime.engine.classifier import Classifier
    from catdog.runtime.engine.shipped import resolve_model

    path = resolve_model(o.model, provider)
    clf = Classifier.from_file(path, provider="cpu", threads=1, labels=o.labels, spec=o.spec.overrides(),
                               batch_size=o.batch, unsure_below=o.unsure_below, full_decode=o.full_decode, log=None)
    return path, clf


def actor_provider(provider: str) -> str:
    """What the actors run: --provider auto is cpu (a driver without a GPU says nothing of the
    workers); refuses a provider the actors cannot run."""
    got = "cpu" if provider == "auto" else provider
    if got not in RAY_PROVIDERS:
        raise InputError(f"--provider {provider}: --ray actors run on {' or '.join(RAY_PROVIDERS)}")
    return got


def execute(o: ScaleOptions, log: Log | None = None) -> Outcome:
    """A --ray run, up to the summary (the benchmark calls this too);
    `log` gets the lines about parts a resume cannot count (stderr by default)."""
    from catdog.runtime.scale.parts import Job, PartWriter
    from catdog.runtime.scale.sources import list_sources
    from catdog.runtime.spine.fileio import file_sha256

    provider = actor_provider(o.provider)
    sources = list_sources(o.source, o.recursive)  # before the model and Ray: a typo fails fast
    path, clf = _model(o, provider)
    writer = PartWriter(o.out, Job(path.name, file_sha256(path), clf.classes), log or say)
    todo = writer.open(sources, o.resume)
    r = Outcome(inputs=len(sources), skipped=len(sources) - len(todo), set_aside=writer.set_aside,
                model=model_line(clf))
    if not todo:
        return r
    t0 = time.perf_counter()
    ray, where = start_ray(o.address)
    r.ray_start_s = time.perf_counter() - t0
    try:
        res = ray.cluster_resources()
        r.cluster = f"{where}: {res.get('CPU', 0):g} CPU, {res.get('GPU', 0):g} GPU"
        r.plan = make_plan(res.get("CPU", 0.0), res.get("GPU", 0.0), len(todo), actors=o.actors, threads=o.threads,
                           workers=o.workers, batch=clf.batch_size, provider=provider,
                           gpus_per_actor=o.gpus_per_actor)
        model_ref = ray.put(path.read_bytes())  # once; every actor reads the same object
        kwargs = {"model_ref": model_ref, "model_name": path.name, "provider": provider, "threads": r.plan.threads,
                  "workers": r.plan.workers, "batch": clf.batch_size, "labels": clf.classes, "spec": clf.spec,
                  "unsure_below": o.unsure_below, "full_decode": o.full_decode, "device_id": o.device_id}
        classify(ray, todo, r.plan, kwargs, writer.write, r)
    finally:
        ray.shutdown()
    return r


def run_scaled(o: ScaleOptions, log: Log | None = None) -> int:
    """execute(), then the summary on stderr; the exit code: 0, 1 if some inputs failed, 130 if
    interrupted, 143 if terminated (as without --ray)."""
    from catdog.runtime.spine.boundary import interrupt_exit

    log, out = log or say, o.out
    r = execute(o, log)
    if r.plan is None:
        log(f"-- nothing to do: all {r.inputs} input(s) are in {out}")
        return 0
    summary(log, r, out)
    if r.stop is not None:
        return interrupt_exit(r.stop)
    return 1 if r.errors else 0


def summary(log: Log, r: Outcome, out: Path) -> None:
    """Plain aligned lines on stderr, like the single-process summary."""
    plan = r.plan
    assert plan is not None
    steady, first = r.steady_ips(), r.first_result_s
    rows = [
        ("model", r.model),
        ("cluster", r.cluster),
        ("actors", f"{plan.actors} x ({plan.threads} onnxruntime + {plan.workers} decode threads), "
                   f"{plan.num_cpus:g} CPU{f' {plan.num_gpus:g} GPU' if plan.num_gpus else ''} reserved each; "
                   f"blocks of {plan.block_rows}"),
        ("start-up", f"Ray {r.ray_start_s:.1f} s; then the first result {first:.1f} s later (the actors' start "
                     f"and their first block of {plan.block_rows})" if first is not None
         else f"Ray {r.ray_start_s:.1f} s; no result"),
        ("items", f"{r.rows - r.errors} ok, {r.errors} failed" + (f", {r.skipped} done earlier" if r.skipped else "")),
        ("throughput", (f"{steady:.1f} images/s steady, " if steady else "")
         + f"{r.overall_ips:.1f} images/s over {r.run_s:.2f} s with start-up"),
        ("output", f"{out} ({r.parts} new part file(s)"
                   + (f"; {r.set_aside} earlier part(s) set aside as _*.bad" if r.set_aside else "") + ")"),
    ]
    stopped = "terminated" if isinstance(r.stop, Terminated) else "interrupted"
    title = f"{stopped} ({interrupt_reason(r.stop)}): finish with --resume" if r.stop is not None \
        else f"{r.inputs} input(s) on Ray"
    log(summary_text(title, rows))
