"""Decoding audio and video frames from media files with ffmpeg, bounded in time, memory and output.

merc-bench does not link a media library: it runs the ``ffmpeg`` program as a subprocess (an argument
list, never a shell), reading raw samples from its standard output. Which ``ffmpeg``:

1. ``$MERC_BENCH_FFMPEG`` when set (a path to the program);
2. else ``ffmpeg`` on ``PATH`` — on Debian/Ubuntu ``apt-get install ffmpeg`` (what CI uses);
3. else the static binary of the PyPI package ``imageio-ffmpeg``, when installed
   (``pip install imageio-ffmpeg``, about 68 MB, no system package needed).

:func:`find_decoder` says which one was found and its version; ``data prepare`` records both in the
manifest. Every call is bounded, because a media folder is hostile input like any other:

* **time** — the subprocess is killed after ``timeout_s`` (default 120 s per file);
* **length** — at most ``max_seconds`` of the file are decoded (ffmpeg's ``-t``); a file that is
  longer is an error that says so (the decoder stops there, so a two-hour file never fills memory),
  and the caller may raise the limit;
* **bytes** — ffmpeg is also told the most bytes it may write (``-fs``), computed from the limit
  above, and the output is checked against it;
* **messages** — ffmpeg's own messages go to a temporary file, of which the last few hundred
  characters are quoted in the error;
* **reach** — the input is always a local file (``file:`` plus the absolute path, so a name that
  starts with ``-`` or looks like a URL stays a file name), read only through the ``file``
  protocol and the container demuxers of :data:`FORMAT_WHITELIST` (MP4/MOV, Matroska/WebM, AVI,
  WAV, MP3, FLAC, Ogg, AAC, MPEG-PS/TS, FLV, ASF): a "video" that is really an HLS or concat
  playlist cannot make ffmpeg open other files or the network.

Audio is decoded to mono float samples at the rate the audio encoder asks for (resampled by
ffmpeg); video to RGB frames sampled at the visual encoder's frame rate and scaled to its frame size
(aspect ratio not kept: every clip gives frames of one shape).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from merc_bench.errors import UserError

__all__ = ["Decoder", "MediaError", "find_decoder", "decode_audio", "decode_frames", "DEFAULT_TIMEOUT_S",
           "FORMAT_WHITELIST"]

DEFAULT_TIMEOUT_S = 120.0
ENVIRONMENT_VARIABLE = "MERC_BENCH_FFMPEG"
# A margin past the limit: enough to tell "longer than the limit" from "exactly the limit".
_OVERSHOOT_S = 0.5
_MESSAGE_CHARS = 300
#: The demuxers ffmpeg may use: audio/video containers. Not playlists or indirections (hls, concat, image2
#: sequences, lavfi), which would let a hostile file make ffmpeg read other files or URLs.
FORMAT_WHITELIST = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,wav,mp3,flac,ogg,aac,mpegts,mpeg,flv,asf"


class MediaError(Exception):
    """One media file could not be decoded; ``reason`` is a short phrase for a list of such files."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class Decoder:
    """The ffmpeg program merc-bench runs, where it came from, and its version line."""

    path: str
    origin: str  # "MERC_BENCH_FFMPEG", "PATH" or "imageio-ffmpeg"
    version: str  # e.g. "ffmpeg version 5.1.6-0+deb12u1"

    def describe(self) -> dict[str, str]:
        return {"program": self.path, "origin": self.origin, "version": self.version}


