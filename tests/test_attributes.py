import pytest

from xsgpu.attributes import ATTRIBUTES, DOMAIN_FREQUENCIES, NAMES, SLUGS, label_columns, prob_columns, resolve_attribute


def test_seventeen_in_alphabetical_order():
    assert len(ATTRIBUTES) == 17
    assert list(NAMES) == sorted(NAMES, key=str.lower)
    assert len(set(SLUGS)) == 17
    assert len({a.colour for a in ATTRIBUTES}) == 17
    assert set(DOMAIN_FREQUENCIES) == set(SLUGS)


def test_columns_and_lookup():
    assert label_columns()[12] == "y__ring"
    assert prob_columns()[16] == "p__wedge_beamstop"
    for key in ("Diffuse low-q", "diffuse_low_q", "y__diffuse_low_q", "DIFFUSE LOW-Q", 4):
        assert resolve_attribute(key).slug == "diffuse_low_q"


def test_unknown_attribute_names_valid_ones():
    with pytest.raises(KeyError, match="Unknown attribute 'Donut'.*Valid names: BCC"):
        resolve_attribute("Donut")
    with pytest.raises(KeyError, match="out of range"):
        resolve_attribute(17)
