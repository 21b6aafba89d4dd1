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
        ("[pipeline]\nisolation = 'thread'\n", "isolation must be one of"),
        ("[pipeline]\nmax_memory_mb = 0\n", "max_memory_mb must be > 0"),
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


def test_how_files_run_is_not_part_of_the_resume_fingerprint() -> None:
    """Isolation and the memory cap decide how a file is run, not its codes: an output made one
    way can be resumed the other; a setting that changes the codes changes the key."""
    base = PipelineConfig().fingerprint()
    assert PipelineConfig(isolation="none", max_memory_mb=512).fingerprint() == base
    assert PipelineConfig(channel="right").fingerprint() != base


def test_every_configurable_decoder_and_resampler_is_implemented() -> None:
    from typing import get_args

    from fmaprep.audio.decode import OPENERS
    from fmaprep.audio.resample import RESAMPLERS
    from fmaprep.config import DecoderName, ResamplerName

    assert set(get_args(DecoderName)) == set(OPENERS)
    assert set(get_args(ResamplerName)) == set(RESAMPLERS)


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("pipeline", "sample_rate", "8000.5", "sample_rate must be an integer, got 8000.5"),
        ("pipeline", "sample_rate", "'8000'", "sample_rate must be an integer, got '8000'"),
        ("pipeline", "mu", "true", "mu must be an integer, got True"),
        ("pipeline", "channel", "1", "channel must be one of left, right, mix, got 1"),
        ("pipeline", "min_duration_s", "'short'", "min_duration_s must be a number"),
        ("pipeline", "timeout_s", "false", "timeout_s must be a number, got False"),
        ("pipeline", "timeout_s", "nan", "timeout_s must be a finite number, got nan"),
        ("pipeline", "timeout_s", "inf", "timeout_s must be a finite number, got inf"),
        ("pipeline", "max_memory_mb", "inf", "max_memory_mb must be a finite number, got inf"),
        ("pipeline", "max_file_mb", "+inf", "max_file_mb must be a finite number, got inf"),
        ("pipeline", "max_duration_s", "inf", "max_duration_s must be a finite number, got inf"),
        ("pipeline", "min_duration_s", "nan", "min_duration_s must be a finite number, got nan"),
        ("pipeline", "silence_db", "-inf", "silence_db must be a finite number, got -inf"),
        ("pipeline", "max_file_mb", "-1", "max_file_mb must be > 0 and at most 1048576, got -1"),
        ("job", "partitions", "2.5", "partitions must be an integer or unset, got 2.5"),
        ("job", "max_error_rate", "true", "max_error_rate must be a number, got True"),
        ("job", "max_error_rate", "nan", "max_error_rate must be a finite number, got nan"),
        ("job", "target_partition_mb", "inf", "target_partition_mb must be a finite number"),
        ("job", "dedupe", "'yes'", "dedupe must be true or false, got 'yes'"),
        ("job", "master", "4", "master must be a string, got 4"),
        ("job", "extensions", "'.mp3'", "extensions must be a list of strings, got '.mp3'"),
        ("job", "extensions", "['.mp3', 3]", "extensions must be a list of strings"),
        ("job", "spark_conf", "{ a = [1] }", "spark_conf must be a table of strings"),
        ("job", "s3_endpoint", "80", "s3_endpoint must be a string or unset, got 80"),
    ],
)
def test_each_mistyped_value_is_one_named_problem(
    tmp_path: Path, section: str, key: str, value: str, message: str
) -> None:
    f = tmp_path / "c.toml"
    f.write_text(f"[{section}]\n{key} = {value}\n")
    with pytest.raises(ConfigError) as info:
        load_config(f)
    assert [line for line in str(info.value).splitlines() if message in line], str(info.value)
    assert str(info.value).startswith(f"[{section}] {key} "), str(info.value)


