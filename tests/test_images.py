"""synartifact.images.to_rgb, the one image normalizer: every mode, bit depth, array layout and source, and the
same pixels from every entry point that takes images (classifier, reward, Spaces, SFT examples)."""

import io

import numpy as np
import pytest
import torch
from conftest import require_module
from PIL import Image

from synartifact.images import DEFAULT_MAX_PIXELS, MIN_SIDE, as_image_list, to_rgb

RAMP16 = np.arange(65536, dtype=np.uint16).reshape(256, 256)  # every 16-bit value once
RAMP8 = np.round(RAMP16 / 257.0).astype(np.uint8)  # value * 255 / 65535, rounded


def _pixels(image: Image.Image) -> np.ndarray:
    assert image.mode == "RGB"
    return np.asarray(image)


def _png(image: Image.Image, path=None, **save_kwargs):
    target = path or io.BytesIO()
    image.save(target, format="PNG", **save_kwargs)
    return path or target.getvalue()


# ------------------------------------------------------------------------------------------------------------
# 16-bit and 32-bit
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda tmp: Image.fromarray(RAMP16),  # I;16
        lambda tmp: Image.fromarray(RAMP16.astype(">u2")),  # I;16B
        lambda tmp: Image.fromarray(RAMP16.astype(np.int32)),  # I, as older Pillow opens 16-bit PNGs
        lambda tmp: RAMP16,
        lambda tmp: torch.from_numpy(RAMP16),
        lambda tmp: str(_png(Image.fromarray(RAMP16), tmp / "ramp16.png")),
    ],
    ids=["I;16", "I;16B", "I", "numpy-uint16", "torch-uint16", "png-path"],
)
def test_16_bit_ramp_is_scaled_not_clipped(make, tmp_path):
    rgb = _pixels(to_rgb(make(tmp_path)))
    assert rgb.shape == (256, 256, 3)
    np.testing.assert_array_equal(rgb[..., 0], RAMP8)
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])
    values = rgb[..., 0].ravel()
    assert values[0] == 0 and values[-1] == 255 and np.all(np.diff(values.astype(int)) >= 0)  # a ramp
    assert len(np.unique(values)) == 256
    assert (values == 255).mean() < 0.01  # clipping made 98% of it white


def test_32_bit_i_mode_outside_16_bits_refused():
    with pytest.raises(
        ValueError, match=r"Image 2: 32-bit 'I' mode values range from 70000 to 70000; only 0 to 65535"
    ):
        to_rgb(Image.fromarray(np.full((8, 8), 70000, dtype=np.int32)), 2)
    with pytest.raises(ValueError, match="range from -1"):
        to_rgb(Image.fromarray(np.full((8, 8), -1, dtype=np.int32)))


def test_float_f_mode_unit_range_scaled_otherwise_clipped():
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0, 0.2]] * 4, dtype=np.float32))
    assert unit.mode == "F"
    assert _pixels(to_rgb(unit))[0, :, 0].tolist() == [0, 128, 255, 51]
    levels = Image.fromarray(np.array([[-5.0, 100.4, 300.0, 2.0]] * 4, dtype=np.float32))
    assert _pixels(to_rgb(levels))[0, :, 0].tolist() == [0, 100, 255, 2]
    with pytest.raises(ValueError, match="NaN"):
        to_rgb(Image.fromarray(np.full((4, 4), np.nan, dtype=np.float32)))


# ------------------------------------------------------------------------------------------------------------
# Alpha and other modes
# ------------------------------------------------------------------------------------------------------------


def test_alpha_composited_on_white():
    assert to_rgb(Image.new("RGBA", (4, 4), (255, 0, 0, 0))).getpixel((0, 0)) == (255, 255, 255)
    half = to_rgb(Image.new("RGBA", (4, 4), (255, 0, 0, 128))).getpixel((0, 0))
    assert half[0] == 255 and abs(half[1] - 127) <= 1 and half[1] == half[2]
    assert to_rgb(Image.new("RGBA", (4, 4), (10, 20, 30, 255))).getpixel((0, 0)) == (10, 20, 30)
    assert to_rgb(Image.new("LA", (4, 4), (0, 0))).getpixel((0, 0)) == (255, 255, 255)
    assert to_rgb(Image.new("LA", (4, 4), (40, 255))).getpixel((0, 0)) == (40, 40, 40)
    assert to_rgb(Image.new("PA", (4, 4), (0, 0))).getpixel((0, 0)) == (255, 255, 255)
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
    palette.info["transparency"] = 1
    assert to_rgb(palette).getpixel((0, 0)) == (255, 255, 255)
    rgba_array = np.zeros((4, 4, 4), dtype=np.uint8)  # transparent black
    assert to_rgb(rgba_array).getpixel((0, 0)) == (255, 255, 255)


