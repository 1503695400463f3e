"""Text cleaning for chat utterances: AI Hub anonymization tokens and whitespace.

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


def clean_text(text: str, anonymization: str = DEFAULT_ANONYMIZATION) -> str:
    """NFC-normalise, apply the anonymization policy and collapse whitespace."""
    if anonymization not in ANONYMIZATION_POLICIES:
        raise ValueError(f"anonymization={anonymization!r}: expected one of {', '.join(ANONYMIZATION_POLICIES)}")
    # The checks skip work most utterances do not need: this runs about 3 million times on AI Hub's data.
    if not text.isascii() and not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    if anonymization != "keep" and "#@" in text:
        text = _TOKEN.sub(_placeholder if anonymization == "placeholder" else " ", text)
    return " ".join(text.split())
