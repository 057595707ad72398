"""The question-answer template: the question, the reference answer, the parser and the SFT example conversion."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from synartifact.prompts import (
    ANSWER_MODES,
    NONE_ANSWER,
    build_messages,
    build_question,
    parse_answer,
    render_answer,
    to_sft_example,
)
from synartifact.report import Artifact
from synartifact.taxonomy import KINDS, SLUGS

# --------------------------------------------------------------------------------------------------------------
# Question
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ANSWER_MODES)
def test_question_lists_all_13_kinds_as_lettered_options_with_explanations(mode):
    question = build_question(mode)
    lines = question.splitlines()
    for kind in KINDS:
        letter = chr(ord("A") + kind.index)
        assert f"{letter}) {kind.name}: {kind.explanation}" in lines
    assert "N)" not in question
    assert NONE_ANSWER in question


def test_question_states_the_reference_format_of_each_mode():
    assert "[x0, y0, x1, y1]" in build_question("full")
    assert "[x0, y0, x1, y1]" not in build_question("labels")
    with pytest.raises(ValueError, match="labels, full"):
        build_question("json")


def test_messages_are_trl_vision_conversational():
    messages = build_messages("labels")
    assert messages == [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": build_question("labels")}]}
    ]


# --------------------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------------------


def test_render_labels_starts_each_line_with_the_option_letter_in_taxonomy_order():
    rows = [{"label": 7, "bbox": [0.1, 0.2, 0.3, 0.4], "caption": "blur"}, {"label": 1, "bbox": None, "caption": ""}]
    assert render_answer(rows, "labels") == "B) Awkward Facial Expression\nH) Localized Blur"
    assert render_answer([], "labels") == NONE_ANSWER
    assert render_answer([], "full") == NONE_ANSWER


def test_render_accepts_artifacts_and_dataset_dicts_alike():
    as_dicts = [{"label": 8, "bbox": [0.5, 0.5, 0.25, 0.75], "caption": "  colours\nbleed "}]
    as_objects = [Artifact("chromatic_irregularity", (0.5, 0.5, 0.25, 0.75), "colours bleed")]
    expected = "I) Chromatic Irregularity | [0.25, 0.50, 0.50, 0.75] | colours bleed"
    assert render_answer(as_dicts, "full") == expected
    assert render_answer(as_objects, "full") == expected


def test_render_refuses_unknown_kinds_with_a_message():
    with pytest.raises(ValueError, match="index 13 is out of range"):
        render_answer([{"label": 13}])
    with pytest.raises(ValueError, match="no 'label'"):
        render_answer([{"bbox": [0, 0, 1, 1]}])


# --------------------------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------------------------


def kinds(text, mode="labels"):
    return [a.kind for a in parse_answer(text, mode).artifacts]


@pytest.mark.parametrize(
    "text",
    [
        "B) Awkward Facial Expression\nH) Localized Blur",
        "b) awkward facial expression\nh) LOCALIZED BLUR",
        "  B)   Awkward Facial Expression  \n\n   H) Localized Blur\n",
        "B\nH",
        "(B) Awkward Facial Expression\n(H)",
        "Awkward Facial Expression\nLocalized Blur",
        "awkward_facial_expression\nlocalized_blur",
        "- B) Awkward Facial Expression\n- H) Localized Blur",
        "Answer: B) Awkward Facial Expression\nH) Localized Blur",
    ],
)
def test_parser_reads_letters_names_slugs_case_and_whitespace_as_well_formed(text):
    parsed = parse_answer(text)
    assert [a.kind for a in parsed.artifacts] == ["awkward_facial_expression", "localized_blur"]
    assert parsed.well_formed


def test_parser_none_answer():
    for text in ("None", "none.", "NONE", "No artifacts"):
        parsed = parse_answer(text)
        assert parsed.artifacts == [] and parsed.well_formed, text


@pytest.mark.parametrize(
    "text, expected",
    [
        ("B) Awkward Facial Expression\nB) Awkward Facial Expression", ["awkward_facial_expression"]),  # duplicate
        ("Sure! Here is what I see:\nH) Localized Blur\nHope this helps.", ["localized_blur"]),  # chatter
        ("H) Localized Blur\nB) Awkward Fac", ["localized_blur", "awkward_facial_expression"]),  # truncated
        ("Localised blur and chromatic irregularities", ["localized_blur", "chromatic_irregularity"]),  # loose
        ("B, H", ["awkward_facial_expression", "localized_blur"]),  # several on one line
        ("None\nH) Localized Blur", ["localized_blur"]),  # contradiction
        ("B) Localized Blur", ["awkward_facial_expression"]),  # letter and name disagree: the letter decides
        ("Distorted and Deformated Components", ["distorted_components"]),  # the paper's spelling: well formed
    ],
)
def test_parser_edge_cases_return_what_was_readable(text, expected):
    parsed = parse_answer(text)
    assert [a.kind for a in parsed.artifacts] == expected
    assert parsed.well_formed is (text == "Distorted and Deformated Components")


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "   \n ",
        "qz@@#",
        "\x00\x01",
        "The image is lovely.",
        "N) Nothing",
        None,
        42,
        b"B) Awkward Facial Expression",
        ["B"],
    ],
)
def test_parser_garbage_is_empty_and_not_well_formed(garbage):
    for mode in ANSWER_MODES:
        parsed = parse_answer(garbage, mode)
        assert parsed.artifacts == [] and not parsed.well_formed


def test_parser_never_raises_on_an_unknown_mode():
    parsed = parse_answer("B", mode="json")
    assert parsed.kinds == {"awkward_facial_expression"} and parsed.problems


def test_parser_full_mode_clips_and_orders_boxes():
    parsed = parse_answer("H) Localized Blur | [0.8, 1.4, -0.2, 0.3] | blurred corner", "full")
    assert parsed.artifacts == [Artifact("localized_blur", (0.0, 0.3, 0.8, 1.0), "blurred corner")]
    assert not parsed.well_formed  # the box was out of range


def test_parser_full_mode_keeps_same_kind_with_different_boxes_and_drops_exact_duplicates():
    line_a = "C) Distorted and Deformed Components | [0.10, 0.10, 0.20, 0.20] | hand"
    line_b = "C) Distorted and Deformed Components | [0.50, 0.50, 0.60, 0.60] | wheel"
    parsed = parse_answer("\n".join([line_a, line_b, line_a]), "full")
    assert [a.caption for a in parsed.artifacts] == ["hand", "wheel"]
    assert not parsed.well_formed


def test_parser_full_mode_truncated_box_keeps_the_kind():
    parsed = parse_answer("H) Localized Blur | [0.10, 0.20, 0.3", "full")
    assert parsed.kinds == {"localized_blur"} and parsed.artifacts[0].bbox is None
    assert not parsed.well_formed


# --------------------------------------------------------------------------------------------------------------
# Round trip
# --------------------------------------------------------------------------------------------------------------

coordinate = st.floats(min_value=-0.5, max_value=1.5, allow_nan=False, allow_infinity=False)
caption_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40)
artifacts = st.lists(
    st.builds(
        Artifact,
        kind=st.sampled_from(SLUGS),
        bbox=st.one_of(st.none(), st.tuples(coordinate, coordinate, coordinate, coordinate)),
        caption=st.one_of(st.none(), caption_text),
    ),
    max_size=6,
)


# out of order, a box out of [0, 1] with its corners swapped, a caption over two lines, a repeat that is one only
# once the caption is on one line, and an empty caption
MESSY = [
    Artifact("localized_blur", (0.7, 0.9, 0.123, -0.2), "  blurred\n  corner  "),
    Artifact("illegible_letters", None, None),
    Artifact("localized_blur", (0.7, 0.9, 0.123, -0.2), "blurred corner"),
    Artifact("illegible_letters", (0.123, 0.2, 0.3, 1.5), ""),
]
MESSY_RENDERED = {
    "labels": ("A) Illegible Letters\nH) Localized Blur", [Artifact("illegible_letters"), Artifact("localized_blur")]),
    "full": (
        "A) Illegible Letters | []\n"
        "A) Illegible Letters | [0.12, 0.20, 0.30, 1.00]\n"
        "H) Localized Blur | [0.12, 0.00, 0.70, 0.90] | blurred corner",
        [
            Artifact("illegible_letters", None, None),
            Artifact("illegible_letters", (0.12, 0.2, 0.3, 1.0), None),
            Artifact("localized_blur", (0.12, 0.0, 0.7, 0.9), "blurred corner"),
        ],
    ),
}


@pytest.mark.parametrize("mode", ANSWER_MODES)
def test_render_and_parse_normalize_by_hand(mode):
    """Taxonomy order (stable), boxes clipped with ordered corners and two decimals, captions on one line, repeats
    dropped: the expected text and artifacts are written out, not computed."""
    text, expected = MESSY_RENDERED[mode]
    assert render_answer(MESSY, mode) == text
    parsed = parse_answer(text, mode)
    assert parsed.artifacts == expected and parsed.well_formed


@settings(max_examples=200, deadline=None)
@given(items=artifacts, mode=st.sampled_from(ANSWER_MODES))
def test_render_then_parse_is_the_identity(items, mode):
    text = render_answer(items, mode)
    parsed = parse_answer(text, mode)
    assert parsed.well_formed and parsed.kinds == {a.kind for a in items}
    assert render_answer(parsed.artifacts, mode) == text
    assert parse_answer(render_answer(parsed.artifacts, mode), mode).artifacts == parsed.artifacts
    if mode == "full":  # every artifact with a kind, a box in [0, 1] with ordered corners, a one-line caption
        for a in parsed.artifacts:
            assert a.bbox is None or (0 <= a.bbox[0] <= a.bbox[2] <= 1 and 0 <= a.bbox[1] <= a.bbox[3] <= 1)
            assert a.caption is None or (a.caption == a.caption.strip() and "\n" not in a.caption)


# --------------------------------------------------------------------------------------------------------------
# SFT examples
# --------------------------------------------------------------------------------------------------------------


def row(image, artifacts):
    return {
        "image": image,
        "image_id": "img-1",
        "prompt": "a cat",
        "generator": "synth",
        "source": "synthetic",
        "width": 48,
        "height": 40,
        "other_artifacts_caption": "",
        "artifacts": artifacts,
    }


@pytest.mark.parametrize("mode", ANSWER_MODES)
def test_to_sft_example_is_trl_prompt_completion(mode):
    image = Image.new("RGBA", (48, 40), (10, 20, 30, 255))
    example = to_sft_example(
        row(image, [{"label": 11, "bbox": [0.1, 0.1, 0.5, 0.5], "caption": "too bright"}]), mode=mode, image_size=32
    )
    assert set(example) == {"images", "prompt", "completion"}
    (img,) = example["images"]
    assert img.mode == "RGB" and img.size == (32, 32)
    assert example["prompt"] == build_messages(mode)
    assert example["completion"] == [
        {
            "role": "assistant",
            "content": [
                {
                    "type": "text",
                    "text": render_answer(
                        [{"label": 11, "bbox": [0.1, 0.1, 0.5, 0.5], "caption": "too bright"}], mode
                    ),
                }
            ],
        }
    ]


def test_to_sft_example_clean_image_keeps_size_and_answers_none():
    example = to_sft_example(row(np.zeros((40, 48), dtype=np.uint8), []))
    assert example["images"][0].size == (48, 40) and example["images"][0].mode == "RGB"
    assert example["completion"][0]["content"][0]["text"] == NONE_ANSWER


def test_to_sft_example_names_the_record_and_field_on_bad_rows():
    with pytest.raises(ValueError, match="'img-1'.*'artifacts'"):
        bad = row(Image.new("RGB", (8, 8)), [])
        del bad["artifacts"]
        to_sft_example(bad)
    with pytest.raises(ValueError, match="'img-1'.*image"):
        to_sft_example(row("not an image", []))
    with pytest.raises(ValueError, match="'img-1'.*out of range"):
        to_sft_example(row(Image.new("RGB", (8, 8)), [{"label": 99}]))


def test_answer_kinds_is_the_unparsable_rule():
    from synartifact.prompts import answer_kinds

    assert answer_kinds("H) Localized Blur") == ({"localized_blur"}, False)
    assert answer_kinds("None") == (set(), False)
    assert answer_kinds("the picture looks fine to me") == (set(), True)
    assert answer_kinds("", known={"abnormal_texture"}) == ({"abnormal_texture"}, False)
