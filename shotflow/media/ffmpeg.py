"""Running the bundled ffmpeg: commands are built with ffmpeg-python and run here, with a timeout.

ffmpeg-python only builds the argv (it has no timeouts and its `probe` needs an ffprobe we do not
have); the binary comes from imageio-ffmpeg, so nothing is installed outside the venv.
"""

from __future__ import annotations

import functools
import subprocess
from typing import Sequence

import imageio_ffmpeg

from shotflow.errors import AssemblyError, ShotflowError

# flags every run gets: no banner, never read stdin, only errors and warnings in stderr
QUIET = ("-hide_banner", "-nostdin", "-loglevel", "warning")
STDERR_LINES = 15


@functools.cache
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary (imageio-ffmpeg's; `IMAGEIO_FFMPEG_EXE` overrides it)."""
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as exc:
        raise AssemblyError(f"no ffmpeg binary: {exc} (set IMAGEIO_FFMPEG_EXE to one)") from None


def command(stream) -> list[str]:
    """The argv of an ffmpeg-python output node, with our binary and quiet, overwriting flags."""
    return stream.global_args(*QUIET).overwrite_output().compile(cmd=ffmpeg_exe())


def run(
    argv_or_stream,
    *,
    what: str,
    timeout: float,
    error: type[ShotflowError] = AssemblyError,
) -> subprocess.CompletedProcess:
    """Run ffmpeg; on a failure or timeout raise `error` naming `what` with the tail of stderr.

    `argv_or_stream` is an ffmpeg-python output node, or a full argv (for the rare command
    ffmpeg-python cannot express).
    """
    argv = list(argv_or_stream) if isinstance(argv_or_stream, Sequence) else command(argv_or_stream)
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise error(f"{what}: ffmpeg did not finish within {timeout:.0f} s{_tail(exc.stderr)}") from None
    except OSError as exc:
        raise error(f"{what}: cannot run ffmpeg at {argv[0]} ({exc}); set IMAGEIO_FFMPEG_EXE to a working binary") from None
    if done.returncode != 0:
        raise error(f"{what}: ffmpeg exited with status {done.returncode}{_tail(done.stderr)}")
    return done


def _tail(stderr: bytes | str | None) -> str:
    if not stderr:
        return ""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return ":\n  " + "\n  ".join(lines[-STDERR_LINES:]) if lines else ""


def ffmpeg_version() -> str:
    """First line of `ffmpeg -version`, e.g. to name the binary in a report."""
    done = run([ffmpeg_exe(), "-hide_banner", "-version"], what="ffmpeg -version", timeout=30)
    return done.stdout.decode("utf-8", "replace").splitlines()[0]
