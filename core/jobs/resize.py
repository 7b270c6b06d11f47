"""`resize.images`: files and folders of photos -> resized copies, one child task per image.

The parent (`resize.images`, on the loop) resolves a preset, checks the payload, lists the
images (headers only, in a thread), plans every output name and spawns one
`resize.image` child per image in one transaction. Children run in worker processes
(Pillow holds the GIL while it decodes), so every core works. When the last child ends the
parent's finalize writes the summary: count, bytes before and after, failures by file.

Resuming: a finished image is a completed child and is never redone; a child interrupted
by a pause, a crash or a kill simply runs again (its output is written to a temporary
file and renamed into place, so a half-written file never looks finished). A parent
interrupted after its children were spawned does not spawn them twice.
"""

from __future__ import annotations

import asyncio
import glob
import os
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core import (
    ChildOutcome,
    Engine,
    InvalidSubmission,
    IoBudget,
    Permanent,
    RetryPolicy,
    Submission,
    TaskContext,
    TaskState,
)
from core.jobs import presets
from core.jobs.common import (
    Payload,
    PlainContext,
    absolute_path,
    checked,
    is_within,
    plural,
    short_list,
    shown,
    titled,
)

KIND = "resize.images"
CHILD_KIND = "resize.image"
FORMATS = ("keep", "jpeg", "png", "webp")
# Extensions picked up when a folder is listed (a file named in `inputs` is always tried).
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"}
)
# Options a preset may set (everything but what to resize and where to).
OPTION_FIELDS = (
    "max_width",
    "max_height",
    "percent",
    "format",
    "quality",
    "upscale",
    "recursive",
    "name_pattern",
    "overwrite",
    "strip_metadata",
)
DEFAULT_PATTERN = "{stem}{ext}"
MAX_LISTED_FAILURES = 500
ORIENTATION = 0x0112
# EXIF orientation -> the transpose that shows the image upright (PIL.Image.Transpose values).
_TRANSPOSE = {2: 0, 3: 3, 4: 1, 5: 5, 6: 4, 7: 6, 8: 2}
_SWAPS_AXES = frozenset({5, 6, 7, 8})
_OUT_EXT = {"jpeg": ".jpg", "png": ".png", "webp": ".webp"}
_PIL_FORMAT = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}

_OPTION_SCHEMA: dict[str, Any] = {
    "max_width": {"type": "integer", "minimum": 1, "maximum": 65535, "description": "fit within this width"},
    "max_height": {
        "type": "integer",
        "minimum": 1,
        "maximum": 65535,
        "description": "fit within this height",
    },
    "percent": {
        "type": "number",
        "exclusiveMinimum": 0,
        "maximum": 1000,
        "description": "scale to this percentage (with max_width/max_height: the smallest wins)",
    },
    "format": {"enum": list(FORMATS), "default": "keep", "description": "output format (keep: the source's)"},
    "quality": {
        "type": "integer",
        "minimum": 1,
        "maximum": 100,
        "default": 85,
        "description": "JPEG/WebP quality",
    },
    "upscale": {"type": "boolean", "description": "enlarge images smaller than the target (false)"},
    "recursive": {"type": "boolean", "description": "include images in subfolders (false)"},
    "name_pattern": {
        "type": "string",
        "minLength": 1,
        "maxLength": 255,
        "description": "output file name: {stem} {ext} {name} {parent} {index} {width} {height} {format}",
    },
    "overwrite": {"type": "boolean", "description": "replace existing outputs (false: skip them)"},
    "strip_metadata": {"type": "boolean", "description": "drop EXIF/XMP/comments (the ICC profile stays)"},
}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["inputs", "output_dir"],
    "properties": {
        "inputs": {
            "type": "array",
            "minItems": 1,
            "maxItems": 10000,
            "items": {"type": "string", "minLength": 1},
            "description": "image files and/or folders (absolute paths)",
        },
        "output_dir": {"type": "string", "minLength": 1, "description": "folder for the copies"},
        **_OPTION_SCHEMA,
        "preset": {"type": "string", "minLength": 1, "maxLength": 100, "description": "a saved preset"},
    },
    "additionalProperties": False,
}
titled(
    SCHEMA,
    {
        "inputs": "Photos",
        "output_dir": "Output folder",
        "max_width": "Max width",
        "max_height": "Max height",
        "percent": "Percent",
        "format": "Format",
        "quality": "Quality",
        "upscale": "Enlarge smaller images",
        "recursive": "Include subfolders",
        "name_pattern": "File names",
        "overwrite": "Replace existing files",
        "strip_metadata": "Strip metadata",
        "preset": "Preset",
    },
)
CHILD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["source", "dest", "output_dir"],
    "properties": {
        "source": {"type": "string", "minLength": 1},
        "dest": {"type": "string", "minLength": 1},
        "output_dir": {"type": "string", "minLength": 1},
        **{k: v for k, v in _OPTION_SCHEMA.items() if k not in ("recursive", "name_pattern")},
    },
    "additionalProperties": False,
}

