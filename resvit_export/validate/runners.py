"""Run an ONNX model with ONNX Runtime (CPU), in this process or in an isolated child process.

Isolation exists because ONNX Runtime can crash the whole interpreter instead of raising: ORT 1.31 segfaults
while loading some FP16 graphs (measured here). With ``isolated=True`` the session lives in a child
``python -m resvit_export.validate.runners`` process that exchanges inputs and outputs through ``.npz``
files; a child killed by a signal becomes an InvalidArtifactError naming the signal, the phase
(loading/running) and the file, and the CLI survives to write its report and status.json.

Every feed runs once and that run is timed: its outputs are the ones compared, so the latency belongs to a
run that was also checked. ``repeats`` > 1 adds timed re-runs (the minimum is kept: the estimator least
disturbed by other processes on a shared CPU). Which runs count as warm is the caller's business
(``parity`` takes a shape's latency from its second compared run).

``stop`` (a ``threading.Event``) lets a caller that runs PyTorch at the same time abandon the remaining
feeds: the in-process loop returns after the current feed, the isolated child is killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from resvit_export.errors import InvalidArtifactError

__all__ = ["run_onnx", "run_onnx_timed", "onnx_io_names"]

_TIMINGS_KEY = "__timings__"
_ERRORS_KEY = "__errors__"
_NP_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
              "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(bool)": np.bool_}


def onnx_io_names(onnx_path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """(input names, output names) of an ONNX file without loading its weights."""
    import onnx

    try:
        m = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as err:  # noqa: BLE001 - protobuf raises several types
        raise InvalidArtifactError(f"{onnx_path} is not a readable ONNX model ({err}); re-export it") from err
    inits = {i.name for i in m.graph.initializer}
    return [i.name for i in m.graph.input if i.name not in inits], [o.name for o in m.graph.output]


def _session(onnx_path: str, threads: int):
    from resvit_export._optional import require

    ort = require("onnxruntime")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(onnx_path, sess_options=opts, providers=["CPUExecutionProvider"])


def _run_all(onnx_path: str, feeds_list: Sequence[dict], threads: int, repeats: int,
             phase: Callable[[str], None] = lambda s: None,
             progress: Callable[[int], None] | None = None,
             errors: list | None = None,
             stop: threading.Event | None = None,
             on_output: Callable[[int, dict], None] | None = None) -> tuple[list[dict], list[float]]:
    """The shared body of the in-process and the child runner. With ``errors`` (a list), a feed that fails
    is recorded there as (index, message) and yields ``{}`` / NaN instead of raising."""
    phase("loading")
    try:
        sess = _session(onnx_path, threads)
    except Exception as err:  # noqa: BLE001 - ORT raises its own Fail/InvalidGraph/... classes
        if type(err).__name__ == "MissingDependencyError":
            raise
        raise InvalidArtifactError(f"ONNX Runtime cannot load {onnx_path}: {_first_line(err)}") from err
    in_types = {i.name: _NP_DTYPES.get(i.type) for i in sess.get_inputs()}
    out_names = [o.name for o in sess.get_outputs()]
    outputs, timings = [], []
    for idx, feed in enumerate(feeds_list):
        if stop is not None and stop.is_set():
            break
        phase(f"running feed {idx}")
        feed = {k: (np.asarray(v, dtype=in_types[k]) if in_types.get(k) is not None else v) for k, v in feed.items()}
        try:
            t0 = time.perf_counter()
            res = sess.run(out_names, feed)  # the compared run is also the first timed one
            times = [time.perf_counter() - t0]
            for _ in range(repeats - 1):
                t0 = time.perf_counter()
                sess.run(out_names, feed)
                times.append(time.perf_counter() - t0)
        except Exception as err:  # noqa: BLE001
            shapes = ", ".join(f"{k} {'x'.join(map(str, np.shape(v)))}" for k, v in feed.items())
            msg = f"ONNX Runtime failed running {onnx_path} on feed {idx} ({shapes}): {_first_line(err)}"
            if errors is None:
                raise InvalidArtifactError(msg) from err
            errors.append((idx, msg))
            outputs.append({})
            timings.append(float("nan"))
            if progress:
                progress(idx)
            continue
        outputs.append(dict(zip(out_names, res)))
        timings.append(float(min(times)))
        if on_output:
            on_output(idx, outputs[-1])
        if progress:
            progress(idx)
    return outputs, timings


def _first_line(err: BaseException) -> str:
    """The error as one line (ORT puts the useful part, e.g. 'index: 2 Got: 32 Expected: 64', on line 2)."""
    text = " ".join(ln.strip() for ln in str(err).strip().splitlines() if ln.strip())
    return text[:400] if text else type(err).__name__


def run_onnx_timed(onnx_path: str | os.PathLike, feeds_list: Sequence[dict], isolated: bool = False,
                   threads: int = 2, repeats: int = 1, timeout: float | None = None,
                   progress: Callable[[int], None] | None = None,
                   errors: list | None = None,
                   stop: threading.Event | None = None,
                   on_output: Callable[[int, dict], None] | None = None) -> tuple[list[dict], list[float]]:
    """Run every feed dict through ONNX Runtime's CPU provider, once each, timing the run.

    Args:
        onnx_path: the model file.
        feeds_list: one ``{input_name: array}`` per run; arrays are cast to the model's input dtype.
        isolated: run ORT in a child process so that a crash becomes an error instead of killing the caller.
        threads: ORT intra-op threads.
        repeats: timed runs per feed (>= 1); the first provides the outputs, the minimum time is reported.
        timeout: seconds for the isolated child (None: no limit).
        progress: called with the feed index after each feed (in-process: as it happens; isolated: at the end).
        errors: when a list is given, a feed that ORT rejects (e.g. a Reshape that fails at one size) is
            appended as (index, message) and gives ``{}`` and NaN seconds instead of raising. Load failures and
            crashes always raise.
        stop: when set (by another thread), the remaining feeds are abandoned and the results are partial.
        on_output: called with (index, outputs) for each feed that ran (in-process: as it happens, so the
            caller can compare while the next feed runs; isolated: at the end).

    Returns:
        (outputs, seconds): per feed ``{output_name: array}`` and its run time in seconds.

    Raises:
        InvalidArtifactError: ORT cannot load or run the model, or crashed (isolated).
    """
    path = str(onnx_path)
    if not Path(path).is_file():
        raise InvalidArtifactError(f"ONNX file {path} does not exist; run `resvit-export export` first")
    if not isolated:
        return _run_all(path, feeds_list, threads, repeats, progress=progress, errors=errors, stop=stop,
                        on_output=on_output)
    outputs, timings = _run_isolated(path, feeds_list, threads, repeats, timeout, errors, stop)
    failed = {i for i, _ in errors or ()}
    for i in range(len(outputs)):
        if on_output and i not in failed:
            on_output(i, outputs[i])
        if progress:
            progress(i)
    return outputs, timings


def run_onnx(onnx_path: str | os.PathLike, feeds_list: Sequence[dict], isolated: bool = False,
             threads: int = 2) -> list[dict]:
    """Outputs only; see :func:`run_onnx_timed`."""
    return run_onnx_timed(onnx_path, feeds_list, isolated=isolated, threads=threads)[0]


# --- isolated child -------------------------------------------------------------------------------


def _child_command(path: str, in_npz: Path, out_npz: Path, phase_file: Path, threads: int,
                   repeats: int) -> list[str]:
    return [sys.executable, "-m", "resvit_export.validate.runners", "--child", path, str(in_npz), str(out_npz),
            str(phase_file), str(threads), str(repeats)]


def _wait_for_child(proc: subprocess.Popen, path: str, phase_file: Path, timeout: float | None,
                    stop: threading.Event | None) -> str | None:
    """The child's stderr once it exits; None when ``stop`` was set (the child is killed)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            return proc.communicate(timeout=0.25)[1].decode(errors="replace")
        except subprocess.TimeoutExpired:
            cancelled = stop is not None and stop.is_set()
            if cancelled or (deadline is not None and time.monotonic() > deadline):
                proc.kill()
                proc.communicate()
                if cancelled:
                    return None
                raise InvalidArtifactError(
                    f"ONNX Runtime did not finish {path} within {timeout:.0f}s ({_phase(phase_file)}); "
                    f"the model may hang at this shape"
                ) from None


