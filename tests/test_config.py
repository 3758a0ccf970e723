"""Run configuration: task files, overrides, hints, round trips."""

import pytest

from gfseq.config import ConfigError, RunConfig, load_task, parse_value, with_overrides


def test_the_progeval_task_file_sets_the_documented_defaults():
    cfg = load_task("progeval")
    assert (cfg.task.name, cfg.data.nesting, cfg.model.archs, cfg.train.steps) == (
        "progeval",
        3,
        ("gf", "stacked"),
        2500,
    )
    assert RunConfig.from_dict(cfg.to_dict()) == cfg  # plain data round trip, as in checkpoints


def test_a_task_can_be_a_path_and_flags_override_it(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('[model]\nunit = "gru"\narchs = ["gf", "single"]\n[train]\nlr = 0.01\n')
    cfg = with_overrides(load_task(str(path)), {"train.lr": parse_value("3e-4"), "data.nesting": 2})
    assert (cfg.model.unit, cfg.model.archs, cfg.train.lr, cfg.data.nesting) == (
        "gru",
        ("gf", "single"),
        3e-4,
        2,
    )
    assert cfg.train.batch == 64  # untouched keys keep the dataclass defaults


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"train.lrr": 1}, r"unknown key 'train\.lrr' \(did you mean 'train\.lr'\?\)"),
        ({"trian.lr": 1}, r"unknown key 'trian\.lr' \(did you mean 'train\.lr'\?\)"),
        (
            {"model.unit": "lstn"},
            r"model\.unit: expected one of tanh, gru, lstm, got 'lstn' \(did you mean 'lstm'\?\)",
        ),
        ({"train.lr": "fast"}, r"train\.lr: expected a number >= 0\.0, got 'fast'"),
        ({"data.length": 0}, r"data\.length: expected an integer in 1\.\.30, got 0"),
        ({"train.bf16": 1}, r"train\.bf16: expected true or false, got 1"),
    ],
)
def test_bad_keys_and_values_say_what_was_expected(overrides, message):
    with pytest.raises(ConfigError, match=message):
        with_overrides(RunConfig(), overrides)


def test_unknown_task_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown task 'enwik9'"):
        load_task("enwik9")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nlr = 1")
    with pytest.raises(ConfigError, match=r"--task: cannot read"):
        load_task(str(bad))
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[optim]\nlr = 1\n")
    with pytest.raises(ConfigError, match=r"unknown section 'optim'"):
        load_task(str(unknown))
