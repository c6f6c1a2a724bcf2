"""The profile parser: what it accepts, what it compiles to, and each specific error."""

from __future__ import annotations

import json

import pytest

from mailer.errors import InputError, ProfileError
from mailer.matching import Profile, parse_profile
from mailer.matching.profile import ALL, AUTHOR, CATEGORY, TEXT, TITLE, Term


def error(text: str) -> ProfileError:
    """The error a profile raises."""
    with pytest.raises(ProfileError) as caught:
        parse_profile(text)
    return caught.value


@pytest.mark.parametrize(
    ("text", "reason", "position"),
    [
        ("", "the profile is empty; write some keywords, or * for every paper", 0),
        (" ,\n, ", "the profile is empty; write some keywords, or * for every paper", 0),
        ('robots, "world model', 'unbalanced quote: this " is never closed', 8),
        ('"world\nmodel"', 'unbalanced quote: this " is not closed on its line', 0),
        ("-survey", "the profile only has exclusions; add an interest (or * for every paper)", 0),
        (
            'robots -x\n-"position paper"',
            "",  # not an error: robots is an interest
            None,
        ),
        ("a, -survey, -review", "", None),
        ("robots, ?!", "the interest '?!' has no letters or digits", 8),
        ('robots, ""', 'an empty "" phrase has no letters or digits', 8),
        ('robots "--"', 'the phrase "--" has no letters or digits', 7),
        (
            "foo:bar",
            "unknown scope 'foo:' (use author:, cat: or title:, or put the text in quotes)",
            0,
        ),
        ("robots title: x", "'title:' needs a word or a \"phrase\" right after the colon", 7),
        ("author:", "'author:' needs a word or a \"phrase\" right after the colon", 0),
        ("author:!!", "'author:!!' has no name to search for", 0),
        ("cat:cs/RO", "'cat:cs/RO' is not an arXiv category such as cat:cs.RO", 0),
        ("title:??", "'title:??' has no letters or digits to search for", 0),
        ("* robots", "* means every paper and must be an interest on its own", 0),
        ("robots, -*", "* means every paper and must be an interest on its own", 8),
    ],
)
def test_parser_errors(text: str, reason: str, position: int | None) -> None:
    """Each invalid profile gets its own reason and the position of the problem."""
    if not reason:
        assert parse_profile(text).interests
        return
    caught = error(text)
    assert caught.reason == reason
    assert caught.position == position
    assert isinstance(caught, InputError)
    assert "\n" not in str(caught)


def test_limits_on_length_and_interest_count() -> None:
    """Over 2,000 characters or 100 interests is refused; exactly at the limits is fine."""
    assert len(parse_profile(",".join(f"w{i}" for i in range(100))).interests) == 100
    too_many = error(",".join(f"w{i}" for i in range(101)))
    assert too_many.reason == "more than 100 interests"
    assert too_many.position == len(",".join(f"w{i}" for i in range(100))) + 1
    parse_profile("x" * 2000)
    too_long = error("x" * 2001)
    assert too_long.reason == "the profile is 2,001 characters long; the limit is 2,000"
    assert str(too_long) == (
        "invalid profile: the profile is 2,001 characters long; the limit is 2,000 "
        "(at character 2001)"
    )


def test_compiled_terms() -> None:
    """Each syntax element compiles to the documented term."""
    profile = parse_profile(
        'Self-Supervised learning, author:"Levine, Sergey" cat:cs.RO title:Transformers\n'
        '-survey -"Position Papers"'
    )
    first, second = profile.interests
    assert first.text == "Self-Supervised learning"
    assert set(first.terms) == {Term(TEXT, ("self", "supervis")), Term(TEXT, ("learn",))}
    assert set(second.terms) == {
        Term(AUTHOR, ("levine", "sergey")),
        Term(CATEGORY, ("cs.ro",)),
        Term(TEXT, ("transform",), TITLE),
    }
    assert profile.exclusions == (Term(TEXT, ("survey",)), Term(TEXT, ("posit", "paper")))
    (everything,) = parse_profile('*\n-survey -"Position Papers"').interests
    assert everything.terms == (Term(ALL, ()),) and everything.is_all


