"""How well the faithfulness check tells a true diary from a wrong one, on the chat-to-diary benchmark.

For every item of a split: the reference diary (must pass), one corrupted copy per failure kind made from the
reference and the item's own chat (:func:`corrupt`: swap who did it, change a number or time, tell a suggestion
or plan as done, insert a sentence of another chat, flip a negation), and the item's hand-written traps, each
added to the reference. Prints the share of references passed, per kind the share of corrupted diaries flagged
(at all, and as that kind), the confusion table, and diaries checked per second after Kiwi's load.

    python scripts/benchmarks/faithfulness_report.py --split dev
    python scripts/benchmarks/faithfulness_report.py --split dev --errors
    python scripts/benchmarks/faithfulness_report.py --split test --data a.jsonl b.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from diary_lightning.data.roles import DEFAULT_BOTS  # noqa: E402
from diary_lightning.evaluation import diary_style  # noqa: E402
from diary_lightning.evaluation.diary_style import analyse, kiwi  # noqa: E402
from diary_lightning.evaluation.faithfulness import (FAILURES, RELATIONS, diary_sentences,  # noqa: E402
                                                     faithfulness_evidence, numbers)

BENCHMARK = ROOT / "diary_lightning" / "resources" / "benchmark"


def load(paths: Sequence[Path], split: str) -> list[dict[str, Any]]:
    """The items of ``split``: each chat item, and each day of a KakaoTalk export item (its ``file`` read as
    ``predict`` reads it, one dialogue per day; checked against the chat up to that day) as an item of its own."""
    items = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            if item.get("split") != split:
                continue
            if "dialogue" in item:
                items.append(item)
            elif "file" in item and "days" in item:
                items += _export_days(path.parent / item["file"], item)
    return items


def _export_days(file: Path, item: dict[str, Any]) -> list[dict[str, Any]]:
    from diary_lightning.data.dialogue import read_dialogues

    dialogues = read_dialogues(str(file), require_summary=False, progress=False).dialogues
    dates = [d.id.rsplit("_", 1)[-1] for d in dialogues]
    days = []
    for day in item["days"]:
        if day["date"] not in dates:
            raise SystemExit(f"{file}: no chat on {day['date']}, which {item['id']} gives a reference for")
        # The chat up to that day: a day's diary may recall what the days before set up (the exam of last week).
        upto = dialogues[:dates.index(day["date"]) + 1]
        days.append({**day, "id": f"{item['id']}/{day['date']}", "writer": item["writer"],
                     "dialogue": [{"speaker": t.speaker, "text": t.text} for d in upto for t in d.turns]})
    return days


# --- the corruptions -------------------------------------------------------------------------------------------

def _replace_sentence(diary: str, old: str, new: str) -> str:
    return diary.replace(old, new, 1)


def _batchim(word: str) -> bool:
    last = word[-1]
    return "가" <= last <= "힣" and (ord(last) - 0xAC00) % 28 != 0


def wrong_person(item: dict[str, Any], rng: random.Random) -> str | None:
    """Another person's fact told as the writer's (its subject dropped, ``…다고 했다`` made ``…다``); failing
    that, the writer's fact given to another speaker."""
    reference, writer = item["reference"], item["writer"]
    sentences = diary_sentences(reference)
    for fact in item.get("facts", []):
        if fact["who"] == writer or not fact.get("who_words"):
            continue
        for sentence in sentences:
            squeezed = re.sub(r"\s+", "", sentence)
            if not all(any(alt in squeezed for alt in key.split("|")) for key in fact["keys"]):
                continue
            if _modified_person(sentence, fact["who_words"]):
                continue  # 같이 스터디하는 주원이는: taken away, the person would leave a modifier of nobody
            changed = sentence
            for word in sorted(fact["who_words"], key=len, reverse=True):
                # The person whole: a relation word before the name (동기 지원이가), a title after it (다인 씨는).
                changed = re.sub(rf"(?:(?<![가-힣])(?:{_RELATION_WORDS})\s+)?{re.escape(word)}"
                                 rf"(?:\s*(?:{_TITLES}))?(?:이가|이는|이도|이|가|는|은|도|께서)?\s+", "", changed)
            plain = _unquote(changed)
            # Their words still quoted with no one saying them (나온 결과만 쓰라고 했다), or a modifier left with no
            # noun (같이 스터디한 또 떨어져서): no longer a sentence that gives the writer their act.
            if (plain == changed and re.search(r"[다라자]고\s*(?:했|해|하)", changed)) or \
                    _dangling(plain) > _dangling(sentence) or not re.match(r"[가-힣]", plain):
                continue
            changed = plain
            honoured = any(m.tag == "EP" and m.form in ("시", "으시") for x in analyse(changed) for m in x.morphemes)
            # Only a sentence that now reads as the writer's own act: no one else named, nobody honoured.
            if changed != sentence and changed.strip() and not honoured and \
                    not any(word in changed for word in fact["who_words"]):
                return _replace_sentence(reference, sentence, changed)
    bots = {b.casefold() for b in DEFAULT_BOTS}
    others = sorted(s for s in {t["speaker"] for t in item["dialogue"]} - {writer} if s.casefold() not in bots)
    for sentence in sentences:
        if sentence.endswith("었다.") or sentence.endswith("았다.") or sentence.endswith("했다."):
            # Not a sentence that already tells someone's words (…다고 했다): quoted twice, it reads as no Korean.
            if not re.search(r"(?:이|가|은|는) ", sentence.split()[0] + " ") and not re.search(r"[다라자]고 ", sentence):
                other = rng.choice(others) if others else "친구"
                name = other[1:] if re.fullmatch(r"[가-힣]{3}", other) else other
                changed = f"{name}{'이' if _batchim(name) else '가'} {sentence[:-1]}고 했다."
                return _replace_sentence(reference, sentence, changed)
    return None