@pytest.mark.parametrize(
    "image, pixel",
    [
        (Image.new("L", (4, 5), 77), (77, 77, 77)),
        (Image.new("1", (4, 4), 1), (255, 255, 255)),
        (Image.new("CMYK", (4, 4), (0, 0, 0, 0)), (255, 255, 255)),
        (Image.new("CMYK", (4, 4), (255, 0, 0, 0)), (0, 255, 255)),
        (Image.new("RGB", (4, 4), (200, 100, 50)).convert("YCbCr"), (200, 100, 50)),
        (Image.new("RGB", (4, 4), (200, 100, 50)).convert("P"), (204, 102, 51)),  # the web palette
        (Image.new("RGBa", (4, 4), (10, 0, 0, 0)), (255, 255, 255)),
    ],
    ids=["L", "1", "CMYK-white", "CMYK-cyan", "YCbCr", "P", "RGBa"],
)
def test_modes_converted(image, pixel):
    rgb = to_rgb(image)
    assert rgb.mode == "RGB" and rgb.size == image.size
    assert all(abs(a - b) <= 2 for a, b in zip(rgb.getpixel((0, 0)), pixel)), rgb.getpixel((0, 0))


def test_unconvertible_mode_refused_with_its_name():
    with pytest.raises(ValueError, match="Image 3: PIL mode 'La' cannot be converted"):
        to_rgb(Image.new("La", (4, 4)), 3)


def test_exif_orientation_applied(tmp_path):
    image = Image.new("RGB", (8, 4), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 4, 4))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = _png(image, tmp_path / "rotated.png", exif=exif)
    for source in (path, str(path), Image.open(path), path.read_bytes()):
        rgb = to_rgb(source)
        assert rgb.size == (4, 8)
        assert rgb.getpixel((0, 0)) == (255, 0, 0) and rgb.getpixel((0, 7)) == (0, 0, 255)  # red on top
    assert to_rgb(image).size == (8, 4)  # no EXIF: untouched


# ------------------------------------------------------------------------------------------------------------
# Arrays and tensors
# ------------------------------------------------------------------------------------------------------------


def test_chw_and_hwc_give_the_same_image():
    hwc = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    chw = np.ascontiguousarray(hwc.transpose(2, 0, 1))
    expected = _pixels(to_rgb(Image.fromarray(hwc)))
    for source in (hwc, chw, torch.from_numpy(hwc), torch.from_numpy(chw)):
        np.testing.assert_array_equal(_pixels(to_rgb(source)), expected)
    unit = hwc / 255.0
    for source in (unit, unit.transpose(2, 0, 1), torch.from_numpy(unit), torch.from_numpy(unit).permute(2, 0, 1)):
        np.testing.assert_array_equal(_pixels(to_rgb(source)), expected)
    levels = torch.from_numpy(hwc).float().permute(2, 0, 1)  # a float tensor of 8-bit levels
    np.testing.assert_array_equal(_pixels(to_rgb(levels)), expected)
    np.testing.assert_array_equal(_pixels(to_rgb(levels.half())), expected)


