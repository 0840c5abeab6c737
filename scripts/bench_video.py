"""Benchmark: building a clip's views vs. decoding every frame (time and peak memory).

Makes a 10 s, 1280x720, 30 fps H.264 clip with PyAV in a temporary folder, then runs each
measurement in its own fresh subprocess so peak memories do not mix:

* ``views``: ``preresq.data.video.load_views`` with the default settings
  (``configs/video/default.yaml``), decord backend, then the same with PyAV;
* ``all``: every frame decoded to RGB with decord and kept (what extracting all frames
  first costs), and every frame decoded but none kept.

Time is the median wall time and the process CPU time (all threads) of the operation
(opening the file included, imports excluded); CPU time is the steadier figure on a busy
machine. Peak memory is the subprocess's
``ru_maxrss`` minus its RSS just before the operation (the interpreter and libraries).

Usage: ``OMP_NUM_THREADS=1 python scripts/bench_video.py [--repeats 3] [--gop 250]``
(x264's default keyframe interval, 250, is the hard case: the views then decode nearly
every frame up to the last one they need and save only the colour conversion, copies and
memory; ``--gop 30`` is closer to streamed video.)
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

WIDTH, HEIGHT, FPS, SECONDS = 1280, 720, 30, 10


def make_clip(path: Path, gop: int) -> None:
    """A slow pan across a natural photo (scikit-image's astronaut, enlarged) with light
    sensor-like grain, so the bitrate is that of ordinary 720p footage, H.264."""
    import av
    import numpy as np
    from PIL import Image
    from skimage import data

    margin = FPS * SECONDS  # one pixel of pan per frame
    photo = Image.fromarray(data.astronaut()).resize((WIDTH + margin, HEIGHT + margin // 2),
                                                     Image.Resampling.BICUBIC)
    pixels = np.asarray(photo).astype(np.int16)
    rng = np.random.default_rng(0)
    grain = rng.normal(0, 3, size=(4, HEIGHT, WIDTH, 1)).astype(np.int16)  # a few fields, reused
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.gop_size = gop
        stream.codec_context.time_base = Fraction(1, FPS)
        stream.options = {"preset": "veryfast", "crf": "23"}
        for i in range(FPS * SECONDS):
            window = pixels[i // 2:i // 2 + HEIGHT, i:i + WIDTH] + grain[i % len(grain)]
            frame = av.VideoFrame.from_ndarray(np.clip(window, 0, 255).astype(np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def measure(kind: str, path: str) -> dict:
    """Run one operation in this process; return its time and memory."""
    import av  # noqa: F401  (both decoders are loaded before the baseline RSS is read)
    import decord

    from preresq.data import video

    cfg = video.default_config()
    before = _rss_mb()
    start, cpu_start = time.perf_counter(), time.process_time()
    if kind == "views_decord":
        views = video.load_views(path, **{**cfg, "backend": "decord"})
        detail = [v.size for v in views]
    elif kind == "views_pyav":
        views = video.load_views(path, **{**cfg, "backend": "pyav"})
        detail = [v.size for v in views]
    else:
        vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
        kept = []
        for i in range(len(vr)):
            frame = vr[i].asnumpy()
            if kind == "all_keep":
                kept.append(frame)
        detail = f"{len(vr)} frames, {sum(f.nbytes for f in kept) / 2**20:.0f} MiB kept"
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"kind": kind, "seconds": seconds, "cpu": cpu, "peak_mb": peak - before,
            "detail": str(detail)}


def run_child(kind: str, path: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--measure", kind, str(path)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="runs per operation (median)")
    parser.add_argument("--gop", type=int, default=250, help="keyframe interval (x264 default 250)")
    parser.add_argument("--measure", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return
    with tempfile.TemporaryDirectory(prefix="bench_video_") as tmp:
        path = Path(tmp) / "clip.mp4"
        t = time.perf_counter()
        make_clip(path, args.gop)
        mbps = path.stat().st_size * 8 / SECONDS / 1e6
        print(f"clip: {WIDTH}x{HEIGHT}, {FPS} fps, {SECONDS} s, H.264 (x264 veryfast, crf 23, "
              f"gop {args.gop}), {mbps:.1f} Mbit/s, made in {time.perf_counter() - t:.1f} s")
        rows = {}
        for kind in ("views_decord", "views_pyav", "all_keep", "all_drop"):
            runs = [run_child(kind, path) for _ in range(args.repeats)]
            rows[kind] = {"seconds": statistics.median(r["seconds"] for r in runs),
                          "cpu": statistics.median(r["cpu"] for r in runs),
                          "peak_mb": max(r["peak_mb"] for r in runs), "detail": runs[0]["detail"]}
    print(f"{'operation':<44} {'wall (s)':>9} {'CPU (s)':>9} {'peak MiB':>9}")
    names = {"views_decord": "views, decord (default)", "views_pyav": "views, PyAV fallback",
             "all_keep": "every frame decoded and kept (decord)",
             "all_drop": "every frame decoded, none kept (decord)"}
    for kind, row in rows.items():
        print(f"{names[kind]:<44} {row['seconds']:>9.2f} {row['cpu']:>9.2f} {row['peak_mb']:>9.0f}"
              f"   {row['detail']}")
    base = rows["all_keep"]
    for kind in ("views_decord", "views_pyav"):
        print(f"{names[kind]}: {base['seconds'] / rows[kind]['seconds']:.1f}x faster (wall), "
              f"{base['cpu'] / rows[kind]['cpu']:.1f}x less CPU, "
              f"{base['peak_mb'] / max(rows[kind]['peak_mb'], 1):.0f}x less peak memory than "
              f"decoding and keeping every frame")


if __name__ == "__main__":
    main()