_TITLES = "씨|선배|언니|오빠|누나|형|님|선생님|쌤"
_RELATION_WORDS = "동기|친구|사촌|동생|모임장|룸메|알바생|후배|선배|팀장|언니|오빠|누나|형"


def _dangling(sentence: str) -> int:
    """How many modifiers (…하는, …한) of ``sentence`` modify no noun."""
    ms = [m for s in analyse(sentence) for m in s.morphemes]
    return sum(m.tag == "ETM" and (i + 1 == len(ms) or not ms[i + 1].tag.startswith(("NN", "NP", "SN", "XR")))
               for i, m in enumerate(ms))


def _modified_person(sentence: str, words: Sequence[str]) -> bool:
    """A modifier (…하는, …한) stands right before the person in ``sentence``."""
    ms = [m for s in analyse(sentence) for m in s.morphemes]
    for i, m in enumerate(ms):
        if any(m.form.startswith(w) or w.startswith(m.form) and len(m.form) >= 2 for w in words) and i > 0:
            before = ms[i - 1]
            if before.tag == "ETM" or (before.tag.startswith("NN") and i > 1 and ms[i - 2].tag == "ETM"):
                return True
    return False


def _unquote(sentence: str) -> str:
    """The sentence with its first quotation made plain: 받았다고 해서 부러웠다 -> 받아서 부러웠다, 간다고 했다 -> 간다."""
    ms = [m for s in analyse(sentence) for m in s.morphemes]
    for i, m in enumerate(ms):
        if m.tag == "EC" and m.form in ("다고", "ᆫ다고", "는다고", "라고", "이라고") and i + 1 < len(ms) and ms[i + 1].form == "하":
            rest = ms[i + 2:]
            head = ms[:i]
            # A command (가라고 했다) or a promise (봐 주겠다고 했다) made plain is no statement of the person's own:
            # 가다, 봐 줬다 would be a broken sentence or a different corruption.
            if (m.form == "라고" and head and head[-1].tag in ("VV", "VX", "EP")) or \
                    any(x.tag == "EP" and x.form == "겠" for x in head[-2:]):
                return sentence
            if rest and rest[0].tag == "EP" and len(rest) > 1 and rest[1].tag == "EF":
                ending = [("다", "EF", False)]  # 간다고 했다 -> 간다
                tail = rest[2:]
            else:
                while head and head[-1].tag == "EP":
                    head = head[:-1]  # 받았다고 해서 -> 받아서
                ending = [(rest[0].form, rest[0].kiwi_tag or rest[0].tag, False)] if rest else [("다", "EF", False)]
                tail = rest[1:]
            if m.form in ("ᆫ다고", "는다고") and ending[0][0] == "다":
                ending = [(m.form[:-1], "EF", False)]
            return kiwi().join([*(x.joinable() for x in head), *ending, *(x.joinable() for x in tail)])
        if m.tag == "EC" and m.form in ("다고", "ᆫ다고", "는다고") and i + 1 < len(ms):
            head = [x.joinable() for x in ms[:i]]  # 간다고 따로 다녔다 -> 가고 따로 다녔다
            return kiwi().join([*head, ("고", "EC", False), *(x.joinable() for x in ms[i + 1:])])
    return sentence


def _bump(match: re.Match[str]) -> str:
    value = match.group(0)
    digits = value.replace(",", "")
    number = int(digits) if digits.isdigit() else None
    if number is None:
        return value
    return str(number + 1 if number < 9 else number + (10 ** (len(digits) - 1)))