def test_arrays_of_every_dtype():
    assert to_rgb(np.full((4, 4, 3), 0.5)).getpixel((0, 0)) == (128, 128, 128)
    assert to_rgb(np.full((4, 4), 1000, dtype=np.uint16)).getpixel((0, 0)) == (4, 4, 4)
    assert to_rgb(np.full((4, 4), 65535, dtype=np.uint16)).getpixel((0, 0)) == (255, 255, 255)
    assert to_rgb(np.eye(4, dtype=bool)).getpixel((1, 1)) == (255, 255, 255)
    assert to_rgb(np.eye(4, dtype=bool)).getpixel((0, 1)) == (0, 0, 0)
    assert to_rgb(np.full((4, 4), 9, dtype=np.int64)).getpixel((0, 0)) == (9, 9, 9)
    assert to_rgb(np.zeros((5, 7, 1), dtype=np.uint8)).size == (7, 5)
    assert to_rgb(np.zeros((1, 5, 7), dtype=np.uint8)).size == (7, 5)
    assert to_rgb(torch.full((3, 5, 7), 200.0)).getpixel((0, 0)) == (200, 200, 200)
    assert to_rgb(torch.zeros(5, 7, 3)).size == (7, 5)
    assert to_rgb(torch.ones(1, 5, 7, dtype=torch.bool)).getpixel((0, 0)) == (255, 255, 255)
    # A decoder's rounding just past [0, 1] is still a [0, 1] image, not a near-black [0, 255] one.
    assert to_rgb(torch.full((3, 4, 4), 1.0000001)).getpixel((0, 0)) == (255, 255, 255)
    assert to_rgb(torch.full((3, 4, 4), -1e-6)).getpixel((0, 0)) == (0, 0, 0)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.full((4, 4, 3), 2.0), r"float arrays must be in \[0, 1\]"),
        (torch.full((3, 4, 4), -1.0), "negative"),
        (torch.full((3, 4, 4), 300.0), "over 255"),
        (np.full((4, 4), 300, dtype=np.int32), "over 255"),
        (np.full((4, 4, 3), np.nan), "NaN"),
        (np.zeros((5, 5, 5), dtype=np.uint8), "no channel axis"),
        (np.array([["a"] * 4] * 4), "not an image type"),
    ],
)
def test_bad_arrays_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        to_rgb(bad, 1)


# ------------------------------------------------------------------------------------------------------------
# Sources: paths, bytes, datasets values
# ------------------------------------------------------------------------------------------------------------


def test_paths_bytes_and_datasets_values(tmp_path):
    path = _png(Image.new("RGBA", (6, 4), (1, 2, 3, 255)), tmp_path / "small.png")
    data = path.read_bytes()
    for source in (str(path), path, data, bytearray(data), {"bytes": data, "path": None}, {"path": str(path)}):
        rgb = to_rgb(source)
        assert rgb.mode == "RGB" and rgb.size == (6, 4) and rgb.getpixel((0, 0)) == (1, 2, 3)
    with pytest.raises(FileNotFoundError, match="Image 4: no such file .*missing.png"):
        to_rgb(str(tmp_path / "missing.png"), 4)
    with pytest.raises(ValueError, match="not a readable image"):
        to_rgb(b"no image here")


# ------------------------------------------------------------------------------------------------------------
# Sizes
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image, size",
    [
        (Image.new("RGB", (1, 1)), "1x1"),
        (Image.new("RGB", (64, 1)), "64x1"),
        (Image.new("L", (3, 3)), "3x3"),
        (np.zeros((64, 2, 3), dtype=np.uint8), "2x64"),
        (torch.rand(3, 1, 1), "1x1"),
    ],
)
def test_tiny_images_refused_naming_index_size_and_minimum(image, size):
    with pytest.raises(ValueError, match=rf"Image 5: {size} pixels is too small.*at least 4 x 4 pixels"):
        to_rgb(image, 5)


def test_tiny_images_refused_by_the_spaces_and_sft_with_their_own_context(tmp_path):
    from synartifact.prompts import to_sft_example

    with pytest.raises(ValueError, match=r"Dataset record 'dot'.*Image 0: 64x1 pixels is too small.*at least 4 x 4"):
        to_sft_example({"image": Image.new("RGB", (64, 1)), "image_id": "dot", "artifacts": []})
    require_module("gradio", "the spaces extra: pip install 'synartifact[spaces]'")
    from synartifact.webui.inputs import load_image

    path = _png(Image.new("RGB", (2, 2)), tmp_path / "dot.png")
    for source in (path, Image.new("RGB", (2, 2))):
        with pytest.raises(ValueError, match=r"too small \(2 x 2 pixels\).*at least 4 x 4 pixels"):
            load_image(source)


def test_min_side_is_what_the_image_processors_need():
    """transformers 4.57's CLIP image processor (LLaVA) misreads a 3-pixel-tall image as channels-first; MIN_SIDE is
    not misread on either stack (transformers 5 reads both right, so MIN_SIDE is one rule for both)."""
    from transformers import CLIPImageProcessor

    from synartifact.compat import TRANSFORMERS_5

    processor = CLIPImageProcessor(
        size={"shortest_edge": 8}, crop_size={"height": 8, "width": 8}, do_normalize=False, do_rescale=True
    )

    def red_after_processing(height: int) -> bool:
        pixels = processor(images=[Image.new("RGB", (16, height), (255, 0, 0))], return_tensors="np")["pixel_values"]
        return bool(np.allclose(pixels[0, :, 4, 4], [1.0, 0.0, 0.0]))

    assert red_after_processing(MIN_SIDE)
    assert red_after_processing(MIN_SIDE - 1) is TRANSFORMERS_5
    assert to_rgb(Image.new("RGB", (MIN_SIDE, MIN_SIDE))).size == (MIN_SIDE, MIN_SIDE)