def test_interest_text_drops_exclusions_and_normalises_space() -> None:
    """The interest text shown in the email is as written, minus exclusions."""
    profile = parse_profile("  diffusion \t  policy -survey  \n\n")
    assert [i.text for i in profile.interests] == ["diffusion policy"]


def test_duplicate_interests_collapse() -> None:
    """The same interest twice (any order, any case) is one interest."""
    profile = parse_profile("diffusion policy, Policy Diffusion, robots")
    assert [i.text for i in profile.interests] == ["diffusion policy", "robots"]


def test_quoted_commas_do_not_split() -> None:
    """A comma inside quotes belongs to the phrase."""
    profile = parse_profile('author:"Levine, Sergey", "cats, dogs"')
    assert len(profile.interests) == 2


def test_json_round_trip() -> None:
    """The compiled form round-trips exactly."""
    for text in ('Élan "world model", author:levine cat:cs.RO, -survey', "*, -survey"):
        profile = parse_profile(text)
        assert Profile.from_json(profile.to_json()) == profile


def test_json_rejects_an_older_version() -> None:
    """A well-formed version-1 compiled profile is refused, so the planner re-parses the text."""
    interest = {"text": "robots", "terms": [["text", "any", ["robot"]]]}
    old = json.dumps({"v": 1, "interests": [interest], "exclusions": []})
    with pytest.raises(ProfileError, match="version 1"):
        Profile.from_json(old)


def test_json_shares_decoded_interests() -> None:
    """Loading the same compiled interest twice gives the same objects (cheap cache hits)."""
    stored = parse_profile("diffusion policy, robots, -survey").to_json()
    first, second = Profile.from_json(stored), Profile.from_json(stored)
    assert first == second
    assert all(a is b for a, b in zip(first.interests, second.interests, strict=True))
    assert first.exclusions[0] is second.exclusions[0]


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "{}",
        '{"v": 2, "interests": [], "exclusions": []}',
        '{"v": 1, "interests": [], "exclusions": []}',
        '{"v":1,"interests":[{"text":"x","terms":[["bogus","any",["x"]]]}],"exclusions":[]}',
        '{"v":2,"i":[["x","bogus any x"]],"x":[]}',
        '{"v":2,"i":[["x","text any"]],"x":[]}',
        '{"v":2,"i":[["x",["text","any","x"]]],"x":[]}',
        '{"v":2,"i":[["x"]],"x":[]}',
        '{"v":2,"i":[["x","text any x"]],"x":[5]}',
        '{"v":2,"i":"x","x":[]}',
    ],
)
def test_json_rejects_garbage(stored: str) -> None:
    """A corrupt compiled profile is a ProfileError, not a crash."""
    with pytest.raises(ProfileError):
        Profile.from_json(stored)


def test_an_interest_compiled_elsewhere_reports_its_own_positions() -> None:
    """Interests are compiled once wherever they stand: positions still name this profile's."""
    parse_profile("-survey, robots")  # "-survey" and "robots" compiled (cached) at position 0
    assert error(" ,  -survey").position == 4
    assert error("robots, ?!").position == 8
    assert error("robots,   ?!").position == 10
    assert error("robots, *").position == 8
    assert error("robots,\n   *").position == 11


@pytest.mark.parametrize(
    "text",
    [
        "robots, world model, -survey",
        'a, "b, c", d\ne',
        'title:"diffusion policy", author:"Ada Lovelace", cat:cs.RO',
        "x,,y,\n,z,",
    ],
)
def test_a_profile_parses_the_same_cached_or_not(text: str) -> None:
    from mailer.matching import parser

    parser._compiled_at_zero.cache_clear()
    cold = parse_profile(text)
    assert parse_profile(text) == cold
    assert parse_profile(" , " + text).interests == cold.interests