BUILTIN_PRESETS: dict[str, dict[str, Any]] = {
    "Web 1600px JPEG q85": {
        "max_width": 1600,
        "max_height": 1600,
        "format": "jpeg",
        "quality": 85,
        "strip_metadata": True,
    },
    "Thumbnail 320px": {
        "max_width": 320,
        "max_height": 320,
        "format": "jpeg",
        "quality": 80,
        "strip_metadata": True,
        "name_pattern": "{stem}_thumb{ext}",
    },
}
presets.define(KIND, OPTION_FIELDS, _OPTION_SCHEMA, BUILTIN_PRESETS)


# -- options and checks -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Options:
    max_width: int | None = None
    max_height: int | None = None
    percent: float | None = None
    format: str = "keep"
    quality: int = 85
    upscale: bool = False
    strip_metadata: bool = False
    overwrite: bool = False

    @classmethod
    def of(cls, payload: Mapping[str, Any]) -> Options:
        return cls(
            max_width=payload.get("max_width"),
            max_height=payload.get("max_height"),
            percent=payload.get("percent"),
            format=payload.get("format", "keep"),
            quality=int(payload.get("quality", 85)),
            upscale=bool(payload.get("upscale", False)),
            strip_metadata=bool(payload.get("strip_metadata", False)),
            overwrite=bool(payload.get("overwrite", False)),
        )

    def child_fields(self) -> Payload:
        out: Payload = {
            "format": self.format,
            "quality": self.quality,
            "upscale": self.upscale,
            "strip_metadata": self.strip_metadata,
            "overwrite": self.overwrite,
        }
        for name in ("max_width", "max_height", "percent"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out


def target_size(width: int, height: int, opts: Options) -> tuple[int, int]:
    """The output size of an upright `width` x `height` image: fit within max_width x
    max_height and/or scale by percent (the smallest scale wins), never larger than the
    source unless `upscale`. The aspect ratio is kept; neither side drops below 1 px."""
    scales = []
    if opts.percent is not None:
        scales.append(opts.percent / 100.0)
    if opts.max_width is not None:
        scales.append(opts.max_width / width)
    if opts.max_height is not None:
        scales.append(opts.max_height / height)
    scale = min(scales) if scales else 1.0
    if not opts.upscale:
        scale = min(scale, 1.0)
    if scale == 1.0:
        return width, height
    w = max(1, round(width * scale))
    h = max(1, round(height * scale))
    if opts.max_width is not None:  # rounding never takes a side past its bound
        w = min(w, opts.max_width)
    if opts.max_height is not None:
        h = min(h, opts.max_height)
    return w, h


_PATTERN_SAMPLE: dict[str, Any] = {
    "stem": "photo",
    "ext": ".jpg",
    "name": "photo.jpg",
    "parent": "album",
    "format": "jpeg",
    "index": 1,
    "width": 1600,
    "height": 1200,
}


class PatternError(ValueError):
    pass


def check_pattern(pattern: str) -> None:
    """Refuse a name pattern that could name anything but a file inside the output folder:
    separators, '..', absolute paths, unknown or computed fields. Raises PatternError."""
    if "/" in pattern or "\\" in pattern:
        raise PatternError("must name a file, without / or \\ (it is always inside output_dir)")
    if "\0" in pattern:
        raise PatternError("must not contain a NUL character")
    try:
        parsed = list(string.Formatter().parse(pattern))
    except ValueError as e:
        raise PatternError(f"is not a valid pattern: {e}") from None
    for _literal, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in _PATTERN_SAMPLE:
            allowed = ", ".join("{" + k + "}" for k in _PATTERN_SAMPLE)
            raise PatternError(f"unknown field {{{field}}}; use {allowed}")
        if conversion:
            raise PatternError(f"{{{field}!{conversion}}}: conversions are not allowed")
        if spec and "{" in spec:
            raise PatternError(f"{{{field}:{spec}}}: nested fields are not allowed")
    try:
        render_name(pattern, _PATTERN_SAMPLE)
    except (ValueError, TypeError) as e:
        raise PatternError(str(e)) from None


def render_name(pattern: str, values: Mapping[str, Any]) -> str:
    """The file name `pattern` gives for `values`; PatternError if that is not a plain
    file name (a format spec can pad with '/', a stem can be '..')."""
    try:
        name = pattern.format_map(dict(values))
    except (KeyError, ValueError, TypeError) as e:
        raise PatternError(f"cannot be applied: {e}") from None
    seps = [os.sep, "/", "\\"] + ([os.altsep] if os.altsep else [])
    if any(s in name for s in seps):
        raise PatternError(f"produces {name!r}, which is not a plain file name (it has a separator)")
    if name in ("", ".", "..") or name.strip() == "":
        raise PatternError(f"produces {name!r}, which is not a file name")
    if "\0" in name or os.path.isabs(name) or os.path.splitdrive(name)[0]:
        raise PatternError(f"produces {name!r}, which is not a plain file name")
    if len(name.encode("utf-8", "surrogateescape")) > 255:
        raise PatternError(f"produces a name longer than 255 bytes ({name[:40]}…)")
    return name


def validate(payload: Mapping[str, Any]) -> Payload:
    """Submit-time checks the schema cannot express (after any preset is applied): paths
    absolute and existing, the name pattern safe. Returns the payload with normalised
    paths. Raises InvalidSubmission naming the field. Touches the file system (stat)."""
    out = dict(payload)
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidSubmission("inputs", "must be a non-empty list of files or folders")
    paths = []
    for i, value in enumerate(inputs):
        path = absolute_path(f"inputs[{i}]", value)
        if not os.path.exists(path):
            raise InvalidSubmission(f"inputs[{i}]", f"no such file or folder: {path}")
        paths.append(path)
    out["inputs"] = paths
    output_dir = absolute_path("output_dir", payload.get("output_dir"))
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise InvalidSubmission("output_dir", f"is a file, not a folder: {output_dir}")
    out["output_dir"] = output_dir
    fmt = payload.get("format", "keep")
    if fmt not in FORMATS:
        raise InvalidSubmission("format", f"must be one of {', '.join(FORMATS)}, got {fmt!r}")
    for name, low, high in (("max_width", 1, 65535), ("max_height", 1, 65535), ("quality", 1, 100)):
        value = payload.get(name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high
        ):
            raise InvalidSubmission(name, f"must be an integer in {low}..{high}, got {value!r}")
    pct = payload.get("percent")
    if pct is not None and (isinstance(pct, bool) or not isinstance(pct, int | float) or not 0 < pct <= 1000):
        raise InvalidSubmission("percent", f"must be a number in (0, 1000], got {pct!r}")
    try:
        check_pattern(payload.get("name_pattern", DEFAULT_PATTERN))
    except PatternError as e:
        raise InvalidSubmission("name_pattern", str(e)) from None
    return out


# -- listing and planning (the parent) ----------------------------------------------------


@dataclass(slots=True)
class Planned:
    source: str
    dest: str
    width: int
    height: int


@dataclass(slots=True)
class Plan:
    images: list[Planned]
    failures: list[tuple[str, str]]  # (file, why it was not even tried)
    ignored: int  # files in folders that are not images by their extension


def _candidates(inputs: list[str], recursive: bool, output_dir: str) -> list[tuple[str, str]]:
    """(file, folder relative to its input folder) for every candidate, in a stable order;
    the output folder is never listed (it may sit inside an input folder)."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    real_out = os.path.realpath(output_dir)

    def add(path: str, rel_dir: str) -> None:
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            out.append((path, rel_dir))

    for path in inputs:
        if not os.path.isdir(path):
            add(path, "")
            continue
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if os.path.realpath(os.path.join(root, d)) != real_out)
            if not recursive:
                dirs[:] = []
            rel = os.path.relpath(root, path)
            for name in sorted(files):
                add(os.path.join(root, name), "" if rel == "." else rel)
    return out


def plan(payload: Mapping[str, Any]) -> Plan:
    """Read every candidate's header and plan its output (blocking: run it in a thread)."""
    from PIL import Image

    opts = Options.of(payload)
    output_dir: str = payload["output_dir"]
    pattern: str = payload.get("name_pattern", DEFAULT_PATTERN)
    listed = set(payload["inputs"])
    images: list[Planned] = []
    failures: list[tuple[str, str]] = []
    ignored = 0
    taken: set[str] = set()
    for path, rel_dir in _candidates(payload["inputs"], bool(payload.get("recursive")), output_dir):
        stem, ext = os.path.splitext(os.path.basename(path))
        if path not in listed and ext.lower() not in IMAGE_EXTENSIONS:
            ignored += 1
            continue
        if shown(path) != path:  # a task payload is UTF-8 text: such a name cannot travel
            failures.append((shown(path), "the file name is not valid UTF-8; rename the file"))
            continue
        try:
            with Image.open(path) as im:
                src_format = (im.format or "").lower()
                w, h = im.size
                orientation = _orientation(im)
        except PermissionError:
            failures.append((path, "permission denied"))
            continue
        except FileNotFoundError:
            failures.append((path, "vanished before it could be read"))
            continue
        except Exception as e:  # UnidentifiedImageError, truncated header, bomb guard ...
            failures.append((path, f"not an image Pillow can read ({type(e).__name__}: {e})"))
            continue
        if orientation in _SWAPS_AXES:
            w, h = h, w
        tw, th = target_size(w, h, opts)
        out_format = src_format if opts.format == "keep" else opts.format
        out_ext = ext if opts.format == "keep" else _OUT_EXT[opts.format]
        values = {
            "stem": stem,
            "ext": out_ext,
            "name": stem + ext,
            "parent": os.path.basename(os.path.dirname(path)),
            "format": out_format,
            "index": len(images) + len(failures) + 1,
            "width": tw,
            "height": th,
        }
        try:
            name = render_name(pattern, values)
        except PatternError as e:
            failures.append((path, f"name_pattern {e}"))
            continue
        folder = os.path.normpath(os.path.join(output_dir, rel_dir))
        dest = _unique(os.path.join(folder, name), taken)
        if os.path.exists(dest) and os.path.samefile(dest, path):
            failures.append((path, "the output would replace the original; choose another output_dir"))
            continue
        images.append(Planned(path, dest, tw, th))
    return Plan(images, failures, ignored)


def _unique(dest: str, taken: set[str]) -> str:
    """`dest`, or `dest` with -2, -3 ... before the extension if an earlier image of this
    task already got that name (compared case-insensitively: think of macOS/Windows)."""
    stem, ext = os.path.splitext(dest)
    candidate, n = dest, 1
    while candidate.casefold() in taken:
        n += 1
        candidate = f"{stem}-{n}{ext}"
    taken.add(candidate.casefold())
    return candidate


def _orientation(im: Any) -> int:
    try:
        value = im.getexif().get(ORIENTATION, 1)
        return int(value) if int(value) in range(1, 9) else 1
    except Exception:  # a broken EXIF block: show the pixels as stored
        return 1


# -- the child: one image, in a worker process ---------------------------------------------


def resize_image(ctx: PlainContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Resize one image (runs in a worker process; module-level so it can be pickled)."""
    source: str = payload["source"]
    dest: str = payload["dest"]
    output_dir: str = payload["output_dir"]
    opts = Options.of(payload)
    name = os.path.basename(source)
    _check_dest(dest, output_dir)
    try:
        size_in = os.stat(source).st_size
    except FileNotFoundError:
        raise Permanent(f"{source}: the file is gone") from None
    except PermissionError:
        raise Permanent(f"{source}: permission denied") from None
    ctx.progress(done=0, total=size_in, message=name)
    result: dict[str, Any] = {"file": source, "output": dest, "bytes_in": size_in}
    if not opts.overwrite and os.path.lexists(dest):
        ctx.log(f"{dest} exists: skipped (overwrite is off)")
        ctx.progress(done=size_in, total=size_in, message=name)
        return {**result, "skipped": "exists", "bytes_out": os.lstat(dest).st_size}
    ctx.yield_point()
    folder = os.path.dirname(dest)
    os.makedirs(folder, exist_ok=True)
    if not is_within(output_dir, folder):  # a symlink inside output_dir pointing out of it
        raise Permanent(f"{dest}: its folder leads outside output_dir {output_dir}")
    base = os.path.basename(dest)
    for stale in glob.glob(os.path.join(glob.escape(folder), f".{glob.escape(base)}.td{ctx.id}-*.tmp")):
        _unlink_quietly(stale)  # left by an earlier run of this task that was killed
    tmp = os.path.join(folder, f".{base}.td{ctx.id}-{os.getpid()}.tmp")
    try:
        width, height, out_format = _convert(source, tmp, opts, ctx)
        size_out = os.stat(tmp).st_size
        placed = _place(tmp, dest, opts.overwrite)
    finally:
        _unlink_quietly(tmp)
    ctx.record_io(read=size_in, written=size_out if placed else 0)
    ctx.progress(done=size_in, total=size_in, message=name)
    if not placed:
        ctx.log(f"{dest} appeared meanwhile: skipped (overwrite is off)")
        return {**result, "skipped": "exists", "bytes_out": os.lstat(dest).st_size}
    ctx.log(
        f"{name} -> {os.path.basename(dest)} {width}x{height} {out_format} ({size_in} -> {size_out} bytes)"
    )
    return {**result, "bytes_out": size_out, "width": width, "height": height, "format": out_format}


def _check_dest(dest: str, output_dir: str) -> None:
    """A child's payload is checked again: the output must be a file inside output_dir."""
    rel = os.path.relpath(os.path.normpath(dest), os.path.normpath(output_dir))
    if (
        not os.path.isabs(dest)
        or rel == "."
        or rel.startswith(".." + os.sep)
        or rel == ".."
        or os.path.isabs(rel)
    ):
        raise Permanent(f"dest: {dest} is not inside output_dir {output_dir}")


def _place(tmp: str, dest: str, overwrite: bool) -> bool:
    """Move the finished file into place: atomically; without overwrite never replacing a
    file that appeared meanwhile. Returns False if it did not place it."""
    if overwrite:
        os.replace(tmp, dest)
        return True
    try:
        os.link(tmp, dest)  # fails if dest exists: no clobbering, even in a race
    except FileExistsError:
        return False
    except OSError:  # no hard links on this file system (FAT, some network shares)
        if os.path.lexists(dest):
            return False
        os.replace(tmp, dest)
    return True


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError:
        pass


def _convert(source: str, tmp: str, opts: Options, ctx: PlainContext) -> tuple[int, int, str]:
    """Decode, resize, orient and encode one image into `tmp`; returns its size and format."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(source) as im:
            src_format = (im.format or "").upper()
            orientation = _orientation(im)
            exif = None if opts.strip_metadata else _exif_without_orientation(im)
            xmp = None if opts.strip_metadata else _xmp_without_orientation(dict(im.info))
            icc = im.info.get("icc_profile")
            frames = int(getattr(im, "n_frames", 1))
            if frames > 1:
                ctx.log(f"{source}: {frames} frames; only the first is kept", "warning")
            w, h = im.size
            upright = (h, w) if orientation in _SWAPS_AXES else (w, h)
            tw, th = target_size(upright[0], upright[1], opts)
            stored = (th, tw) if orientation in _SWAPS_AXES else (tw, th)
            if stored[0] < w and stored[1] < h:
                # JPEG: libjpeg decodes at 1/2, 1/4 or 1/8 scale in the DCT domain (an area
                # average, so no aliasing), never below the target; Lanczos does the rest.
                # About twice as fast as Image.thumbnail's decode at twice the target.
                im.draft(None, stored)
            im.load()
            img = _resample_ready(im)
            if img.size != stored:
                img = img.resize(stored, Image.Resampling.LANCZOS, reducing_gap=2.0)
            if orientation in _TRANSPOSE:
                img = img.transpose(Image.Transpose(_TRANSPOSE[orientation]))
    except PermissionError:
        raise Permanent(f"{source}: permission denied") from None
    except FileNotFoundError:
        raise Permanent(f"{source}: the file is gone") from None
    except Image.DecompressionBombError as e:
        raise Permanent(f"{source}: refused as a decompression bomb ({e})") from None
    except (UnidentifiedImageError, SyntaxError, ValueError, OSError) as e:
        # OSError here is Pillow's "image file is truncated" / "broken data stream".
        raise Permanent(f"{source}: corrupt or unsupported image ({type(e).__name__}: {e})") from None
    out_format = _PIL_FORMAT.get(opts.format) or src_format or "PNG"
    img = _mode_for(img, out_format, ctx, source)
    params: dict[str, Any] = {}
    if out_format in ("JPEG", "WEBP"):
        params["quality"] = opts.quality
    if icc:
        params["icc_profile"] = icc
    if exif and out_format in ("JPEG", "PNG", "WEBP", "TIFF"):
        params["exif"] = exif
    if xmp and out_format in ("JPEG", "PNG", "WEBP", "TIFF"):
        params["xmp"] = xmp
    ctx.yield_point()
    img.save(tmp, format=out_format, **params)
    with Image.open(tmp) as out:  # verified success: the output opens with the expected size
        if out.size != (tw, th):
            raise Permanent(f"{source}: the output is {out.size[0]}x{out.size[1]}, expected {tw}x{th}")
    return tw, th, out_format.lower()


def _resample_ready(im: Any) -> Any:
    """Palette and 1-bit images cannot be resampled smoothly: widen them first."""
    if im.mode == "P":
        return im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode == "1":
        return im.convert("L")
    return im


def _mode_for(img: Any, fmt: str, ctx: PlainContext, source: str) -> Any:
    """Convert to a mode `fmt` can store; alpha is flattened onto white for JPEG."""
    from PIL import Image

    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La")
    if fmt == "JPEG":
        if has_alpha:
            rgba = img.convert("RGBA")
            flat = Image.new("RGB", rgba.size, (255, 255, 255))
            flat.paste(rgba, mask=rgba.getchannel("A"))
            ctx.log(f"{source}: transparency flattened onto white (JPEG has no alpha)")
            return flat
        if img.mode not in ("RGB", "L", "CMYK"):
            return img.convert("RGB")
    elif fmt == "WEBP":
        if img.mode not in ("RGB", "RGBA"):
            return img.convert("RGBA" if has_alpha else "RGB")
    elif fmt == "PNG" and img.mode == "CMYK":
        return img.convert("RGB")
    return img


def _exif_without_orientation(im: Any) -> bytes | None:
    try:
        exif = im.getexif()
        if not exif:
            return None
        if ORIENTATION in exif:
            del exif[ORIENTATION]  # the pixels are upright now
        data: bytes = exif.tobytes()
        return data
    except Exception:  # unreadable EXIF is dropped, never fatal
        return None


_XMP_ORIENTATION = (
    re.compile(rb'tiff:Orientation="[0-9]"'),
    re.compile(rb"<tiff:Orientation>[0-9]</tiff:Orientation>"),
)


def _xmp_without_orientation(info: Mapping[Any, Any]) -> bytes | None:
    value = info.get("xmp") or info.get("XML:com.adobe.xmp")
    if not value:
        return None
    data = value.encode() if isinstance(value, str) else bytes(value)
    for pattern in _XMP_ORIENTATION:
        data = pattern.sub(b"", data)
    return data


# -- the parent ------------------------------------------------------------------------------


def register(engine: Engine) -> None:
    """Register resize.images (the parent) and resize.image (one image)."""

    async def resize_images(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
        """Resize images: one child task per image; the summary comes from finalize."""
        merged = await _with_preset(engine, payload)
        opts = checked(validate, merged)
        if engine.children(ctx.id):
            # Interrupted (a crash, a stop) after its children were committed: they carry
            # on; spawning again would resize every image twice.
            ctx.log("children already spawned by an earlier run; waiting for them")
            return await asyncio.to_thread(_parent_result_again, opts)
        await asyncio.to_thread(os.makedirs, opts["output_dir"], exist_ok=True)
        found = await asyncio.to_thread(plan, opts)
        for path, why in found.failures:
            ctx.log(f"{path}: {why}", "error")
        if not found.images:
            if found.failures:
                raise Permanent(
                    f"none of the {plural(len(found.failures), 'file')} could be read: "
                    + short_list([f"{p}: {w}" for p, w in found.failures])
                )
            raise Permanent(f"inputs: no images found in {', '.join(opts['inputs'])}")
        fields = Options.of(opts).child_fields()
        subs = [
            Submission(
                CHILD_KIND,
                {"source": p.source, "dest": p.dest, "output_dir": opts["output_dir"], **fields},
                label=os.path.basename(p.source)[:200],
            )
            for p in found.images
        ]
        await ctx.yield_point()
        await ctx.spawn_children(subs)
        ctx.log(
            f"{plural(len(subs), 'image')} queued into {opts['output_dir']}"
            + (f"; {found.ignored} other files ignored" if found.ignored else "")
        )
        return _parent_result(opts, found)

    async def finalize(ctx: TaskContext, payload: dict[str, Any], children: list[ChildOutcome]) -> Any:
        """The summary: count, bytes before/after, failures by file."""
        record = engine.get(ctx.id)
        listed: dict[str, Any] = (record.result if record is not None else None) or {}
        failures: dict[str, str] = dict(listed.get("failures") or {})
        resized = skipped = cancelled = 0
        before = after = 0
        for child in children:
            if child.state == TaskState.COMPLETED and isinstance(child.result, dict):
                before += int(child.result.get("bytes_in", 0))
                after += int(child.result.get("bytes_out", 0))
                if child.result.get("skipped"):
                    skipped += 1
                else:
                    resized += 1
                continue
            kid = engine.get(child.id)
            source = str((kid.payload or {}).get("source", f"task {child.id}")) if kid else f"task {child.id}"
            if child.state == TaskState.CANCELLED:
                cancelled += 1
            failures[source] = child.error or child.state.value
        count = len(children) + len(listed.get("failures") or {})
        summary = {
            "count": count,
            "resized": resized,
            "skipped": skipped,
            "failed": len(failures) - cancelled,
            "cancelled": cancelled,
            "bytes_before": before,
            "bytes_after": after,
            "failures": dict(list(failures.items())[:MAX_LISTED_FAILURES]),
            "output_dir": listed.get("output_dir"),
        }
        if failures:
            ctx.log(f"{plural(len(failures), 'image')} of {count} not resized", "error")
        if count and resized + skipped == 0:
            raise Permanent(f"no image was resized: {short_list([f'{k}: {v}' for k, v in failures.items()])}")
        ctx.log(f"{resized} resized, {skipped} skipped; {before} -> {after} bytes")
        return summary

    engine.register(
        KIND,
        resize_images,
        schema=SCHEMA,
        finalize=finalize,
        retry=RetryPolicy.exponential(max_retries=3, base=2.0, cap=60.0),
        io=IoBudget(disk_read=1_000_000),
        validate=validate,
        fail_fast=False,  # one broken photo must not cancel the rest: the summary lists it
        description="Resize images (files and folders) into an output folder, one child per image",
    )
    engine.register(
        CHILD_KIND,
        resize_image,
        schema=CHILD_SCHEMA,
        run_in="process",
        retry=RetryPolicy.exponential(max_retries=3, base=1.0, cap=30.0),
        timeout=600,
        io=IoBudget(disk_read=15_000_000, disk_write=3_000_000),
        description="Resize one image (a child of resize.images)",
    )


def _parent_result(opts: Mapping[str, Any], found: Plan) -> dict[str, Any]:
    return {
        "images": len(found.images),
        "ignored": found.ignored,
        "output_dir": opts["output_dir"],
        "failures": dict(found.failures[:MAX_LISTED_FAILURES]),
    }


def _parent_result_again(opts: Mapping[str, Any]) -> dict[str, Any]:
    return _parent_result(opts, plan(opts))


async def _with_preset(engine: Engine, payload: Any) -> Any:
    """The payload with its preset's options filled in where the payload has none."""
    if not isinstance(payload, dict) or "preset" not in payload:
        return payload
    try:
        return await presets.apply(engine, KIND, payload)
    except (KeyError, InvalidSubmission) as e:
        raise Permanent(f"preset: {e.args[0] if isinstance(e, KeyError) else e}") from None
