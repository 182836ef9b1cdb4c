"""The console's message catalogues: every key the pages and scripts name exists in English, and every
other language has exactly English's keys with the same `{placeholders}` (a missing one would show English
in the middle of Portuguese; a lost placeholder would drop a name or a number)."""

from __future__ import annotations

import re

from fiv_console.resources import STATIC_DIR, TEMPLATES_DIR

_ENTRY = re.compile(r'^\s*"([\w.]+)":\s*(.+?),?\s*$')
_PLACEHOLDER = re.compile(r"(?<!\{)\{(\w+)\}")


def catalogue(language: str) -> dict[str, set[str]]:
    """key → the placeholders of its text (of all its plural forms)."""
    entries: dict[str, set[str]] = {}
    for line in (STATIC_DIR / "i18n" / f"{language}.js").read_text(encoding="utf-8").splitlines():
        found = _ENTRY.match(line)
        if found:
            assert found[1] not in entries, f"{language}: {found[1]} twice"
            entries[found[1]] = set(_PLACEHOLDER.findall(found[2]))
    return entries


def test_every_language_has_englishs_keys_and_placeholders() -> None:
    english = catalogue("en")
    assert len(english) > 100
    for language in ("pt-BR",):
        other = catalogue(language)
        assert sorted(set(english) - set(other)) == [], f"{language} lacks these"
        assert sorted(set(other) - set(english)) == [], f"{language} has keys English does not"
        differing = [key for key in english if english[key] != other[key]]
        assert differing == [], f"{language}: placeholders differ"


def test_every_key_the_console_names_is_in_english() -> None:
    english = set(catalogue("en"))
    named: set[str] = set()
    for script in STATIC_DIR.rglob("*.js"):
        named |= set(re.findall(r'\bt\("([\w.]+)"', script.read_text(encoding="utf-8")))
    marked = re.compile(r'data-i18n(?:-label|-title|-placeholder)?="([\w.]+)"')
    for page in TEMPLATES_DIR.glob("*.html"):
        named |= set(marked.findall(page.read_text(encoding="utf-8")))
    assert len(named) > 100
    assert sorted(named - english) == []