_NOT_A_SUFFIX = "must be a dot and a lower-case suffix, like '.mp3'"
_MIN_DURATION = "must be >= 0 and below max_duration_s (21600.0), got"


@pytest.mark.parametrize(
    ("section", "key", "value", "rest"),
    [
        ("pipeline", "sample_rate", "999", "must be in 1000..48000 Hz, got 999"),
        ("pipeline", "sample_rate", "48001", "must be in 1000..48000 Hz, got 48001"),
        ("pipeline", "mu", "0", "must be in 1..255 (codes are uint8), got 0"),
        ("pipeline", "silence_db", "0.5", "must be in -400..0 dBFS, got 0.5"),
        ("pipeline", "silence_db", "-1e300", "must be in -400..0 dBFS, got -1e+300"),
        # upper bounds: values the code could not honour (a deadline that overflows, an
        # address-space cap over 2**64 bytes) are refused with the checks
        ("pipeline", "timeout_s", "1e308", "must be > 0 and at most 86400, got 1e+308"),
        ("pipeline", "timeout_s", "86401", "must be > 0 and at most 86400, got 86401"),
        (
            "pipeline",
            "max_memory_mb",
            "1e15",
            "must be > 0 and at most 1048576, got 1000000000000000.0",
        ),
        ("pipeline", "max_file_mb", "1e12", "must be > 0 and at most 1048576, got 1000000000000.0"),
        (
            "pipeline",
            "max_duration_s",
            "1e12",
            "must be > 0 and at most 604800, got 1000000000000.0",
        ),
        ("pipeline", "min_duration_s", "-1", f"{_MIN_DURATION} -1"),
        ("pipeline", "min_duration_s", "21600", f"{_MIN_DURATION} 21600"),
        ("pipeline", "normalize", "'rms'", "must be one of peak, none, got 'rms'"),
        ("pipeline", "decoder", "'x'", "must be one of soundfile, ffmpeg, pydub, got 'x'"),
        ("job", "partitions", "0", "must be in 1..1000000, got 0"),
        ("job", "partitions", "1000001", "must be in 1..1000000, got 1000001"),
        ("job", "target_partition_mb", "0", "must be > 0 and at most 65536, got 0"),
        ("job", "target_partition_mb", "-1.5", "must be > 0 and at most 65536, got -1.5"),
        ("job", "target_partition_mb", "1e9", "must be > 0 and at most 65536, got 1000000000.0"),
        ("job", "max_error_rate", "-0.1", "must be in 0..1, got -0.1"),
        ("job", "format", "'csv'", "must be one of pickle, parquet, got 'csv'"),
        ("job", "master", "''", "must not be empty (e.g. local[*] or yarn)"),
        ("job", "master", "'  '", "must not be empty (e.g. local[*] or yarn)"),
        ("job", "extensions", "[]", "must not be empty (no input would ever be listed)"),
        ("job", "extensions", "['mp3']", f"entry 'mp3' {_NOT_A_SUFFIX}"),
        ("job", "extensions", "['.']", f"entry '.' {_NOT_A_SUFFIX}"),
        ("job", "extensions", "['.MP3']", f"entry '.MP3' {_NOT_A_SUFFIX}"),
    ],
)
def test_each_value_out_of_range_is_one_named_problem(
    tmp_path: Path, section: str, key: str, value: str, rest: str
) -> None:
    f = tmp_path / "c.toml"
    f.write_text(f"[{section}]\n{key} = {value}\n")
    with pytest.raises(ConfigError) as info:
        load_config(f)
    assert str(info.value).splitlines() == [f"[{section}] {key} {rest}"]


