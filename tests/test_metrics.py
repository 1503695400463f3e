import sys
import unicodedata

import pytest
import torch
from torchmetrics.text import ROUGEScore

from diary_lightning.evaluation.metrics import (
    DEFAULT_ROUGE_TOKENIZER,
    METRIC_KEYS,
    ROUGE_TOKENIZERS,
    DiaryTextMetrics,
    get_rouge_tokenizer,
    score_pair,
    tokenize_chars,
    tokenize_eojeols,
)

SAME = "오늘은 친구와 함께 영화를 봤다"
ALWAYS_AVAILABLE = [name for name in ROUGE_TOKENIZERS if name != "morpheme"]


@pytest.mark.parametrize("tokenizer", ALWAYS_AVAILABLE)
def test_identical_korean_scores_one(tokenizer):
    scores = score_pair(SAME, SAME, rouge_tokenizer=tokenizer)
    assert set(scores) == set(METRIC_KEYS)
    assert scores == pytest.approx(dict.fromkeys(METRIC_KEYS, 1.0))


@pytest.mark.parametrize("tokenizer", ALWAYS_AVAILABLE)
def test_disjoint_korean_scores_zero_rouge(tokenizer):
    scores = score_pair("가나다 라마", "바사아 자차", rouge_tokenizer=tokenizer)
    assert [scores[key] for key in ("rouge1", "rouge2", "rougeL")] == [0.0, 0.0, 0.0]


def test_char_partial_overlap_by_hand():
    # pred   나 는 밥 을 다 먹 었 다  (8 chars)    target 밥 을 나 는 먹 었 다  (7 chars)
    # rouge1: all 7 target chars are in pred -> P=7/8, R=7/7, F=2*7/(8+7)=14/15
    # rouge2: pred has 7 bigrams, target 6; shared 나는 밥을 먹었 었다 = 4
    #         -> P=4/7, R=4/6, F=2*4/(7+6)=8/13
    # rougeL: LCS is 나는먹었다 (or 밥을먹었다), length 5 -> P=5/8, R=5/7, F=10/15=2/3
    scores = score_pair("나는 밥을 다 먹었다", "밥을 나는 먹었다", rouge_tokenizer="char")
    assert scores["rouge1"] == pytest.approx(14 / 15)
    assert scores["rouge2"] == pytest.approx(8 / 13)
    assert scores["rougeL"] == pytest.approx(2 / 3)


def test_eojeol_partial_overlap_by_hand():
    # Edge punctuation goes: pred -> 친구와 영화를 봤다 오늘은 (4 words)
    # target -> 오늘은 친구와 함께 영화를 봤다 (5 words)
    # rouge1: all 4 pred words occur -> P=4/4, R=4/5, F=2*4/(4+5)=8/9
    # rouge2: pred bigrams (친구와 영화를)(영화를 봤다)(봤다 오늘은), target has 4;
    #         shared (영화를 봤다) only -> P=1/3, R=1/4, F=2*1/(3+4)=2/7
    # rougeL: LCS 친구와 영화를 봤다 = 3 -> P=3/4, R=3/5, F=2*3/(4+5)=2/3
    scores = score_pair("친구와 영화를 봤다. 오늘은!", SAME, rouge_tokenizer="eojeol")
    assert scores["rouge1"] == pytest.approx(8 / 9)
    assert scores["rouge2"] == pytest.approx(2 / 7)
    assert scores["rougeL"] == pytest.approx(2 / 3)


def test_torchmetrics_default_rouge_scores_korean_zero_but_ours_one():
    # The default normalizer keeps only [a-z0-9], so Hangul text has no tokens left.
    default = ROUGEScore(rouge_keys=("rouge1", "rougeL"))
    default.update([SAME], [SAME])
    assert default.compute()["rouge1_fmeasure"] == 0.0

    ours = DiaryTextMetrics()
    ours.update([SAME], [SAME])
    assert ours.compute()["rouge1"] == pytest.approx(1.0)


def test_tokenizers_normalize_nfd_case_and_punctuation():
    decomposed = unicodedata.normalize("NFD", "한글 ABC")
    assert tokenize_chars(decomposed) == ["한", "글", "a", "b", "c"]
    assert tokenize_eojeols('"재밌었어!" ㅋㅋ~ ... 😀') == ["재밌었어", "ㅋㅋ"]
    nfd_same = unicodedata.normalize("NFD", SAME)
    assert score_pair(nfd_same, SAME) == pytest.approx(dict.fromkeys(METRIC_KEYS, 1.0))


def test_accumulation_averages_per_sample_rouge_f1():
    metrics = DiaryTextMetrics(rouge_tokenizer="eojeol")
    metrics.update([SAME], [SAME])
    metrics.update(["친구와 영화를 봤다. 오늘은!"], [SAME])
    result = metrics.compute()
    assert set(result) == set(METRIC_KEYS)
    assert result["rouge1"].item() == pytest.approx((1.0 + 8 / 9) / 2)
    assert result["rouge2"].item() == pytest.approx((1.0 + 2 / 7) / 2)
    assert result["rougeL"].item() == pytest.approx((1.0 + 2 / 3) / 2)
    assert 0.0 < result["chrf"].item() < 1.0

    metrics.reset()
    metrics.update([SAME], [SAME])
    assert metrics.compute()["rouge1"].item() == pytest.approx(1.0)


def test_metrics_is_a_device_following_submodule():
    parent = torch.nn.Module()
    parent.metrics = DiaryTextMetrics()
    assert "metrics.rouge" in dict(parent.named_modules())
    parent.to("cpu")
    assert parent.state_dict() == {}


def test_empty_prediction_scores_zero():
    assert score_pair("", SAME) == dict.fromkeys(METRIC_KEYS, 0.0)
    metrics = DiaryTextMetrics()
    metrics.update([""], [SAME])
    assert all(value.item() == 0.0 for value in metrics.compute().values())


def test_mismatched_batch_lengths_rejected():
    with pytest.raises(ValueError, match="2 predictions but 1 targets"):
        DiaryTextMetrics().update([SAME, SAME], [SAME])


def test_unknown_tokenizer_names_valid_choices():
    with pytest.raises(ValueError, match="char, eojeol, morpheme"):
        DiaryTextMetrics(rouge_tokenizer="bpe")
    with pytest.raises(ValueError, match="char, eojeol, morpheme"):
        score_pair(SAME, SAME, rouge_tokenizer="word")
    assert DEFAULT_ROUGE_TOKENIZER in ROUGE_TOKENIZERS


def test_morpheme_tokenizer_without_kiwipiepy_explains_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "kiwipiepy", None)  # makes `import kiwipiepy` fail
    with pytest.raises(ImportError, match=r'pip install "diary-lightning\[korean\]"'):
        get_rouge_tokenizer("morpheme")


def test_morpheme_tokenizer_splits_particles():
    pytest.importorskip("kiwipiepy")
    tokenize = get_rouge_tokenizer("morpheme")
    assert tokenize("영화를 봤다!") == ["영화", "를", "보", "었", "다"]
    # Different particles and endings still share their stems at morpheme level.
    scores = score_pair("학교에 갔다", "학교를 갔어", rouge_tokenizer="morpheme")
    assert 0.0 < scores["rouge1"] < 1.0
    assert score_pair(SAME, SAME, rouge_tokenizer="morpheme")["rouge1"] == pytest.approx(1.0)
