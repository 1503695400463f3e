"""Hangul syllable arithmetic: a syllable's final consonant, and the particles that depend on it (상대 + 은 ->
상대는). The rules teacher rewrites speaker codes with it, and the teacher prompt writes the dialogue's labels into
the summary with it. Plain Python."""

from __future__ import annotations

_BASE, _LAST = 0xAC00, 0xD7A3
FINAL_NONE, FINAL_L = 0, 8


def final(syllable: str) -> int | None:
    """The final-consonant index (0: none) of a Hangul syllable, None for any other character."""
    code = ord(syllable)
    return (code - _BASE) % 28 if _BASE <= code <= _LAST else None


# Digits and Latin letters as a Korean reader pronounces them at the end of a code: "P01" ends in 일, "SD2000692" in 이.
_SPOKEN_FINAL = {"0": True, "1": True, "3": True, "6": True, "7": True, "8": True,
                 "2": False, "4": False, "5": False, "9": False,
                 "l": True, "m": True, "n": True, "r": False}


def has_final(word: str) -> bool:
    """Whether ``word`` ends in a consonant sound, which picks 은/이/을/과 over 는/가/를/와."""
    last = word.rstrip()[-1:] or " "
    index = final(last)
    if index is not None:
        return index != FINAL_NONE
    return _SPOKEN_FINAL.get(last.lower(), False)


PAIRS = {"은": ("은", "는"), "는": ("은", "는"), "이": ("이", "가"), "가": ("이", "가"), "을": ("을", "를"),
         "를": ("을", "를"), "과": ("과", "와"), "와": ("과", "와"), "이랑": ("이랑", "랑"), "랑": ("이랑", "랑"),
         "으로": ("으로", "로"), "로": ("으로", "로"), "이나": ("이나", "나"), "나": ("이나", "나")}


def attach(word: str, particle: str) -> str:
    """``word`` + ``particle`` in the form its last sound takes (상대 + 은 -> 상대는); ㄹ takes 로, not 으로."""
    pair = PAIRS.get(particle)
    if pair is None:
        return word + particle
    consonant = has_final(word)
    if pair[0] == "으로" and final(word[-1:] or " ") == FINAL_L:
        consonant = False
    return word + (pair[0] if consonant else pair[1])