_NATIVE_NEXT = {"두": "세", "세": "네", "네": "다섯", "다섯": "여섯", "여섯": "일곱", "셋이": "넷이", "넷이": "다섯이", "둘이": "셋이"}
_WEEKDAYS = "월화수목금토일"


def wrong_number(item: dict[str, Any], rng: random.Random) -> str | None:
    """One number, time, count or weekday of the reference changed."""
    reference = item["reference"]
    candidates = [s for s in diary_sentences(reference) if numbers(s)]
    if not candidates:
        return None
    sentence = rng.choice(candidates)
    changed = re.sub(r"\d[\d,]*", _bump, sentence, count=1)
    if changed == sentence:
        changed = re.sub(r"([월화수목금토일])요일", lambda m: _WEEKDAYS[(_WEEKDAYS.index(m.group(1)) + 1) % 7] + "요일",
                         sentence, count=1)
    if changed == sentence:
        changed = re.sub(r"(?<![가-힣])(" + "|".join(_NATIVE_NEXT) + r")(?= ?[가-힣])",
                         lambda m: _NATIVE_NEXT[m.group(1)], sentence, count=1)
    return None if changed == sentence else _replace_sentence(reference, sentence, changed)


def _done(morphemes: Sequence[Any], stem_end: int) -> str:
    """The morphemes up to ``stem_end`` (a predicate's stem, its helper verbs kept) told as done: stem + 었다."""
    kept = [m.joinable() for m in morphemes[:stem_end] if not (m.tag == "EP" and m.form in ("시", "으시"))]
    return kiwi().join([*kept, ("었", "EP", False), ("다", "EF", False)]) + "."


def suggestion_as_done(item: dict[str, Any], rng: random.Random) -> str | None:
    """A decision, plan or suggestion of the reference (해 보기로 했다, 가려고 한다, 해야겠다, 하라고 했다) told as
    done; failing that, a suggestion or plan of the chat added as done."""
    reference = item["reference"]
    for sentence in diary_sentences(reference):
        ms = [m for s in analyse(sentence) for m in s.morphemes]
        for i, m in enumerate(ms):
            plan = (m.tag == "ETN" and m.form == "기" and i + 1 < len(ms) and ms[i + 1].form == "로") or (
                m.tag == "EC" and m.form in ("려고", "으려고", "어야", "아야", "자고", "라고", "으라고")
                and i > 0 and ms[i - 1].tag in ("VV", "VX", "XSV")) or (
                m.tag == "ETM" and m.form in ("ᆯ", "을") and i + 1 < len(ms) and ms[i + 1].form in ("생각", "계획", "예정"))
            # 해 달라고 했다 is a request of the writer's, not a plan: 해 달았다 would be no Korean.
            if plan and i > 0 and ms[i - 1].tag in ("VV", "VX", "XSV") and ms[i - 1].form != "달":
                start = next((k + 1 for k in range(i - 1, -1, -1) if ms[k].tag in ("EC", "EF") and ms[k].form not in ("어", "아")), 0)
                head = ms[start:i]
                # Drop someone else's subject, the whole of it (보람이가, 선우 선배가: name, suffix and particle, not
                # only the morpheme before the particle, which left 보람 or 선우 dangling): the act becomes the
                # writer's.
                for k in [k for k, x in enumerate(head) if x.tag == "JKS"][::-1]:
                    first = k
                    while first > 0 and head[first - 1].tag in ("NNP", "NNG", "NNB", "XSN", "NP"):
                        first -= 1
                    if not any(x.tag in ("NNP", "NP", "XSN") or x.form in RELATIONS for x in head[first:k]):
                        continue  # 면허가 없는: a thing's subject stays
                    end = k + 1
                    while end < len(head) and head[end].tag in ("JKS", "JKC"):
                        end += 1  # 보람이가 read as 보람/NNG 이/JKS 가/JKC
                    head = head[:first] + head[end:]
                while head and head[0].tag in ("SP", "SF", "SS", "SE", "SO", "SW"):
                    head = head[1:]  # ", 민혁이가 ...": no sentence starts with the comma of the clause before
                if not head or head[0].tag in ("VV", "VA", "VX", "EP", "ETM"):
                    continue  # 했던 89만 원짜리 …: cut from its clause, a modifier with its verb's words left behind
                if sum(x.tag.startswith("NN") for x in head) == 0:
                    continue
                return _replace_sentence(reference, sentence, _done(head, len(head)))
    for turn in item["dialogue"]:
        for s in analyse(turn["text"]):
            ms = s.morphemes
            for i, m in enumerate(ms):
                if m.form in ("어떻", "어때") or (m.tag == "EF" and m.form in ("자", "ᆯ까", "을까")):
                    verbs = [k for k in range(i) if ms[k].tag in ("VV", "XSV")]
                    if verbs and any(x.tag == "NNG" for x in ms[:verbs[-1]]):
                        end = verbs[-1] + 1
                        if end < len(ms) and ms[end].tag == "EC" and end + 1 < len(ms) and ms[end + 1].tag == "VX":
                            end += 2
                        return reference.rstrip() + " " + _done(ms, end)
    return None