def test_each_bad_extension_is_its_own_line(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[job]\nextensions = ['.mp3', 'wav', 'flac']\n")
    with pytest.raises(ConfigError) as info:
        load_config(f)
    assert [line.split()[3] for line in str(info.value).splitlines()] == ["'wav'", "'flac'"]


def test_an_unknown_key_does_not_hide_the_tables_other_problems(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[pipeline]\nchanel = 'left'\nmu = 0\n[job]\nmaster = ''\n[extra]\n")
    with pytest.raises(ConfigError) as info:
        load_config(f)
    assert str(info.value).splitlines() == [
        "unknown table [extra] (known: [pipeline], [job])",
        "[pipeline] unknown key 'chanel' (did you mean channel?)",
        "[pipeline] mu must be in 1..255 (codes are uint8), got 0",
        "[job] master must not be empty (e.g. local[*] or yarn)",
    ]


def test_a_section_that_is_not_a_table_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("pipeline = 3\n[job]\npartitions = 0\n")
    with pytest.raises(ConfigError) as info:
        load_config(f)
    assert str(info.value).splitlines() == [
        "[pipeline] must be a table, got 3",
        "[job] partitions must be in 1..1000000, got 0",
    ]


def test_every_problem_of_both_tables_is_listed_once(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[pipeline]\nsample_rate = 8000.5\nmu = 'x'\n[job]\npartitions = 2.5\n")
    with pytest.raises(ConfigError) as info:
        load_config(f)
    lines = str(info.value).splitlines()
    assert len(lines) == 3
    assert [line.split()[1] for line in lines] == ["sample_rate", "mu", "partitions"]


def test_spark_conf_numbers_and_booleans_become_spark_strings(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[job]\nspark_conf = { 'spark.task.cpus' = 1, 'spark.ui.enabled' = false }\n")
    conf = load_config(f).job.spark_conf
    assert conf == {"spark.task.cpus": "1", "spark.ui.enabled": "false"}


def test_the_cli_rejects_a_mistyped_config_before_spark_starts(tmp_path: Path) -> None:
    import subprocess
    import sys

    f = tmp_path / "c.toml"
    f.write_text("[pipeline]\nsample_rate = 8000.5\n[job]\nmax_error_rate = true\n")
    (tmp_path / "in").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "fmaprep", "preprocess", str(tmp_path / "in"),
         str(tmp_path / "out"), "--config", str(f)],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "fmaprep: [pipeline] sample_rate must be an integer, got 8000.5",
        "fmaprep: [job] max_error_rate must be a number, got True",
    ]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (["--partitions", "0"], "[job] partitions must be in 1..1000000, got 0"),
        (["--max-error-rate", "2"], "[job] max_error_rate must be in 0..1, got 2"),
        (["--max-error-rate", "nan"], "[job] max_error_rate must be a finite number, got nan"),
        (["--mu", "0"], "[pipeline] mu must be in 1..255 (codes are uint8), got 0"),
        (["--sample-rate", "8000.5"], "[pipeline] sample_rate must be an integer, got 8000.5"),
        (["--sample-rate", "fast"], "[pipeline] sample_rate must be an integer, got 'fast'"),
        (["--master", ""], "[job] master must not be empty (e.g. local[*] or yarn)"),
        (["--extensions", ""], f"[job] extensions entry '.' {_NOT_A_SUFFIX}"),
    ],
)  # fmt: skip
def test_the_cli_rejects_a_bad_flag_in_one_line_before_spark_starts(
    tmp_path: Path, flags: list[str], line: str
) -> None:
    """A flag's value goes through the config's checks, so it gets the config file's one-line
    problem, not argparse's usage text; JAVA_HOME points nowhere, so had the job reached Spark
    the output would be Spark's launch error instead."""
    import os
    import subprocess
    import sys

    (tmp_path / "in").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "fmaprep", "preprocess", str(tmp_path / "in"),
         str(tmp_path / "out"), *flags],
        capture_output=True, text=True, check=False, timeout=60,
        env={**os.environ, "JAVA_HOME": str(tmp_path / "no-java")},
    )  # fmt: skip
    assert (proc.returncode, proc.stderr.splitlines()) == (2, [f"fmaprep: {line}"])
    assert not (tmp_path / "out").exists()
