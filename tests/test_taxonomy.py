import pytest

from synartifact.taxonomy import GROUPS, KINDS, SLUGS, get_kind, kinds_in_group


def test_kinds_in_paper_order():
    assert len(KINDS) == 13 and [k.index for k in KINDS] == list(range(13))
    assert KINDS[0].slug == "illegible_letters" and KINDS[2].slug == "distorted_components"
    assert KINDS[12].slug == "impractical_luminosity"
    assert len(set(SLUGS)) == 13 and all(k.group in GROUPS for k in KINDS)


@pytest.mark.parametrize(
    "spelling, slug",
    [
        ("localized_blur", "localized_blur"),
        ("Localized Blur", "localized_blur"),
        ("LOCALIZED-blur", "localized_blur"),
        ("Distorted and Deformated Components", "distorted_components"),
        ("distorted_and_deformated_components", "distorted_components"),
        (3, "duplicated_components"),
        ("11", "luminance_discrepancy"),
    ],
)
def test_lookup(spelling, slug):
    assert get_kind(spelling).slug == slug


def test_unknown_kind_lists_closest_and_valid():
    with pytest.raises(ValueError) as err:
        get_kind("localised blurr")
    msg = str(err.value)
    assert "localized_blur" in msg and "Did you mean" in msg and "impractical_luminosity" in msg
    with pytest.raises(ValueError, match="0-12"):
        get_kind(13)


def test_groups():
    assert {k.slug for k in kinds_in_group("lighting")} >= {"unrealistic_lighting", "luminance_discrepancy"}
    with pytest.raises(ValueError):
        kinds_in_group("nope")