def test_too_many_pixels_refused(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"Image 0: 11x10 = 110 pixels is over the limit of 100"):
        to_rgb(Image.new("RGB", (11, 10)), max_pixels=100)
    with pytest.raises(ValueError, match="over the limit of 100"):
        to_rgb(np.zeros((10, 11, 3), dtype=np.uint8), max_pixels=100)
    assert to_rgb(Image.new("RGB", (11, 10)), max_pixels=None).size == (11, 10)
    path = _png(Image.new("RGB", (32, 32)), tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # PIL's own decompression-bomb guard
    with pytest.raises(ValueError, match="too large to decode safely"):
        to_rgb(str(path), max_pixels=None)


def test_as_image_list_splits_batches_only():
    assert len(as_image_list(torch.rand(3, 3, 4, 4))) == 3
    assert len(as_image_list(torch.rand(3, 4, 4))) == 1
    assert len(as_image_list(np.zeros((4, 4)))) == 1
    assert len(as_image_list("a.png")) == 1 and len(as_image_list(["a.png", b"x"])) == 2


# ------------------------------------------------------------------------------------------------------------
# Every entry point gives the same pixels
# ------------------------------------------------------------------------------------------------------------


def _classifier_images(image):
    from synartifact.classifier import ArtifactClassifier

    bare = ArtifactClassifier.__new__(ArtifactClassifier)  # no model: only the input conversion runs
    bare.max_pixels = DEFAULT_MAX_PIXELS
    (rgb,) = bare.load_images([image])
    return rgb


def _reward_images(image):
    from synartifact.reward import images_to_pil

    (rgb,), nonfinite = images_to_pil([image])
    assert nonfinite == 0
    return rgb


def _spaces_image(image):
    require_module("gradio", "the spaces extra: pip install 'synartifact[spaces]'")
    from synartifact.webui.inputs import load_image

    return load_image(image)


def _sft_image(image):
    from synartifact.prompts import to_sft_example

    return to_sft_example({"image": image, "image_id": "odd", "artifacts": []})["images"][0]


# the Spaces' entry point last: without gradio it stops the test (a failure under `make test`, which installs
# gradio; a skip in an ad-hoc run) only after the other four were compared
ENTRY_POINTS = {
    "to_rgb": to_rgb,
    "classifier": _classifier_images,
    "reward": _reward_images,
    "sft": _sft_image,
    "spaces": _spaces_image,
}

_RAMP_SMALL = (np.arange(64 * 48, dtype=np.uint32).reshape(48, 64) * 21).astype(np.uint16)  # 0 .. 64491


def _palette_image():
    image = Image.new("P", (12, 8), 0)
    image.putpalette([30, 60, 90, 200, 10, 10] + [0] * 762)
    image.paste(1, (0, 0, 6, 8))
    return image


ODD_INPUTS = {
    "16-bit": (lambda tmp: Image.fromarray(_RAMP_SMALL), (0, 0, 0)),
    "rgba": (lambda tmp: Image.new("RGBA", (12, 8), (255, 0, 0, 0)), (255, 255, 255)),
    "palette": (lambda tmp: _palette_image(), (200, 10, 10)),
    "cmyk": (lambda tmp: Image.new("CMYK", (12, 8), (255, 0, 0, 0)), (0, 255, 255)),
    "chw-float-tensor": (lambda tmp: torch.full((3, 8, 12), 0.5), (128, 128, 128)),
    "path-16-bit": (lambda tmp: str(_png(Image.fromarray(_RAMP_SMALL), tmp / "grey16.png")), (0, 0, 0)),
}


@pytest.mark.parametrize("case", list(ODD_INPUTS))
def test_every_entry_point_gives_the_same_pixels(case, tmp_path):
    make, first_pixel = ODD_INPUTS[case]
    reference = _pixels(to_rgb(make(tmp_path)))
    assert tuple(reference[0, 0]) == first_pixel
    if case.endswith("16-bit"):
        assert reference[-1, -1, 0] == round(64491 / 257) and (reference == 255).mean() < 0.01
    for name, convert in ENTRY_POINTS.items():
        pixels = _pixels(convert(make(tmp_path)))
        np.testing.assert_array_equal(pixels, reference, err_msg=f"{name} differs from to_rgb for {case}")
