"""Images as displayed (preresq.data.image): one small file per case, checked by the pixels
the model gets through ``item_images`` (the training/eval path), not only by opening."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from preresq.data.image import BACKGROUND, ImageDecodeError, open_image, to_rgb
from preresq.data.records import Record
from preresq.data.rows import MediaError, item_images

# Bounds that leave a 56x28 .. 224x224 image at its own size (sides already multiples of 28).
MIN_PX, MAX_PX = 28 * 28, 224 * 224


def model_pixels(path, name="x", line=None) -> np.ndarray:
    record = Record(id=name, paths=[path.name], mos=3.0, score=3.0, benchmark="fixture",
                    extra={} if line is None else {"label_line": line})
    (image,) = item_images(record, path.parent, MIN_PX, MAX_PX)
    assert image.mode == "RGB"
    return np.asarray(image).astype(int)


def test_exif_orientation_is_applied(tmp_path):
    # Stored 56 wide x 28 tall, red left / blue right; orientation 6 = "turn 90 degrees
    # clockwise to display" (a phone held upright): shown 28 wide x 56 tall, red on top.
    stored = np.zeros((28, 56, 3), np.uint8)
    stored[:, :28] = (255, 0, 0)
    stored[:, 28:] = (0, 0, 255)
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6
    image.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    pixels = model_pixels(tmp_path / "phone.jpg")
    assert pixels.shape == (56, 28, 3)
    assert np.abs(pixels[5, 14] - (255, 0, 0)).max() < 40   # top: what was the left
    assert np.abs(pixels[50, 14] - (0, 0, 255)).max() < 40  # bottom: what was the right


@pytest.mark.parametrize("orientation, top_left", [(1, (255, 0, 0)), (3, (0, 0, 255)), (8, (0, 0, 255))])
def test_other_orientations(tmp_path, orientation, top_left):
    stored = np.zeros((28, 56, 3), np.uint8)
    stored[:, :28] = (255, 0, 0)
    stored[:, 28:] = (0, 0, 255)
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(tmp_path / "o.png", exif=exif)
    pixels = model_pixels(tmp_path / "o.png")
    assert pixels.shape == ((28, 56, 3) if orientation in (1, 3) else (56, 28, 3))
    assert tuple(pixels[2, 2]) == top_left


def _grey16(values: np.ndarray) -> Image.Image:
    return Image.fromarray(values.astype(np.uint16))


def test_sixteen_bit_grey_png_is_scaled_not_clipped(tmp_path):
    values = np.tile(np.linspace(0, 65535, 56).round().astype(np.uint16), (28, 1))
    _grey16(values).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as raw:
        assert raw.mode in ("I;16", "I")  # Pillow's modes for a 16-bit grey PNG
    pixels = model_pixels(tmp_path / "deep.png")
    expected = np.rint(values / 257.0).astype(int)
    assert np.array_equal(pixels[..., 0], expected)
    assert np.array_equal(pixels[..., 0], pixels[..., 2])
    assert pixels.min() == 0 and pixels.max() == 255 and len(np.unique(pixels)) > 40


@pytest.mark.parametrize("mode", ["I;16B", "I"])
def test_other_sixteen_bit_modes(mode):
    values = np.array([[0, 257, 32896, 65535]], np.uint16)
    image = _grey16(values).convert("I") if mode == "I" else Image.frombytes(
        "I;16B", (4, 1), values.astype(">u2").tobytes())
    assert image.mode == mode
    assert np.asarray(to_rgb(image))[0, :, 0].tolist() == [0, 1, 128, 255]


def _png_rgb48(path, rgb16: np.ndarray) -> None:
    """A 16-bit-per-channel RGB PNG, written by hand (Pillow cannot write one)."""
    h, w, _ = rgb16.shape
    raw = b"".join(b"\x00" + rgb16[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_sixteen_bit_rgb_png(tmp_path):
    rgb16 = np.zeros((28, 28, 3), np.uint16)
    rgb16[..., 0], rgb16[..., 1], rgb16[..., 2] = 65535, 32896, 4112
    _png_rgb48(tmp_path / "rgb48.png", rgb16)
    pixels = model_pixels(tmp_path / "rgb48.png")
    assert np.abs(pixels[3, 3] - (255, 128, 16)).max() <= 1


def test_transparency_is_composited_on_white(tmp_path):
    rgba = np.zeros((28, 56, 4), np.uint8)
    rgba[:, :28] = (255, 0, 0, 0)      # invisible red: must not show
    rgba[:, 28:] = (0, 0, 0, 128)      # half-transparent black: mid grey on white
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    pixels = model_pixels(tmp_path / "alpha.png")
    assert BACKGROUND == (255, 255, 255)
    assert tuple(pixels[5, 5]) == (255, 255, 255)
    assert np.abs(pixels[5, 40] - 127).max() <= 1


def test_palette_with_transparent_colour(tmp_path):
    image = Image.new("P", (28, 28), 0)
    image.putpalette([0, 255, 0, 255, 0, 0] + [0] * 762)  # 0 green, 1 red
    image.paste(1, (14, 0, 28, 28))
    image.save(tmp_path / "pal.png", transparency=0)  # green is the transparent colour
    image.save(tmp_path / "pal.gif", transparency=0)
    for name in ("pal.png", "pal.gif"):
        pixels = model_pixels(tmp_path / name)
        assert tuple(pixels[5, 5]) == (255, 255, 255), name
        assert tuple(pixels[5, 20]) == (255, 0, 0), name


@pytest.mark.parametrize("mode, key, other", [("RGB", (0, 255, 0), (255, 0, 0)), ("L", 50, 200),
                                               ("I;16", 0, 40000)])
def test_transparent_colour_of_rgb_grey_and_16_bit_pngs(tmp_path, mode, key, other):
    if mode == "I;16":  # Pillow's paste of an int into I;16 truncates it: build it in numpy
        values = np.full((28, 28), key, np.uint16)
        values[:, 14:] = other
        image = _grey16(values)
    else:
        image = Image.new(mode, (28, 28), key)
        image.paste(other, (14, 0, 28, 28))
    image.save(tmp_path / "key.png", transparency=key)
    pixels = model_pixels(tmp_path / "key.png")
    shown = {"RGB": (255, 0, 0), "L": (200, 200, 200), "I;16": (156, 156, 156)}[mode]
    assert tuple(pixels[3, 3]) == BACKGROUND and tuple(pixels[3, 20]) == shown


def test_grey_with_alpha_and_plain_grey(tmp_path):
    la = Image.new("LA", (28, 28), (0, 0))
    la.paste((60, 255), (14, 0, 28, 28))
    la.save(tmp_path / "la.png")
    pixels = model_pixels(tmp_path / "la.png")
    assert tuple(pixels[3, 3]) == (255, 255, 255) and tuple(pixels[3, 20]) == (60, 60, 60)
    Image.new("L", (28, 28), 77).save(tmp_path / "l.png")
    assert np.all(model_pixels(tmp_path / "l.png") == 77)


def test_cmyk_jpeg(tmp_path):
    Image.new("CMYK", (28, 28), (255, 0, 0, 0)).save(tmp_path / "cmyk.jpg", quality=95)
    pixels = model_pixels(tmp_path / "cmyk.jpg")
    assert np.abs(pixels[10, 10] - (0, 255, 255)).max() < 10  # pure cyan


def test_animated_file_gives_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (28, 28), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert np.abs(model_pixels(tmp_path / "anim.gif")[3, 3] - (255, 0, 0)).max() < 10


def test_small_image_is_enlarged_to_min_pixels(tmp_path):
    Image.new("RGB", (7, 5), (10, 200, 30)).save(tmp_path / "tiny.png")
    pixels = model_pixels(tmp_path / "tiny.png")
    h, w, _ = pixels.shape
    assert h % 28 == 0 and w % 28 == 0 and h * w >= MIN_PX
    assert tuple(pixels[h // 2, w // 2]) == (10, 200, 30)


def test_extreme_aspect_ratio_names_file_and_label_line(tmp_path):
    Image.new("RGB", (201 * 4, 4)).save(tmp_path / "strip.png")
    with pytest.raises(MediaError, match=r"strip\.png.*label line 12.*aspect ratio over 200"):
        model_pixels(tmp_path / "strip.png", line=12)
    Image.new("RGB", (200 * 4, 4)).save(tmp_path / "ok.png")
    assert model_pixels(tmp_path / "ok.png").shape[2] == 3


def test_float_and_wide_integer_images_are_refused(tmp_path):
    Image.fromarray(np.full((4, 4), 0.5, np.float32)).save(tmp_path / "f.tiff")
    with pytest.raises(ImageDecodeError, match=r"f\.tiff.*float"):
        open_image(tmp_path / "f.tiff")
    Image.fromarray(np.full((4, 4), 70000, np.int32)).save(tmp_path / "i.tiff")
    with pytest.raises(ImageDecodeError, match=r"i\.tiff.*outside 0\.\.65535"):
        open_image(tmp_path / "i.tiff")


def test_truncated_image_raises_naming_it(tmp_path):
    Image.new("RGB", (64, 64), (1, 2, 3)).save(tmp_path / "t.png")
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match=r"t\.png.*label line 4"):
        model_pixels(tmp_path / "t.png", line=4)


# --------------------------------------------------------------------------- colour profiles

# Display P3's primaries adapted to D50 (as Apple's profile states them), with a 2.2 gamma.
P3_COLORANTS = [(0.515102, 0.241182, -0.001050), (0.291965, 0.692236, 0.041882),
                (0.157153, 0.066574, 0.784073)]
# LittleCMS's built-in sRGB, D50-adapted (the PCS of ICC profiles).
SRGB_COLORANTS = [(0.436041, 0.222485, 0.013920), (0.385113, 0.716905, 0.097067),
                  (0.143046, 0.060610, 0.713913)]


def icc_profile(description: str, colorants, gamma: float) -> bytes:
    """A minimal ICC v2 display profile (matrix and gamma curves), written by hand."""
    def fixed(x):
        return struct.pack(">i", round(x * 65536))

    def xyz(x, y, z):
        return b"XYZ \0\0\0\0" + fixed(x) + fixed(y) + fixed(z)

    text = description.encode("ascii") + b"\0"
    tags = {b"desc": b"desc\0\0\0\0" + struct.pack(">I", len(text)) + text + b"\0" * 8 + b"\0" * 3 + b"\0" * 67,
            b"cprt": b"text\0\0\0\0" + b"none\0",
            b"wtpt": xyz(0.9642, 1.0, 0.8249)}
    for name, colorant in zip((b"rXYZ", b"gXYZ", b"bXYZ"), colorants, strict=True):
        tags[name] = xyz(*colorant)
    for name in (b"rTRC", b"gTRC", b"bTRC"):
        tags[name] = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"
    table, data = b"", b""
    offset = 128 + 4 + 12 * len(tags)
    for name, body in tags.items():
        body += b"\0" * (-len(body) % 4)
        table += name + struct.pack(">II", offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = (struct.pack(">I", size) + b"\0" * 4 + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ "
              + struct.pack(">6H", 2026, 1, 1, 0, 0, 0) + b"acsp" + b"\0" * 28 + fixed(0.9642)
              + fixed(1.0) + fixed(0.8249) + b"\0" * 48)
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data


def p3_to_srgb(rgb) -> np.ndarray:
    """The colour-managed answer, worked out independently: P3 (gamma 2.2) -> XYZ (D50) -> sRGB."""
    linear = (np.asarray(rgb, float) / 255) ** 2.2
    xyz = np.array(P3_COLORANTS).T @ linear
    srgb = np.clip(np.linalg.solve(np.array(SRGB_COLORANTS).T, xyz), 0, 1)
    encoded = np.where(srgb <= 0.0031308, 12.92 * srgb, 1.055 * srgb ** (1 / 2.4) - 0.055)
    return np.rint(encoded * 255)


@pytest.mark.parametrize("colour", [(200, 120, 60), (60, 160, 90), (128, 128, 128)])
def test_display_p3_photo_is_shown_in_srgb(tmp_path, colour):
    """Beyond the issue: an iPhone photo tagged Display P3. Read as sRGB, its colours are
    duller than what a colour-managed viewer shows; converted, they match the maths."""
    profile = icc_profile("Display P3 (test)", P3_COLORANTS, 2.2)
    Image.new("RGB", (56, 28), colour).save(tmp_path / "p3.png", icc_profile=profile)
    pixels = model_pixels(tmp_path / "p3.png")
    expected = p3_to_srgb(colour)
    assert np.abs(pixels - expected).max() <= 2
    if colour != (128, 128, 128):
        assert np.abs(expected - colour).max() >= 15  # the profile matters for these colours
    # Opened first by the caller (the scoring API's PIL input): the same pixels.
    with Image.open(tmp_path / "p3.png") as image:
        assert np.array_equal(np.asarray(open_image(image)), pixels)


def test_srgb_and_unreadable_profiles_leave_pixels_alone(tmp_path, caplog):
    colour = (200, 120, 60)
    Image.new("RGB", (56, 28), colour).save(
        tmp_path / "srgb.png", icc_profile=icc_profile("sRGB IEC61966-2.1", SRGB_COLORANTS, 2.2))
    assert np.all(model_pixels(tmp_path / "srgb.png") == colour)
    Image.new("RGB", (56, 28), colour).save(tmp_path / "bad.png", icc_profile=b"not a profile" * 20)
    with caplog.at_level("WARNING", logger="preresq.data.image"):
        assert np.all(model_pixels(tmp_path / "bad.png") == colour)
    assert "bad.png: its ICC profile cannot be read" in caplog.text
