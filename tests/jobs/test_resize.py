"""resize.images on real files: sizes, formats, orientation, alpha, metadata, corrupt and
huge images, name patterns that try to leave the output folder, overwrite, presets."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from core import Client, Engine, InvalidArgument, InvalidSubmission, TaskState
from core.jobs import presets, resize
from core.jobs.resize import Options, PatternError, check_pattern, render_name, target_size
from tests.jobs.conftest import run_unchecked
from tests.jobs.images import BLUE, ORIENTATION, RED, jpeg, near, png_with_alpha, truncated_jpeg


async def run(eng: Engine, payload: dict[str, Any], **options: Any) -> Any:
    res = await eng.submit("resize.images", payload, **options)
    return await eng.wait(res.id, timeout=60)


def opened(path: Path) -> tuple[tuple[int, int], str, Any]:
    with Image.open(path) as im:
        im.load()
        return im.size, im.format, im.copy()


# -- sizes and orientation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("orientation", "size", "top", "bottom"),
    [
        (None, (400, 200), RED, RED),  # no tag: as stored, left red
        (1, (400, 200), RED, RED),
        (3, (400, 200), BLUE, BLUE),  # upside down: left becomes right
        (6, (100, 200), RED, BLUE),  # turned: the left half becomes the top
        (8, (100, 200), BLUE, RED),  # turned the other way: the left half becomes the bottom
    ],
)
async def test_given_jpeg_with_exif_orientation_when_resized_then_output_is_upright_and_within_bounds(
    eng: Engine, tmp_path: Path, orientation: int | None, size: tuple[int, int], top: Any, bottom: Any
) -> None:
    src = jpeg(tmp_path / "in" / "photo.jpg", 800, 400, orientation=orientation)
    rec = await run(eng, {"inputs": [str(src)], "output_dir": str(tmp_path / "out"), "max_width": 400,
                          "max_height": 200})  # fmt: skip
    assert rec.state == TaskState.COMPLETED, rec.error
    got_size, fmt, im = opened(tmp_path / "out" / "photo.jpg")
    assert got_size == size and fmt == "JPEG"
    w, h = got_size
    if orientation in (6, 8):
        assert near(im.getpixel((w // 2, 5)), top) and near(im.getpixel((w // 2, h - 5)), bottom)
    else:
        left = im.getpixel((5, h // 2))
        assert near(left, top)
    assert im.getexif().get(ORIENTATION) in (None, 1)  # the pixels are upright: no tag left
    assert rec.result["count"] == 1 and rec.result["resized"] == 1
    assert rec.result["bytes_before"] == src.stat().st_size
    assert rec.result["bytes_after"] == (tmp_path / "out" / "photo.jpg").stat().st_size


def test_given_sizes_then_target_fits_the_box_keeps_aspect_and_never_upscales_unless_asked() -> None:
    assert target_size(4000, 3000, Options(max_width=1600, max_height=1600)) == (1600, 1200)
    assert target_size(3000, 4000, Options(max_width=1600, max_height=1600)) == (1200, 1600)
    assert target_size(4000, 3000, Options(max_width=1600)) == (1600, 1200)
    assert target_size(4000, 3000, Options(percent=25)) == (1000, 750)
    assert target_size(4000, 3000, Options(percent=50, max_width=1000)) == (1000, 750)
    assert target_size(800, 600, Options(max_width=1600)) == (800, 600)
    assert target_size(800, 600, Options(max_width=1600, upscale=True)) == (1600, 1200)
    assert target_size(800, 600, Options(percent=200)) == (800, 600)
    assert target_size(10000, 10, Options(max_width=100)) == (100, 1)  # never below 1 px
    assert target_size(640, 480, Options()) == (640, 480)


async def test_given_many_images_in_folders_when_recursive_then_one_child_each_and_tree_is_kept(
    eng: Engine, tmp_path: Path
) -> None:
    src = tmp_path / "in"
    for name in ("a.jpg", "b.JPG", "sub/c.jpeg", "sub/deeper/d.jpg"):
        jpeg(src / name, 640, 480)
    (src / "notes.txt").write_text("not an image")
    rec = await run(eng, {"inputs": [str(src)], "output_dir": str(tmp_path / "out"), "recursive": True,
                          "percent": 50})  # fmt: skip
    assert rec.state == TaskState.COMPLETED, rec.error
    kids = eng.children(rec.id)
    assert len(kids) == 4 and {k.kind for k in kids} == {"resize.image"}
    assert all(k.state == TaskState.COMPLETED for k in kids)
    for name in ("a.jpg", "b.JPG", "sub/c.jpeg", "sub/deeper/d.jpg"):
        assert opened(tmp_path / "out" / name)[0] == (320, 240)
    assert rec.result["count"] == 4 and rec.result["failed"] == 0
    assert any("1 other files ignored" in line.message for line in eng.logs(rec.id))
    flat = await run(eng, {"inputs": [str(src)], "output_dir": str(tmp_path / "flat"), "percent": 50})
    assert flat.result["count"] == 2  # without recursive: the top folder only


async def test_given_huge_image_when_resized_then_it_fits_and_is_fast_enough_to_test(
    eng: Engine, tmp_path: Path
) -> None:
    src = tmp_path / "huge.jpg"
    Image.new("RGB", (8000, 6000), (30, 120, 200)).save(src, "JPEG", quality=80)
    rec = await run(eng, {"inputs": [str(src)], "output_dir": str(tmp_path / "out"), "max_width": 1600,
                          "max_height": 1600})  # fmt: skip
    assert rec.state == TaskState.COMPLETED, rec.error
    size, fmt, im = opened(tmp_path / "out" / "huge.jpg")
    assert size == (1600, 1200) and fmt == "JPEG"
    assert near(im.getpixel((800, 600)), (30, 120, 200), 10)


# -- formats, alpha, quality, metadata ---------------------------------------------------


async def test_given_png_with_alpha_when_kept_as_png_then_alpha_survives_and_as_jpeg_it_is_flattened_on_white(
    eng: Engine, tmp_path: Path
) -> None:
    src = png_with_alpha(tmp_path / "logo.png", 300, 200)
    png = await run(eng, {"inputs": [str(src)], "output_dir": str(tmp_path / "png"), "max_width": 150})
    assert png.state == TaskState.COMPLETED, png.error
    size, fmt, im = opened(tmp_path / "png" / "logo.png")
    assert size == (150, 100) and fmt == "PNG" and im.mode == "RGBA"
    assert im.getpixel((5, 50))[3] == 0 and im.getpixel((140, 50))[3] == 255
    jpg = await run(eng, {"inputs": [str(src)], "output_dir": str(tmp_path / "jpg"), "format": "jpeg"})
    assert jpg.state == TaskState.COMPLETED, jpg.error
    size, fmt, im = opened(tmp_path / "jpg" / "logo.jpg")
    assert size == (300, 200) and fmt == "JPEG" and im.mode == "RGB"
    assert near(im.getpixel((5, 100)), (255, 255, 255), 5)  # transparent became white
    assert near(im.getpixel((290, 100)), (0, 255, 0), 40)


async def test_given_format_and_quality_then_output_has_that_format_and_lower_quality_is_smaller(
    eng: Engine, tmp_path: Path
) -> None:
    src = tmp_path / "in" / "noise.jpg"
    src.parent.mkdir()
    Image.effect_noise((600, 400), 60).convert("RGB").save(src, "JPEG", quality=95)
    base = {"inputs": [str(src)], "format": "webp"}
    hi = await run(eng, {**base, "output_dir": str(tmp_path / "hi"), "quality": 95})
    lo = await run(eng, {**base, "output_dir": str(tmp_path / "lo"), "quality": 20})
    assert hi.state == lo.state == TaskState.COMPLETED
    assert opened(tmp_path / "hi" / "noise.webp")[1] == "WEBP"
    assert (tmp_path / "lo" / "noise.webp").stat().st_size < (tmp_path / "hi" / "noise.webp").stat().st_size
    png = await run(eng, {"inputs": [str(src)], "format": "png", "output_dir": str(tmp_path / "png")})
    assert opened(tmp_path / "png" / "noise.png")[:2] == ((600, 400), "PNG")
    assert png.result["resized"] == 1


async def test_given_exif_when_strip_metadata_then_it_is_gone_else_it_is_kept_without_orientation(
    eng: Engine, tmp_path: Path
) -> None:
    src = jpeg(tmp_path / "cam.jpg", 400, 200, orientation=6, make="TestCam")
    await run(eng, {"inputs": [str(src)], "output_dir": str(tmp_path / "keep")})
    await run(eng, {"inputs": [str(src)], "output_dir": str(tmp_path / "strip"), "strip_metadata": True})
    kept = opened(tmp_path / "keep" / "cam.jpg")[2].getexif()
    assert kept.get(0x010F) == "TestCam" and kept.get(ORIENTATION) in (None, 1)
    assert opened(tmp_path / "keep" / "cam.jpg")[0] == (200, 400)
    stripped = opened(tmp_path / "strip" / "cam.jpg")[2]
    assert not stripped.getexif() and "exif" not in stripped.info


# -- failures ----------------------------------------------------------------------------


async def test_given_corrupt_and_non_image_files_among_good_ones_then_the_rest_is_done_and_failures_are_by_file(
    eng: Engine, tmp_path: Path
) -> None:
    src = tmp_path / "in"
    jpeg(src / "good1.jpg")
    jpeg(src / "good2.jpg")
    bad = truncated_jpeg(src / "broken.jpg")
    junk = src / "junk.jpg"
    junk.write_bytes(b"this is not a JPEG at all" * 10)
    rec = await run(eng, {"inputs": [str(src)], "output_dir": str(tmp_path / "out")}, fail_fast=False)
    assert rec.state == TaskState.COMPLETED, rec.error
    summary = rec.result
    assert summary["count"] == 4 and summary["resized"] == 2 and summary["failed"] == 2
    assert set(summary["failures"]) == {str(bad), str(junk)}
    assert "corrupt" in summary["failures"][str(bad)] and "not an image" in summary["failures"][str(junk)]
    broken_child = next(k for k in eng.children(rec.id) if k.payload["source"] == str(bad))
    assert broken_child.state == TaskState.FAILED and broken_child.attempt == 1  # permanent: no retry
    assert not (tmp_path / "out" / "broken.jpg").exists()
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temp files left


async def test_given_fail_fast_parent_when_an_image_is_corrupt_then_parent_fails_naming_it(
    eng: Engine, tmp_path: Path
) -> None:
    bad = truncated_jpeg(tmp_path / "broken.jpg")
    rec = await run(eng, {"inputs": [str(bad)], "output_dir": str(tmp_path / "out")})
    assert rec.state == TaskState.FAILED and str(bad) in (rec.error or "")


async def test_given_only_unreadable_inputs_then_task_fails_for_good(eng: Engine, tmp_path: Path) -> None:
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG but not really")
    rec = await run(eng, {"inputs": [str(junk)], "output_dir": str(tmp_path / "out")})
    assert rec.state == TaskState.FAILED and rec.attempt == 1 and "could be read" in (rec.error or "")
    empty = tmp_path / "empty"
    empty.mkdir()
    rec = await run(eng, {"inputs": [str(empty)], "output_dir": str(tmp_path / "out")})
    assert rec.state == TaskState.FAILED and "no images found" in (rec.error or "")


async def test_given_bad_payloads_then_submit_or_run_names_the_field(eng: Engine, tmp_path: Path) -> None:
    src = jpeg(tmp_path / "a.jpg")
    with pytest.raises(InvalidSubmission, match="quality"):
        await eng.submit("resize.images", {"inputs": [str(src)], "output_dir": "/tmp/x", "quality": 101})
    with pytest.raises(InvalidSubmission, match="format"):
        await eng.submit("resize.images", {"inputs": [str(src)], "output_dir": "/tmp/x", "format": "gif"})
    with pytest.raises(InvalidSubmission):
        await eng.submit("resize.images", {"inputs": [], "output_dir": "/tmp/x"})
    with pytest.raises(InvalidSubmission, match=r"^inputs\[0\]: no such file or folder"):
        await eng.submit("resize.images", {"inputs": [str(tmp_path / "nope.jpg")], "output_dir": "/tmp/x"})
    with pytest.raises(InvalidSubmission, match=r"^inputs\[0\]: must be an absolute path"):
        await eng.submit("resize.images", {"inputs": ["a.jpg"], "output_dir": "/tmp/x"})
    # Sent by another process (no submit-time checks there), the handler refuses the same way.
    kind = "resize.images"
    missing = await run_unchecked(
        eng, kind, {"inputs": [str(tmp_path / "nope.jpg")], "output_dir": str(tmp_path / "o")}
    )
    assert missing.state == TaskState.FAILED and missing.attempt == 1
    assert (missing.error or "").startswith("inputs[0]: no such file or folder")
    relative = await run_unchecked(eng, kind, {"inputs": ["a.jpg"], "output_dir": str(tmp_path / "o")})
    assert (relative.error or "").startswith("inputs[0]: must be an absolute path")
    with pytest.raises(InvalidSubmission, match="output_dir"):
        resize.validate({"inputs": [str(src)], "output_dir": str(src)})


# -- name patterns -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern",
    [
        "../{name}",
        "../../etc/{stem}{ext}",
        "/etc/{name}",
        "sub/{name}",
        "{stem}\\..\\x{ext}",
        "..",
        "{index:/>8}{ext}",  # a fill character that is a separator
        "{stem.__class__}",
        "{0}",
        "{}",
        "{stem!r}",
        "{nope}",
        "{stem",
        "{index:{width}}",
        "x\0y",
    ],
)
def test_given_name_pattern_that_could_escape_or_inject_then_it_is_refused(pattern: str) -> None:
    with pytest.raises(PatternError):
        check_pattern(pattern)
    with pytest.raises(InvalidSubmission, match=r"^name_pattern: "):
        resize.validate({"inputs": ["/"], "output_dir": "/tmp/out", "name_pattern": pattern})


def test_given_values_that_would_produce_a_separator_or_dots_then_render_refuses() -> None:
    base = {"stem": "a", "ext": ".jpg", "name": "a.jpg", "parent": "p", "format": "jpeg", "index": 1,
            "width": 1, "height": 1}  # fmt: skip
    assert render_name("{stem}_{width}x{height}{ext}", base) == "a_1x1.jpg"
    assert render_name("{index:04d}-{name}", base) == "0001-a.jpg"
    for stem in ("..", "a/b", "x\\y", ""):
        with pytest.raises(PatternError):
            render_name("{stem}", {**base, "stem": stem})


async def test_given_traversal_pattern_when_submitted_then_task_fails_and_nothing_is_written_outside(
    eng: Engine, tmp_path: Path
) -> None:
    src = jpeg(tmp_path / "in" / "a.jpg")
    out = tmp_path / "box" / "out"
    payload = {"inputs": [str(src)], "output_dir": str(out), "name_pattern": "../{name}"}
    with pytest.raises(InvalidSubmission, match=r"^name_pattern"):
        await run(eng, payload)
    rec = await run_unchecked(eng, "resize.images", payload)
    assert rec.state == TaskState.FAILED and rec.attempt == 1 and (rec.error or "").startswith("name_pattern")
    assert not (tmp_path / "box" / "a.jpg").exists()


async def test_given_child_payload_pointing_outside_output_dir_then_child_refuses(
    eng: Engine, tmp_path: Path
) -> None:
    src = jpeg(tmp_path / "a.jpg")
    res = await eng.submit("resize.image", {"source": str(src), "dest": str(tmp_path / "elsewhere.jpg"),
                                            "output_dir": str(tmp_path / "out")})  # fmt: skip
    rec = await eng.wait(res.id, timeout=30)
    assert rec.state == TaskState.FAILED and "not inside output_dir" in (rec.error or "")
    assert not (tmp_path / "elsewhere.jpg").exists()


async def test_given_symlinked_subfolder_leading_out_then_child_refuses(eng: Engine, tmp_path: Path) -> None:
    src = jpeg(tmp_path / "in" / "sub" / "a.jpg")
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "outside").mkdir()
    (out / "sub").symlink_to(tmp_path / "outside")
    rec = await run(eng, {"inputs": [str(tmp_path / "in")], "output_dir": str(out), "recursive": True},
                    fail_fast=False)  # fmt: skip
    assert rec.state == TaskState.FAILED and "leads outside output_dir" in (rec.error or "")
    assert not (tmp_path / "outside" / "a.jpg").exists()
    assert src.exists()


async def test_given_pattern_with_fields_and_same_names_then_outputs_are_named_and_kept_apart(
    eng: Engine, tmp_path: Path
) -> None:
    a = jpeg(tmp_path / "one" / "pic.jpg", 400, 200)
    b = jpeg(tmp_path / "two" / "pic.jpg", 400, 200)
    rec = await run(eng, {"inputs": [str(a), str(b)], "output_dir": str(tmp_path / "out"), "max_width": 200,
                          "name_pattern": "{parent}_{stem}_{width}x{height}{ext}"})  # fmt: skip
    assert rec.state == TaskState.COMPLETED, rec.error
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "one_pic_200x100.jpg",
        "two_pic_200x100.jpg",
    ]
    same = await run(eng, {"inputs": [str(a), str(b)], "output_dir": str(tmp_path / "same")})
    assert sorted(p.name for p in (tmp_path / "same").iterdir()) == ["pic-2.jpg", "pic.jpg"]
    assert same.result["resized"] == 2


async def test_given_output_dir_is_the_input_folder_then_originals_are_never_replaced(
    eng: Engine, tmp_path: Path
) -> None:
    src = jpeg(tmp_path / "a.jpg", 400, 200)
    before = src.read_bytes()
    rec = await run(eng, {"inputs": [str(tmp_path)], "output_dir": str(tmp_path), "max_width": 100,
                          "overwrite": True})  # fmt: skip
    assert rec.state == TaskState.FAILED and "replace the original" in (rec.error or "")
    assert src.read_bytes() == before


# -- overwrite ---------------------------------------------------------------------------


async def test_given_existing_output_then_it_is_skipped_unless_overwrite(eng: Engine, tmp_path: Path) -> None:
    src = jpeg(tmp_path / "a.jpg", 400, 200)
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.jpg").write_bytes(b"keep me")
    skip = await run(eng, {"inputs": [str(src)], "output_dir": str(out), "max_width": 100})
    assert skip.result["skipped"] == 1 and skip.result["resized"] == 0
    assert (out / "a.jpg").read_bytes() == b"keep me"
    over = await run(eng, {"inputs": [str(src)], "output_dir": str(out), "max_width": 100, "overwrite": True})
    assert over.result["resized"] == 1 and opened(out / "a.jpg")[0] == (100, 50)


# -- presets -----------------------------------------------------------------------------


async def test_given_builtin_presets_then_listed_and_a_submit_naming_one_uses_its_options(
    eng: Engine, tmp_path: Path
) -> None:
    names = [p.name for p in await presets.list_presets(eng, "resize.images")]
    assert names[:2] == ["Thumbnail 320px", "Web 1600px JPEG q85"]
    src = jpeg(tmp_path / "in" / "big.png", 1000, 500)  # a JPEG named .png: the format is read, not guessed
    rec = await run(
        eng, {"inputs": [str(src)], "output_dir": str(tmp_path / "out"), "preset": "Thumbnail 320px"}
    )
    assert rec.state == TaskState.COMPLETED, rec.error
    assert opened(tmp_path / "out" / "big_thumb.jpg")[:2] == ((320, 160), "JPEG")
    await run(eng, {"inputs": [str(src)], "output_dir": str(tmp_path / "own"), "preset": "Thumbnail 320px",
                    "max_width": 100})  # fmt: skip
    assert opened(tmp_path / "own" / "big_thumb.jpg")[0] == (100, 50)  # the payload's own field wins
    unknown = await run(eng, {"inputs": [str(src)], "output_dir": str(tmp_path / "x"), "preset": "Nope"})
    assert unknown.state == TaskState.FAILED and (unknown.error or "").startswith(
        "preset: no preset named 'Nope'"
    )


async def test_given_user_preset_when_saved_then_every_client_sees_it_and_it_can_be_deleted(
    eng: Engine, tmp_path: Path
) -> None:
    saved = await presets.save_preset(eng, "resize.images", "Square 64", {"max_width": 64, "max_height": 64})
    assert not saved.builtin
    client = await Client.open(eng.path)  # another process (the CLI) sees it in the database
    try:
        assert (await presets.get_preset(client, "resize.images", "Square 64")).options["max_width"] == 64
    finally:
        await client.close()
    src = jpeg(tmp_path / "a.jpg", 400, 200)
    rec = await run(eng, {"inputs": [str(src)], "output_dir": str(tmp_path / "out"), "preset": "Square 64"})
    assert opened(tmp_path / "out" / "a.jpg")[0] == (64, 32)
    assert rec.state == TaskState.COMPLETED
    await presets.delete_preset(eng, "resize.images", "Square 64")
    with pytest.raises(KeyError):
        await presets.get_preset(eng, "resize.images", "Square 64")
    with pytest.raises(InvalidArgument, match="built-in"):
        await presets.delete_preset(eng, "resize.images", "Thumbnail 320px")
    with pytest.raises(InvalidArgument, match="built-in"):
        await presets.save_preset(eng, "resize.images", "Thumbnail 320px", {"max_width": 10})
    with pytest.raises(InvalidSubmission, match=r"^preset\.quality"):
        await presets.save_preset(eng, "resize.images", "Bad", {"quality": 0})
    with pytest.raises(InvalidSubmission, match=r"^preset\.inputs"):
        await presets.save_preset(eng, "resize.images", "Bad", {"inputs": ["/x"]})


async def test_given_a_target_with_settings_then_presets_live_in_its_settings() -> None:
    class Settings:
        def __init__(self) -> None:
            self.values: dict[str, Any] = {}

        async def get_setting(self, name: str) -> Any:
            return self.values.get(name)

        async def set_setting(self, name: str, value: Any) -> None:
            self.values[name] = value

    db = Settings()
    await presets.save_preset(db, "resize.images", "Mine", {"percent": 50})
    assert db.values["presets"] == {"resize.images": {"Mine": {"percent": 50}}}
    applied = await presets.apply(
        db, "resize.images", {"inputs": ["/a"], "output_dir": "/o", "preset": "Mine"}
    )
    assert applied["percent"] == 50


async def test_given_a_file_name_that_is_not_utf8_then_it_is_listed_as_a_failure_and_the_rest_is_done(
    eng: Engine, tmp_path: Path
) -> None:
    src = tmp_path / "in"
    good = jpeg(src / "good.jpg")
    odd = os.fsdecode(os.fsencode(str(src)) + b"/caf\xe9.jpg")  # Latin-1 bytes, as old cameras wrote
    shutil.copyfile(good, odd)
    rec = await run(eng, {"inputs": [str(src)], "output_dir": str(tmp_path / "out")}, fail_fast=False)
    assert rec.state == TaskState.COMPLETED, rec.error
    assert rec.result["resized"] == 1 and rec.result["failed"] == 1
    assert [k for k in rec.result["failures"] if "caf\ufffd.jpg" in k]
