"""Text cleaning for chat utterances: AI Hub anonymization tokens, invisible characters and whitespace.

AI Hub replaced names, photos, links and the like with tokens such as ``#@이름#``
or ``#@시스템#사진#``. Left as they are, a model learns to write ``#@이름#`` into
diaries; replaced by a short Korean placeholder, it sees ordinary text that reads
well in a diary. The same policy applies when training and when predicting.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

ANONYMIZATION_POLICIES = ("placeholder", "keep", "drop")
DEFAULT_ANONYMIZATION = "placeholder"

# Token name -> placeholder. Names missing here get "(name)".
PLACEHOLDERS = {
    "이름": "(이름)",
    "사진": "(사진)",
    "이모티콘": "(이모티콘)",
    "기타": "(기타)",
    "검색": "(검색)",
    "소속": "(소속)",
    "URL": "(링크)",
    "주소": "(주소)",
    "계정": "(계정)",
    "금융": "(금융정보)",
    "번호": "(번호)",
    "전번": "(전화번호)",
    "신원": "(신원정보)",
    "동영상": "(동영상)",
    "파일": "(파일)",
    "삭제": "(삭제된 메시지)",
    "지도": "(지도)",
    "송금": "(송금)",
}

# Named emoticons (#@이모티콘#하하#) and system events (#@시스템#사진#) carry a second
# field; they must be matched before the plain one-field form.
_TOKEN = re.compile(r"#@(?:이모티콘#[^#\s]+#|시스템#([^#\s]+)#|([^#\s]+)#)")


def _placeholder(match: re.Match) -> str:
    name = match.group(1) or match.group(2) or "이모티콘"
    return PLACEHOLDERS.get(name, f"({name})")


# Characters a reader cannot see but a tokenizer can: a summary of zero-width spaces or Hangul fillers looks
# empty and is not, an ANSI colour code pasted from a terminal is learned as text. Chosen by Unicode property,
# not listed one by one, so that the next invisible character is covered too: every format character (Cf:
# zero-width and joiner characters, bidirectional marks, the BOM, the soft hyphen, tag characters, the Arabic
# letter mark, the Mongolian vowel separator...), every control (Cc) that is not whitespace, and the rest of
# Unicode's default-ignorable code points, which are letters or marks by category but are drawn as nothing:
# the Hangul fillers (U+3164, U+115F, U+1160, U+FFA0), variation selectors, the combining grapheme joiner.
# Kept: the prepended concatenation marks (Arabic number signs and the like), which are format characters
# that are drawn; whitespace, which becomes a space below; private-use characters, which fonts draw.
_DRAWN_FORMAT = {0x0600, 0x0601, 0x0602, 0x0603, 0x0604, 0x0605, 0x06DD, 0x070F, 0x0890, 0x0891, 0x08E2,
                 0x110BD, 0x110CD}
_IGNORABLE_LETTERS_AND_MARKS = [(0x034F, 0x034F), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F),
                                (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFFA0, 0xFFA0), (0xE0000, 0xE0FFF)]


def _invisible_ranges() -> list[tuple[int, int]]:
    """Code point ranges removed by :func:`remove_invisible`, from the Unicode tables of this Python."""
    chosen = set()
    # Format characters lie in the BMP, plane 1 and the tag block of plane 14: no need to scan all 1.1M.
    for cp in [*range(0x20000), *range(0xE0000, 0xE1000)]:
        category = unicodedata.category(chr(cp))
        if (category == "Cf" and cp not in _DRAWN_FORMAT) or (category == "Cc" and not chr(cp).isspace()):
            chosen.add(cp)
    for first, last in _IGNORABLE_LETTERS_AND_MARKS:
        chosen.update(range(first, last + 1))
    return _runs(chosen)


def _runs(code_points: Iterable[int]) -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    for cp in sorted(code_points):
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1] = (ranges[-1][0], cp)
        else:
            ranges.append((cp, cp))
    return ranges


def _char_class(ranges: list[tuple[int, int]]) -> str:
    return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)


_RANGES = _invisible_ranges()
# Terminal escape sequences go whole (CSI, OSC and two-byte ESC forms), then single invisible characters.
_INVISIBLE = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]?|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-_])?"
    r"|\x9b[0-?]*[ -/]*[@-~]?"
    f"|[{_char_class(_RANGES)}]"
)
# The invisible characters that str.isprintable() calls printable (letters and marks by category).
_PRINTABLE_INVISIBLE = re.compile(f"[{_char_class(_runs(cp for a, b in _RANGES for cp in range(a, b + 1) if chr(cp).isprintable()))}]")


def remove_invisible(text: str) -> str:
    """``text`` without control characters, terminal escape sequences, format characters and other code points
    that are drawn as nothing (Hangul fillers, variation selectors, tag characters)."""
    # isprintable() is False for every control and format character, and a C loop; the few invisible letters
    # and marks it passes are one more C scan. The substitution only runs on the rare text that needs it.
    if text.isprintable() and not _PRINTABLE_INVISIBLE.search(text):
        return text
    return _INVISIBLE.sub("", text)


def one_line(text: str) -> str:
    """``text`` with every run of whitespace, line breaks included (\\n, \\r, U+2028, U+0085...), as one space."""
    return text if text.isprintable() else " ".join(text.split())


def clean_lines(text: str) -> str:
    """A text written by a model (a teacher's diary), cleaned as an input's text is (:func:`clean_text`: no
    terminal escapes, control or invisible characters, NFC), its line breaks kept as ``\n``."""
    text = remove_invisible(text)
    if not text.isascii() and not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    return "\n".join(" ".join(line.split()) for line in text.splitlines()).strip()


def clean_text(text: str, anonymization: str = DEFAULT_ANONYMIZATION) -> str:
    """Remove invisible characters, NFC-normalise, apply the anonymization policy and collapse whitespace."""
    if anonymization not in ANONYMIZATION_POLICIES:
        raise ValueError(f"anonymization={anonymization!r}: expected one of {', '.join(ANONYMIZATION_POLICIES)}")
    # The checks skip work most utterances do not need: this runs about 3 million times on AI Hub's data.
    # Invisible characters go first: one between two jamo or inside "#@이름#" hides what NFC and the
    # anonymization patterns look for.
    text = remove_invisible(text)
    if not text.isascii() and not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    if anonymization != "keep" and "#@" in text:
        text = _TOKEN.sub(_placeholder if anonymization == "placeholder" else " ", text)
    return " ".join(text.split())