def invented(item: dict[str, Any], rng: random.Random, others: Sequence[dict[str, Any]]) -> str | None:
    """A sentence of another item's reference inserted: its people, places and events this chat never had."""
    chat = re.sub(r"\s+", "", " ".join(t["text"] for t in item["dialogue"]))
    pool = []
    for other in others:
        if other["id"] == item["id"]:
            continue
        for sentence in diary_sentences(other["reference"]):
            nouns = [m.form for s in analyse(sentence) for m in s.morphemes if m.tag in ("NNG", "NNP") and len(m.form) > 1]
            new = [n for n in nouns if n not in chat]
            if len(new) >= 2 and not numbers(sentence):
                pool.append(sentence)
    if not pool:
        return None
    sentences = diary_sentences(item["reference"])
    at = rng.randrange(1, len(sentences) + 1)
    return " ".join([*sentences[:at], rng.choice(pool), *sentences[at:]])


def negation_flip(item: dict[str, Any], rng: random.Random) -> str | None:
    """One negated predicate of the reference made positive (안 갔다 -> 갔다, 없었다 -> 있었다); failing that, a
    done act negated (갔다 -> 안 갔다)."""
    reference = item["reference"]
    sentences = diary_sentences(reference)
    for sentence in sentences:
        for pattern, repl in ((r"(?<![가-힣])(?:안|못) (?=[가-힣])", ""), (r"없었다", "있었다"), (r"없다", "있다"),
                              (r"안 됐다", "됐다"), (r"지 않았다", "었다"), (r"지 못했다", "었다")):
            changed = re.sub(pattern, repl, sentence, count=1)
            # 3%밖에 안 올랐다 is a yes already: without 안 it is no Korean, not its opposite.
            if changed != sentence and "었다" not in repl and not re.search(r"밖에\s*(?:안|못)\s", sentence):
                return _replace_sentence(reference, sentence, changed)
    for sentence in sentences:
        match = re.search(r"(?<![가-힣])([가-힣]*)(했|갔|왔|먹었|봤|샀|받았|탔|만났|끝났|됐)다\.$", sentence)
        if match and "고 했다" not in sentence and "기로" not in sentence:
            # 받아 왔다, 내야 했다: a helper verb's 안 goes before the main verb; 받아 안 왔다 is no Korean.
            if re.search(r"(?:[아어야여워]|고)\s$", sentence[:match.start()]):
                continue
            word = match.group(1) + match.group(2) + "다"
            noun, verb = match.group(1), match.group(2)
            # 발표 안 했다, but 안 망했다: a one-syllable stem is no noun to put 안 after.
            flipped = f"{noun} 안 {verb}다" if len(noun) >= 2 and verb == "했" else f"안 {word}"
            return _replace_sentence(reference, sentence, sentence[:match.start()] + flipped + ".")
    return None


CORRUPTIONS: dict[str, Callable[..., str | None]] = {
    "wrong_person": wrong_person, "suggestion_as_done": suggestion_as_done, "invented": invented,
    "wrong_number": wrong_number, "negation_flip": negation_flip,
}


def corrupt(item: dict[str, Any], kind: str, others: Sequence[dict[str, Any]], seed: int = 0) -> str | None:
    """The item's reference made wrong in one way of ``kind`` (None: the item gives nothing to corrupt so)."""
    rng = random.Random(f"{seed}:{item['id']}:{kind}")
    if kind == "invented":
        return invented(item, rng, others)
    return CORRUPTIONS[kind](item, rng)


# --- the report --------------------------------------------------------------------------------------------------

