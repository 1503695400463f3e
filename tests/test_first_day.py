"""The first day with a real chat (issue 23): errors that point the way, checks before the model loads,
settings that travel with the run, and what the data lost said by preprocess too."""

from __future__ import annotations

import pytest
from conftest import run_cli

from diary_lightning.errors import ConfigError


# -- the command line: options in full, a mistake in one line ---------------------------------------------------
def test_an_abbreviated_option_is_refused_naming_the_full_one(make_config):
    # argparse took --trainer.max_step for --trainer.max_steps, without a word.
    with pytest.raises(ConfigError, match=r"^unknown option --trainer\.max_step; did you mean --trainer\.max_steps\?"):
        run_cli("fit", "--config", str(make_config()), "--trainer.max_step", "10")


def test_a_typo_is_one_line_with_the_closest_option_and_no_usage(make_config, capsys):
    from diary_lightning.cli.commands import main

    with pytest.raises(SystemExit) as stopped:
        main(["preprocess", "--config", str(make_config()), "--model.lora_rr", "8"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" not in err
    first, *rest = [line for line in err.splitlines() if line.startswith("error:")]
    assert not rest
    assert first == ("error: unknown option --model.lora_rr; did you mean --model.lora_r? "
                     "(all options: python -m diary_lightning preprocess --help)")


def test_help_still_shows_the_usage(capsys):
    with pytest.raises(SystemExit) as stopped:
        run_cli("predict", "--help")
    assert stopped.value.code in (0, None)
    assert "usage: python -m diary_lightning [options] predict" in capsys.readouterr().out


@pytest.mark.parametrize("args, missing", [
    (["fit"], "fit needs data.paths and model.base_model"),
    (["preprocess", "--model.base_model", "m"], "preprocess needs data.paths,"),
    (["predict", "--ckpt_path", "run.ckpt"], "predict needs data.predict_path,"),
])
def test_without_a_config_the_error_says_a_config_was_left_out(args, missing):
    with pytest.raises(ConfigError, match=rf"^{missing}.* and no --config was given: add the run's config "
                                          r"\(--config configs/tiny\.yaml"):
        run_cli(*args)


# -- preprocess says what max_length cost, as fit does ----------------------------------------------------------
def test_preprocess_warns_about_dialogues_too_long(make_config, caplog, capsys):
    import logging

    with caplog.at_level(logging.INFO):
        run_cli("preprocess", "--config", str(make_config(**{"data.max_length": 190})))
    assert "preprocess: too long train" in caplog.text
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("train dialogues" in w and "do not fit data.max_length=190" in w and "raise data.max_length" in w
               for w in warned), warned
