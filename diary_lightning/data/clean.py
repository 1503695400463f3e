"""Text cleaning for chat utterances: AI Hub anonymization tokens, invisible characters and whitespace.

AI Hub replaced names, photos, links and the like with tokens such as ``#@이름#``
or ``#@시스템#사진#``. Left as they are, a model learns to write ``#@이름#`` into
diaries; replaced by a short Korean placeholder, it sees ordinary text that reads
well in a diary. The same policy applies when training and when predicting.
"""

from __future__ import annotations

import re
import unicodedata

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


# Characters a reader cannot see but a tokenizer can: a summary of zero-width spaces looks empty and is not, an
# ANSI colour code pasted from a terminal is learned as text. Removed whole: terminal escape sequences (CSI, OSC
# and two-byte ESC forms), C0/C1 controls other than whitespace (whitespace becomes a space below), zero-width
# and joiner characters, bidirectional marks and embeddings, word joiner and invisible operators, the BOM, the
# soft hyphen. Emoji variation selectors and private-use characters stay: they are visible.
_INVISIBLE = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]?|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-_])?"
    r"|\x9b[0-?]*[ -/]*[@-~]?"
    r"|[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]"
)


def remove_invisible(text: str) -> str:
    """``text`` without control characters, terminal escape sequences and zero-width or direction marks."""
    # isprintable() is False for every character removed here (and for whitespace other than a space), and a C
    # loop: the regex only runs on the rare text that needs it.
    return text if text.isprintable() else _INVISIBLE.sub("", text)


def one_line(text: str) -> str:
    """``text`` with every run of whitespace, line breaks included (\\n, \\r, U+2028, U+0085...), as one space."""
    return text if text.isprintable() else " ".join(text.split())


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