def _changed_sentence_flagged(original: str, changed: str, evidence: Sequence[Any]) -> bool:
    before = set(diary_sentences(original))
    return any(e.failure for e in evidence if e.sentence not in before)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="dev", choices=("dev", "test"))
    parser.add_argument("--data", nargs="*", type=Path, default=None,
                        help="benchmark JSONL files (default: every file in diary_lightning/resources/benchmark)")
    parser.add_argument("--errors", action="store_true", help="print every reference flagged and every miss")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    paths = args.data if args.data else sorted(BENCHMARK.glob("*.jsonl"))
    items = load(paths, args.split)
    if not items:
        print(f"no {args.split} items with a dialogue in {', '.join(map(str, paths))}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    kiwi()
    load_seconds = time.perf_counter() - start

    rows: list[tuple[str, str, str, str, dict[str, Any]]] = []  # (true kind, source, original, diary, item)
    for item in items:
        rows.append(("faithful", "reference", item["reference"], item["reference"], item))
        for kind in FAILURES:
            diary = corrupt(item, kind, items, args.seed)
            if diary is not None and diary != item["reference"]:
                rows.append((kind, "generated", item["reference"], diary, item))
        for trap in item.get("traps", []):
            rows.append((trap["kind"], "trap", item["reference"], item["reference"].rstrip() + " " + trap["claim"], item))

    diary_style._CACHE.clear()
    start = time.perf_counter()
    results = [faithfulness_evidence(diary, item["dialogue"], item["writer"]) for _, _, _, diary, item in rows]
    seconds = time.perf_counter() - start

    # The check synthesize had before: the share of the diary's character pairs found in the chat.
    from diary_lightning.synthesis.checks import CheckConfig, grounding
    floor = CheckConfig().min_grounding
    ungrounded: dict[tuple[str, str], list[int]] = {}
    for kind, source, _, diary, item in rows:
        counts = ungrounded.setdefault((source, kind), [0, 0])
        counts[0] += 1
        counts[1] += grounding(diary, [t["text"] for t in item["dialogue"]]) < floor

    columns = ("none", *FAILURES)
    table: dict[tuple[str, str], Counter[str]] = {}
    caught: dict[tuple[str, str], list[int]] = {}
    for (kind, source, original, diary, item), evidence in zip(rows, results):
        failures = [f for f in FAILURES if any(e.failure == f for e in evidence)]
        table.setdefault((source, kind), Counter()).update(failures or ["none"])
        counts = caught.setdefault((source, kind), [0, 0, 0, 0])
        counts[0] += 1
        counts[1] += bool(failures)
        counts[2] += kind in failures
        counts[3] += source == "reference" or _changed_sentence_flagged(original, diary, evidence)
        missed = (kind == "faithful" and failures) or (kind != "faithful" and kind not in failures)
        if args.errors and missed:
            print(f"[{source} {kind}] {item['id']} -> {failures or 'none'}")
            for e in evidence:
                if e.failure or (kind != "faithful" and e.sentence not in set(diary_sentences(original))):
                    print(f"    {e.sentence}  => {e.failure}: {e.reason} {list(e.turns)}")

    n_items = len(items)
    passed = caught[("reference", "faithful")]
    print(f"{args.split} split: {n_items} items from {len(paths)} file(s)")
    print(f"references passed: {passed[0] - passed[1]}/{passed[0]} ({(passed[0] - passed[1]) / passed[0]:.0%})")
    for source in ("generated", "trap"):
        print(f"\n{source} corruptions: flagged at all / as that kind / the changed sentence flagged")
        for kind in FAILURES:
            n, any_, same, sentence = caught.get((source, kind), [0, 0, 0, 0])
            if n:
                print(f"  {kind:<20} {any_:>3}/{n:<3} ({any_ / n:.0%})  {same:>3}/{n:<3} ({same / n:.0%})  "
                      f"{sentence:>3}/{n:<3} ({sentence / n:.0%})")
    print("\nconfusion (rows: what the diary is; columns: failures found, a diary may show several)")
    print("| diary | n | " + " | ".join(columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    for source, kind in [("reference", "faithful"), *(((s, k) for s in ("generated", "trap") for k in FAILURES))]:
        if (source, kind) in table:
            n = caught[(source, kind)][0]
            cells = " | ".join(str(table[(source, kind)][c]) for c in columns)
            print(f"| {kind if source == 'reference' else f'{kind} ({source})'} | {n} | {cells} |")
    print(f"\nfor comparison, synthesize's `ungrounded` (under {floor:.0%} of character pairs in the chat) flags:")
    for (source, kind), (n, flagged) in ungrounded.items():
        print(f"  {kind if source == 'reference' else f'{kind} ({source})':<32} {flagged:>3}/{n:<3} ({flagged / n:.0%})")
    print(f"\nKiwi loaded in {load_seconds:.1f} s; {len(rows)} diaries checked in {seconds:.1f} s "
          f"({len(rows) / seconds:.1f} diaries/s, each with its chat analysed, on {diary_style.usable_cores()} cores)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