def _run_isolated(path, feeds_list, threads, repeats, timeout, errors=None, stop=None):
    with tempfile.TemporaryDirectory(prefix="resvit-ort-") as tmp:
        tmp = Path(tmp)
        in_npz, out_npz, phase_file = tmp / "in.npz", tmp / "out.npz", tmp / "phase.txt"
        arrays = {f"{i}/{name}": np.asarray(v) for i, feed in enumerate(feeds_list) for name, v in feed.items()}
        np.savez(in_npz, **arrays)
        env = dict(os.environ, PYTHONFAULTHANDLER="0")
        cmd = _child_command(path, in_npz, out_npz, phase_file, threads, repeats)
        if errors is not None:
            cmd.append("--keep-going")
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        err = _wait_for_child(proc, path, phase_file, timeout, stop)
        if err is None:
            return [], []
        _raise_for_child(proc.returncode, err, path, _phase(phase_file))
        with np.load(out_npz) as data:
            timings = [float(t) for t in data[_TIMINGS_KEY]]
            if errors is not None and _ERRORS_KEY in data.files:
                errors.extend((int(i), str(m)) for i, m in zip(data[_ERRORS_KEY + "_idx"], data[_ERRORS_KEY]))
            outputs: list[dict] = [{} for _ in feeds_list]
            for key in data.files:
                if not key.startswith("__"):
                    idx, name = key.split("/", 1)
                    outputs[int(idx)][name] = data[key]
        return outputs, timings