def _version(program: str) -> str:
    try:
        done = subprocess.run([program, "-version"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise UserError(f"the media decoder {program!r} does not run ({error}); install ffmpeg "
                        "(`apt-get install ffmpeg`) or `pip install imageio-ffmpeg`.") from None
    first = done.stdout.decode("utf-8", "replace").splitlines()[:1]
    if done.returncode != 0 or not first or "ffmpeg" not in first[0].lower():
        raise UserError(f"{program!r} is not a working ffmpeg (`{program} -version` failed); install ffmpeg "
                        "(`apt-get install ffmpeg`) or `pip install imageio-ffmpeg`.")
    return re.sub(r"\s+Copyright.*$", "", first[0]).strip()


def find_decoder() -> Decoder:
    """The ffmpeg to use ($MERC_BENCH_FFMPEG, else PATH, else imageio-ffmpeg), or a UserError saying how to get one."""
    configured = os.environ.get(ENVIRONMENT_VARIABLE)
    if configured:
        return Decoder(configured, ENVIRONMENT_VARIABLE, _version(configured))
    on_path = shutil.which("ffmpeg")
    if on_path:
        return Decoder(on_path, "PATH", _version(on_path))
    try:
        import imageio_ffmpeg
    except ImportError:
        raise UserError(
            "decoding media needs ffmpeg, which was not found: install Debian's `apt-get install ffmpeg` (or your "
            "system's package), or `pip install imageio-ffmpeg` (a static ffmpeg inside a wheel), or point "
            f"${ENVIRONMENT_VARIABLE} at an ffmpeg program.") from None
    program = imageio_ffmpeg.get_ffmpeg_exe()
    return Decoder(program, "imageio-ffmpeg", _version(program))


def _run(decoder: Decoder, path: Path, output_arguments: list[str], *, max_bytes: int, timeout_s: float,
         what: str) -> bytes:
    """ffmpeg ``-i path`` with the given output arguments writing raw bytes to stdout (at most ``max_bytes``)."""
    # "file:" + an absolute path: a name starting with "-" or looking like a URL ("http:", "concat:") is still
    # a local file; the whitelists stop a file that is really a playlist (HLS, concat) from opening others.
    command = [decoder.path, "-nostdin", "-hide_banner", "-loglevel", "error", "-protocol_whitelist", "file",
               "-format_whitelist", FORMAT_WHITELIST, "-i", "file:" + os.path.abspath(path),
               *output_arguments, "-fs", str(max_bytes), "pipe:1"]
    with tempfile.TemporaryFile() as messages:
        try:
            done = subprocess.run(command, stdout=subprocess.PIPE, stderr=messages, stdin=subprocess.DEVNULL,
                                  timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise MediaError(path, f"decoding the {what} took more than {timeout_s:g} s (killed)") from None
        except OSError as error:
            raise UserError(f"running the media decoder {decoder.path!r} failed: {error}") from None
        messages.seek(0, os.SEEK_END)
        messages.seek(max(0, messages.tell() - 4 * _MESSAGE_CHARS))
        said = " ".join(messages.read().decode("utf-8", "replace").split())
    # ffmpeg prefixes its messages with "[demuxer @ 0xADDRESS]" and repeats the path: noise in a list of files.
    said = re.sub(r"\[[^\]]{0,80} @ 0x[0-9a-f]+\]\s*", "", said)
    said = said.replace(f"file:{os.path.abspath(path)}: ", "")[-_MESSAGE_CHARS:]
    if done.returncode != 0:
        if "matches no streams" in said or "does not contain any stream" in said:
            raise MediaError(path, f"has no {what} stream")
        raise MediaError(path, f"ffmpeg could not decode its {what}" + (f": {said}" if said else ""))
    if len(done.stdout) > max_bytes:  # -fs is a soft limit (whole packets): hold ffmpeg to it here
        raise MediaError(path, f"decoding its {what} gave more than {max_bytes:,} bytes")
    return done.stdout


def decode_audio(decoder: Decoder, path: Path, *, sample_rate: int, max_seconds: float,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> np.ndarray:
    """The first audio stream of ``path`` as mono float32 samples in [-1, 1] at ``sample_rate``: (S,).

    Raises :class:`MediaError` when the file has no audio, ffmpeg fails, nothing is decoded, or the
    audio is longer than ``max_seconds`` (only ``max_seconds`` plus a margin is ever decoded).
    """
    limit_samples = int(round((max_seconds + _OVERSHOOT_S) * sample_rate))
    raw = _run(decoder, path, ["-map", "0:a:0", "-vn", "-ac", "1", "-ar", str(int(sample_rate)), "-f", "s16le",
                               "-acodec", "pcm_s16le", "-t", f"{max_seconds + _OVERSHOOT_S:.3f}"],
               max_bytes=2 * limit_samples + 4096, timeout_s=timeout_s, what="audio")
    samples = np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2")  # (S,)
    if samples.size == 0:
        raise MediaError(path, "its audio stream decodes to no samples (zero length)")
    if samples.size > max_seconds * sample_rate:
        raise MediaError(path, f"its audio is longer than the limit of {max_seconds:g} s per utterance (decoding "
                               "stops there so a long file cannot fill memory; raise --max-media-seconds)")
    return (samples.astype(np.float32) / 32768.0).astype(np.float32)


def decode_frames(decoder: Decoder, path: Path, *, frame_rate: float, frame_size: tuple[int, int],
                  max_seconds: float, timeout_s: float = DEFAULT_TIMEOUT_S) -> np.ndarray:
    """The first video stream of ``path`` sampled at ``frame_rate`` and scaled to ``frame_size`` (width,
    height): uint8 RGB frames (T, height, width, 3).

    Raises :class:`MediaError` when the file has no video, ffmpeg fails, no frame is decoded, or the
    video is longer than ``max_seconds``.
    """
    width, height = (int(v) for v in frame_size)
    frame_bytes = width * height * 3
    # Two frame periods past the limit, so a longer video gives frames a video of exactly the limit cannot.
    overshoot = _OVERSHOOT_S + 2.0 / frame_rate
    limit_frames = int(np.ceil((max_seconds + overshoot) * frame_rate)) + 1
    raw = _run(decoder, path, ["-map", "0:v:0", "-an", "-vf", f"fps={frame_rate:g},scale={width}:{height}:flags=area",
                               "-pix_fmt", "rgb24", "-f", "rawvideo", "-t", f"{max_seconds + overshoot:.3f}"],
               max_bytes=frame_bytes * limit_frames, timeout_s=timeout_s, what="video")
    count = len(raw) // frame_bytes
    if count == 0:
        raise MediaError(path, "its video stream decodes to no frames (zero length)")
    if count > int(np.ceil(max_seconds * frame_rate)) + 1:
        raise MediaError(path, f"its video is longer than the limit of {max_seconds:g} s per utterance (decoding "
                               "stops there so a long file cannot fill memory; raise --max-media-seconds)")
    return np.frombuffer(raw[: count * frame_bytes], dtype=np.uint8).reshape(count, height, width, 3)
