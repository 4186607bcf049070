"""Speed of CNNEmbedding against a bare onnxruntime loop and PyTorch eager, in one run.

On real cell crops (Coelho 2009 nuclei), for each input size:

* ``featcell CNNEmbedding.transform``: everything, from CellSet crops to embeddings
  (percentile normalisation, aspect-preserving resize, batching, inference, pooling);
* ``bare onnxruntime run``: ``InferenceSession.run`` over the same pre-processed
  tensors, same session and batch size (on a GPU the short last batch is padded,
  as featcell does); featcell's overhead is the gap between the two;
* ``PyTorch eager``: the same network (efficientnet-lite-pytorch, ImageNet weights)
  on the same tensors, with as many threads (or on ``--torch-device cuda``);
  skipped when torch or the efficientnet packages are missing. torch is imported
  only here.

Methods are timed in interleaved rounds: the table shows each method's best round
(img/s), and featcell's overhead is given twice, as medians over rounds:

* end to end: its time relative to the bare loop timed just before it;
* inside the call: the time ``transform`` spends outside ``session.run`` (reading
  crops, percentiles, resizing, batching, pooling) relative to the time inside it,
  both from the same call, so a machine whose speed drifts between calls (a shared
  VM) does not blur it.

A last line per size gives the cells/s of featcell's preprocessing alone: the pace it
sets when the network is faster than one CPU core (a GPU, a many-core CPU); then the crop
preparation with 1 and 2 threads (its scaling), and CPU rows of the trained
:class:`~featcell.CNNClassifier` (ONNX) against a bare session on the same inputs (needs
torch to train the network; ``--trained-only`` skips the embedding rows).

Run from the repository root::

    python benchmarks/cnn_speed.py [--input-size 96 128 160] [--n-cells 256] [--threads 2]

On a GPU machine with onnxruntime-gpu::

    python benchmarks/cnn_speed.py --providers CUDAExecutionProvider CPUExecutionProvider \
        --torch-device cuda --batch-size 256 --n-cells 2716
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from featcell.cells import CellSet
from featcell.cnn import IMAGENET_MEAN, IMAGENET_STD, CNNEmbedding
from featcell.io import read_image, read_labels

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "cell_line" / "coelho2009"


def load_cells(n_cells):
    """The first ``n_cells`` hand-labelled nuclei of Coelho 2009, as a CellSet."""
    sets, total = [], 0
    for path in sorted((DATA / "images").glob("*.png")):
        found = CellSet.from_labels(
            read_image(path),
            read_labels(DATA / "labels" / path.name),
            channels=["DNA"],
            image_id=path.name,
        )
        sets.append(found)
        total += len(found)
        if total >= n_cells:
            break
    return CellSet.concat(sets)[:n_cells]


def preprocessed(embedding, cells):
    """The (N, 3, S, S) network inputs CNNEmbedding builds for these cells."""
    size = embedding.input_size_
    grey = np.empty((len(cells), size, size), np.float32)
    for rows, images in embedding._cell_inputs(cells):
        grey[rows] = images[:, 0]
    return ((grey[:, None] - IMAGENET_MEAN) / IMAGENET_STD).astype(np.float32)


def torch_runner(n_threads, device="cpu"):
    """A callable running the PyTorch eager network on a batch and its label, or Nones."""
    try:
        import torch

        sys.path.insert(0, str(ROOT / "tools"))
        from export_onnx import LiteFeatures, load_net
    except ImportError as exc:
        print(f"PyTorch eager skipped: {exc}")
        return None, None
    if n_threads is not None:
        torch.set_num_threads(n_threads)
    model = LiteFeatures(load_net(None)).eval().to(device)

    def run(x):  # numpy in, numpy out, as for onnxruntime
        with torch.inference_mode():
            return model(torch.from_numpy(x).to(device)).cpu().numpy()

    return run, f"PyTorch {torch.__version__} eager {device.upper()}"


def seconds(func):
    """Wall-clock seconds of one call of ``func``."""
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def bench_size(cells, size, args, run_torch, torch_label):
    """Time the three methods at one input size and print their rows of the table."""
    n = len(cells)
    embedding = CNNEmbedding(
        input_size=size,
        batch_size=args.batch_size,
        n_threads=args.threads,
        providers=args.providers or "auto",
    ).fit(cells)
    session, x = embedding.session_, preprocessed(embedding, cells)
    name = session.get_inputs()[0].name
    in_run = []  # seconds inside session.run, per call of the featcell method
    session_run = session.run

    def timed_run(*a, **k):
        start = time.perf_counter()
        try:
            return session_run(*a, **k)
        finally:
            in_run[-1] += time.perf_counter() - start

    def featcell():
        in_run.append(0.0)
        session.run = timed_run
        try:
            embedding.transform(cells)
        finally:
            del session.run  # back to the class method for the bare loop

    batches = [x[i : i + args.batch_size] for i in range(0, n, args.batch_size)]
    if embedding.provider_ != "CPUExecutionProvider" and len(batches[-1]) < args.batch_size:
        # fixed shapes, as featcell runs them: onnxruntime-cuda is 20-60x slower when the
        # input shape alternates between calls
        last = np.zeros((args.batch_size, *x.shape[1:]), np.float32)
        last[: len(batches[-1])] = batches[-1]
        batches[-1] = last

    def bare():
        for batch in batches:
            session.run(None, {name: batch})

    device = embedding.provider_.replace("ExecutionProvider", "")
    methods = {
        f"featcell CNNEmbedding.transform ({device})": featcell,
        f"bare onnxruntime run ({device})": bare,
    }
    if run_torch is not None:
        methods[torch_label] = lambda: [run_torch(batch) for batch in batches]
    for func in methods.values():  # warm-up: sessions, caches, allocator
        func()
    in_run.clear()
    times = {label: [] for label in methods}
    for _ in range(args.rounds):  # interleaved, so load changes hit all methods alike
        for label, func in methods.items():
            times[label].append(seconds(func))
    rates = {label: n / min(t) for label, t in times.items()}
    featcell_times, bare_times = (np.array(t) for t in list(times.values())[:2])
    bare_rate = list(rates.values())[1]
    for label, rate in rates.items():
        print(f"{size:>5}  {label:<40} {rate:8.1f}  {rate / bare_rate:10.2f}x")
    overhead = 100 * (featcell_times / bare_times - 1)  # paired: same round, back to back
    print(
        f"{size:>5}  featcell overhead, end to end vs bare loop: median {np.median(overhead):.1f} % "
        f"(range {overhead.min():.1f} to {overhead.max():.1f} % over {args.rounds} rounds)"
    )
    inside = np.array(in_run)
    own = 100 * (featcell_times - inside) / inside  # same call: time outside / inside run
    print(
        f"{size:>5}  featcell overhead, inside the call (outside / inside session.run): median "
        f"{np.median(own):.1f} % (range {own.min():.1f} to {own.max():.1f} %)"
    )
    slower = 100 * (inside / bare_times - 1)  # does featcell's work slow the network down?
    print(
        f"{size:>5}  session.run time inside transform vs bare loop: median {np.median(slower):.1f} %"
    )
    print(
        f"{size:>5}  featcell preprocessing alone (no network): "
        f"{prep_rate(embedding, cells, args.rounds):.0f} cells/s"
    )


def prep_rate(embedding, cells, rounds):
    """Cells/s of CNNEmbedding's preprocessing alone (best round): the most cells/s it can
    feed a network that is faster than itself (a GPU, many CPU cores)."""

    def prepare():
        for _ in embedding._cell_inputs(cells):
            pass

    return len(cells) / min(seconds(prepare) for _ in range(rounds))


def prep_scaling(cells, size, rounds, threads=(1, 2)):
    """Cells/s of the shared crop preparation (percentiles, resize, canvas) with 1 and 2
    threads (``featcell.cnn._preprocess._cell_batches``; its compiled loops release the GIL).

    On a loaded machine a process with two busy threads gets more of the CPU than one with
    one, so the wall-clock ratio is followed by a CPU-time figure that load does not bend:
    the share of one thread's CPU time spent inside the GIL-free loops, and the speed-up it
    allows with two threads (Amdahl: the rest holds the GIL and runs one thread at a time).
    """
    from featcell.cnn import _preprocess
    from featcell.cnn._preprocess import _cell_batches

    rates = {}
    for n in threads:

        def prepare(n=n):
            for _ in _cell_batches(cells, cells.channel_names, size, percentiles=(1.0, 99.8),
                                   n_threads=n):
                pass

        prepare()  # warm-up
        rates[n] = len(cells) / min(seconds(prepare) for _ in range(rounds))
    base = rates[threads[0]]
    for n, rate in rates.items():
        print(f"{size:>5}  crop preparation, {n} thread(s){'':<17} {rate:8.1f}  "
              f"{rate / base:10.2f}x (vs 1 thread)")
    inside = [0.0]  # thread CPU seconds inside the compiled loops

    def timed(kernel):
        def run(*a):
            start = time.thread_time()
            try:
                return kernel(*a)
            finally:
                inside[0] += time.thread_time() - start
        return run

    kernels = {name: getattr(_preprocess, name) for name in ("_ranges_kernel", "_resize_kernel")}
    shares = []
    try:
        for name, kernel in kernels.items():
            setattr(_preprocess, name, timed(kernel))
        for _ in range(rounds):
            inside[0], start = 0.0, time.thread_time()
            for _ in _cell_batches(cells, cells.channel_names, size, percentiles=(1.0, 99.8)):
                pass
            shares.append(inside[0] / (time.thread_time() - start))
    finally:
        for name, kernel in kernels.items():
            setattr(_preprocess, name, kernel)
    share = float(np.median(shares))
    print(f"{size:>5}  crop preparation: {100 * share:.1f} % of one thread's CPU time in the "
          f"GIL-free loops; 2 threads can reach {1 / (1 - share + share / 2):.2f}x (Amdahl)")


def bench_trained(cells, args):
    """CPU rows of the trained models: CNNClassifier.predict_proba (ONNX) against a bare
    session.run on the same prepared inputs. The network is trained for one short epoch:
    its speed does not depend on how well it is trained."""
    try:
        import torch  # noqa: F401
    except ImportError:
        print("trained models skipped: torch is not installed (featcell[train])")
        return
    from featcell.cnn import CNNClassifier

    y = np.arange(len(cells)) % 2
    for size in args.input_size:
        clf = CNNClassifier(input_size=size, max_epochs=1, n_threads=args.threads,
                            groups=None).fit(cells, y)
        session = clf.session_
        x = clf._inputs(cells)

        def featcell():
            clf.predict_proba(cells)

        def bare():
            for i in range(0, len(x), 256):
                session.run(None, {"input": x[i : i + 256]})

        featcell(), bare()
        t_featcell = min(seconds(featcell) for _ in range(args.rounds))
        t_bare = min(seconds(bare) for _ in range(args.rounds))
        n = len(cells)
        print(f"{size:>5}  {'CNNClassifier.predict_proba (CPU)':<40} {n / t_featcell:8.1f}  "
              f"{t_bare / t_featcell:10.2f}x")
        print(f"{size:>5}  {'bare onnxruntime run, trained net (CPU)':<40} {n / t_bare:8.1f}  "
              f"{1.0:10.2f}x   ({clf.n_parameters_} parameters, ONNX "
              f"{len(clf.network_) / 1e6:.2f} MB)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-size", type=int, nargs="+", default=[96, 128])
    parser.add_argument("--n-cells", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--providers", nargs="+", default=None, help="default: auto")
    parser.add_argument("--torch-device", default="cpu", help="PyTorch device, e.g. cuda")
    parser.add_argument("--trained-only", action="store_true",
                        help="only the preparation scaling and the trained models' rows")
    parser.add_argument("--prep-only", action="store_true",
                        help="only the crop preparation with 1 and 2 threads (its scaling)")
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        sys.exit(f"Coelho 2009 data not found at {DATA}")

    cells = load_cells(args.n_cells)
    threads = args.threads
    run_torch, torch_label = (None, None) if args.prep_only else torch_runner(
        threads, args.torch_device
    )
    print(
        f"{len(cells)} real nuclei (Coelho 2009), median crop "
        f"{np.median(cells.crop_shapes, axis=0).astype(int).tolist()} px, batch "
        f"{args.batch_size}, intra-op threads {threads or 'onnxruntime default'}, "
        f"onnxruntime {ort.__version__}"
    )
    header = f"{'input':>5}  {'method':<40} {'img/s':>8}  {'vs bare ORT':>11}"
    print(header)
    print("-" * len(header))
    if not (args.trained_only or args.prep_only):
        for size in args.input_size:
            bench_size(cells, size, args, run_torch, torch_label)
    for size in args.input_size:
        prep_scaling(cells, size, args.rounds)
    if not args.prep_only:
        bench_trained(cells, args)


if __name__ == "__main__":
    main()
