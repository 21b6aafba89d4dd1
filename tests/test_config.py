from __future__ import annotations

from pathlib import Path

import pytest

from fmaprep.config import ConfigError, PipelineConfig, load_config


def test_defaults_match_the_design() -> None:
    cfg = load_config()
    assert cfg.pipeline == PipelineConfig(8000, "left", "peak", 255, "soundfile", "soxr")
    assert (
        cfg.job.master == "local[*]" and cfg.job.mode == "error" and cfg.job.max_error_rate == 0.05
    )


def test_file_then_flags(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('[pipeline]\nchannel = "mix"\nmu = 127\n[job]\nmaster = "local[1]"\n')
    cfg = load_config(f, pipeline_overrides={"mu": 63, "channel": None})
    assert cfg.pipeline.channel == "mix" and cfg.pipeline.mu == 63 and cfg.job.master == "local[1]"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[pipeline]\nchanel = 'left'\n", "unknown key.*chanel"),
        ("[pipline]\n", "unknown table.*pipline"),
        ("[pipeline]\nchannel = 'center'\n", "channel must be one of"),
        ("[pipeline]\nmu = 256\n", "mu must be"),
        ("[pipeline]\nresampler = 'linear'\n", "resampler must be one of"),
        ("[job]\nmode = 'append'\n", "mode must be one of"),
        ("[job]\nmax_error_rate = 2\n", "max_error_rate"),
        ("not toml [", "cannot read config"),
    ],
)
def test_bad_config_is_rejected(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(f)


def test_shipped_default_config_loads() -> None:
    cfg = load_config(Path(__file__).parents[1] / "conf" / "pipeline.toml")
    assert cfg.pipeline == PipelineConfig()


def test_every_configurable_decoder_and_resampler_is_implemented() -> None:
    from typing import get_args

    from fmaprep.audio.decode import OPENERS
    from fmaprep.audio.resample import RESAMPLERS
    from fmaprep.config import DecoderName, ResamplerName

    assert set(get_args(DecoderName)) == set(OPENERS)
    assert set(get_args(ResamplerName)) == set(RESAMPLERS)
