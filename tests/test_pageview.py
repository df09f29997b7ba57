"""What a page shows of a story, from values alone: directions by language, dates in a language, media as links."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from aggregator.models import Enclosure
from aggregator.output.pageview import (FileView, file_view, format_date, language, page_content, page_language,
                                         story_key)

WHEN = datetime(2021, 9, 27, 10, 5, tzinfo=timezone.utc)


@pytest.mark.parametrize("tag", ["fa", "fa-IR", "ar", "ar-EG", "ps", "ur", "he", "iw", "sd", "ckb", "ku-Arab",
                                 "yi", "dv", "ug", "az-Arab", "pa-Arab"])
def test_right_to_left_languages(tag):
    assert language(tag).dir == "rtl"


@pytest.mark.parametrize("tag", ["en", "en-GB", "de", "fr", "ru", "zh-Hans", "ja", "ku", "az", "sr-Latn", "hi"])
def test_left_to_right_languages(tag):
    assert language(tag).dir == "ltr"


def test_an_undeclared_language_has_no_direction_and_a_page_falls_back_to_english():
    assert language(None).tag == language("").tag == "" and language(None).dir is None
    assert (page_language(None).tag, page_language(None).dir) == ("en", "ltr")
    assert (page_language("fa").tag, page_language("fa").dir) == ("fa", "rtl")


@pytest.mark.parametrize("pattern, tag, shown", [
    ("%Y-%m-%d", "en", "2021-09-27"),
    ("%Y-%m-%d", "", "2021-09-27"),
    ("%d %B %Y", "en", "27 September 2021"),
    ("%d %B %Y", "de", "27 September 2021"),
    ("%A %d %b", "fr", "lundi 27 sept."),
    ("%d %B %Y", "fa", "۲۷ سپتامبر ۲۰۲۱"),
    ("%d %B %Y", "ar", "27 سبتمبر 2021"),
    ("%Y-%m-%d %H:%M %Z", "en", "2021-09-27 10:05 UTC"),
    ("100%% %Y", "en", "100% 2021"),
])
def test_dates_in_the_pattern_and_the_language(pattern, tag, shown):
    assert format_date(WHEN, pattern, tag) == shown


def test_remote_media_become_links_and_inline_images_stay():
    html = ('<p>a <img src="https://img.example/a.png" alt="A map"> b</p>'
            '<p><a href="https://x.example/"><img src="https://img.example/b.png" alt="B"></a></p>'
            '<video src="https://v.example/c.mp4" controls></video>'
            '<audio controls><source src="https://v.example/d.mp3" type="audio/mpeg"></audio>'
            '<img src="data:image/png;base64,iVBORw0KGgo=" alt="inline">')
    out = page_content(html)
    assert "https://img.example/a.png" in out and '<img src="https://' not in out
    assert '<a href="https://img.example/a.png" rel="noopener noreferrer" class="media-link">[image: A map]</a> b' in out
    assert '<a href="https://x.example/" rel="noopener noreferrer"><span class="media-link">[image: B]</span></a>' in out
    assert '>[video]</a>' in out and 'href="https://v.example/d.mp3"' in out and "<source" not in out
    assert '<img src="data:image/png;base64,iVBORw0KGgo="' in out


def test_content_is_sanitised_again_for_a_page():
    assert page_content('<p onclick="x()">hi</p><script>alert(1)</script>') == "<p>hi</p>"


def test_an_enclosure_is_listed_by_its_kind_file_name_type_and_size():
    assert file_view(Enclosure("https://cdn.example/shows/ep%201.mp3?source=feed", "audio/mpeg", 12_345_678)) == (
        FileView("audio", "https://cdn.example/shows/ep%201.mp3?source=feed", "ep 1.mp3", "audio/mpeg, 12.3 MB"))
    assert file_view(Enclosure("https://cdn.example/ep%00%0b2.mp3")).name == "ep2.mp3"  # no control characters
    assert file_view(Enclosure("https://cdn.example/", None, 999)) == FileView(
        "file", "https://cdn.example/", "cdn.example", "999 bytes")
    assert file_view(Enclosure("https://cdn.example/a.pdf", "application/pdf")).details == "application/pdf"
    assert [file_view(Enclosure("https://cdn.example/x", None, n)).details for n in (1000, 999_950, 10 ** 12)] == [
        "1.0 KB", "1.0 MB", "1.0 TB"]


def test_a_story_key_is_the_uuid_of_its_id_or_a_hash():
    assert story_key("urn:uuid:751A1133-060C-556E-9534-49041A9E087C") == "751a1133-060c-556e-9534-49041a9e087c"
    assert story_key("tag:example.org,2021:1") == story_key("tag:example.org,2021:1") != story_key("tag:x")
    assert len(story_key("urn:uuid:../../etc/passwd")) == 32  # not a uuid: hashed, never a path


def _format_date_by_definition(moment: datetime, pattern: str, tag: str) -> str:
    """format_date as it was first written: each directive of the pattern on its own, names and periods from
    the locale, strftime's digits replaced by the locale's own."""
    import re

    from babel import Locale, UnknownLocaleError

    from aggregator.output.pageview import DIGITS, NAMED

    locale = None
    for candidate in ((tag.lower().replace("_", "-"), tag.lower().replace("_", "-").split("-")[0]) if tag else ()):
        try:
            locale = Locale.parse(candidate, sep="-")
            break
        except (UnknownLocaleError, ValueError, TypeError):
            continue
    digits = DIGITS.get(getattr(locale, "default_numbering_system", None) or "latn" if locale else "latn", "")
    out = []
    for literal, directive in re.findall(r"([^%]*)(%.|$)", pattern):
        out.append(literal)
        if not directive:
            continue
        code = directive[1]
        if code in NAMED and locale is not None:
            kind, width = NAMED[code]
            names = getattr(locale, kind)["format"][width]
            out.append(names[moment.weekday()] if kind == "days" else names[moment.month])
        elif code == "p" and locale is not None:
            out.append(locale.periods.get("am" if moment.hour < 12 else "pm", moment.strftime("%p")))
        elif code == "Z":
            out.append("UTC")
        else:
            text = moment.strftime(directive)
            out.append(text.translate(str.maketrans("0123456789", digits)) if digits else text)
    return "".join(out)


@pytest.mark.parametrize("tag", ["", "en", "fa", "fa-IR", "ar", "ar-EG", "ps", "ur", "de", "ja", "hi", "he",
                                 "zh_Hant", "x-unknown", "qq"])
def test_format_date_is_each_directive_in_the_pages_language(tag):
    """Dates come out as the definition makes them (a plan per pattern and language is made once, for the
    three dates of every entry on every page): names, periods and digits of the language, literals kept."""
    patterns = ["%Y-%m-%d", "%d.%m.%Y", "%d %B %Y", "%A, %d %b %Y %H:%M %p %Z", "%I:%M %p", "%a %e %b", "%%d %j",
                "٪ %Y/%m/%d ساعت %H:%M", "no directive", "", "%Y%m%d%H%M%S"]
    moments = [datetime(2021, 9, 27, 13, 5, 9, tzinfo=timezone.utc), datetime(1999, 1, 3, 0, 0, tzinfo=timezone.utc),
               datetime(2024, 2, 29, 11, 59, 59, tzinfo=timezone.utc), datetime(2030, 12, 31, 23, 1, tzinfo=timezone.utc)]
    for pattern in patterns:
        for moment in moments:
            assert format_date(moment, pattern, tag) == _format_date_by_definition(moment, pattern, tag), (pattern, moment)