def _phase(phase_file: Path) -> str:
    try:
        return phase_file.read_text().strip() or "starting"
    except OSError:
        return "starting"


def _raise_for_child(returncode: int, stderr: str, path: str, phase: str) -> None:
    """Map the child's exit status to an error (no-op on success)."""
    if returncode == 0:
        return
    doing = "loading" if phase in ("starting", "loading") else f"running ({phase})"
    if returncode < 0:
        signum = -returncode
        try:
            signame = signal.Signals(signum).name
        except ValueError:
            signame = "unknown signal"
        raise InvalidArtifactError(
            f"ONNX Runtime crashed (signal {signum}, {signame}) while {doing} {path}; the crash is in ONNX "
            f"Runtime, so this is not a parity result: try another onnxruntime version or check the graph "
            f"with `polygraphy run {Path(path).name} --onnxrt`"
        )
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    marker = "InvalidArtifactError: "
    last = next((ln.split(marker, 1)[1] for ln in reversed(lines) if marker in ln), None)
    if last is not None:
        raise InvalidArtifactError(last)
    raise InvalidArtifactError(
        f"ONNX Runtime child process failed (exit {returncode}) while {doing} {path}: "
        f"{lines[-1] if lines else 'no message'}"
    )


def _child_main(argv: list[str]) -> int:
    keep_going = argv[-1] == "--keep-going"
    path, in_npz, out_npz, phase_file, threads, repeats = argv[:6]
    phase_path = Path(phase_file)

    def phase(text):
        phase_path.write_text(text)

    with np.load(in_npz) as data:
        feeds: dict[int, dict] = {}
        for key in data.files:
            idx, name = key.split("/", 1)
            feeds.setdefault(int(idx), {})[name] = data[key]
    feeds_list = [feeds[i] for i in sorted(feeds)]
    errors: list | None = [] if keep_going else None
    outputs, timings = _run_all(path, feeds_list, int(threads), int(repeats), phase=phase, errors=errors)
    arrays = {f"{i}/{name}": v for i, out in enumerate(outputs) for name, v in out.items()}
    arrays[_TIMINGS_KEY] = np.asarray(timings, dtype=np.float64)
    if errors:
        arrays[_ERRORS_KEY + "_idx"] = np.asarray([i for i, _ in errors], dtype=np.int64)
        arrays[_ERRORS_KEY] = np.asarray([m for _, m in errors])
    tmp = Path(out_npz).with_suffix(".partial.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, out_npz)
    phase("done")
    return 0


if __name__ == "__main__":  # the isolated child: python -m resvit_export.validate.runners --child ...
    if len(sys.argv) in (8, 9) and sys.argv[1] == "--child":
        try:
            sys.exit(_child_main(sys.argv[2:]))
        except InvalidArtifactError as _err:
            print(f"InvalidArtifactError: {_err}", file=sys.stderr)
            sys.exit(1)
    print("internal entry point of resvit_export.validate.runners (isolated ONNX Runtime child)", file=sys.stderr)
    sys.exit(2)
