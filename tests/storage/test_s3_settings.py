"""storage.s3_settings: the one place for S3 settings (file < env < flags), secrets redacted."""

from __future__ import annotations

from pathlib import Path

import pytest

from fmaprep.storage.s3_settings import (
    DEFAULT_CONF_PATH,
    SIMPLE_PROVIDER,
    TEMPORARY_PROVIDER,
    StorageConfError,
    hadoop_s3a_conf,
    hdfs_spark_conf,
    load_s3_settings,
    redact,
    spark_s3a_conf,
)

KEYS = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "s3cr3t-value"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "storage.toml"
    path.write_text(text)
    return path


def test_repository_conf_loads_and_defaults_to_aws() -> None:
    settings = load_s3_settings(DEFAULT_CONF_PATH, env={})
    assert settings.endpoint is None
    assert settings.path_style_access is False  # "auto" without an endpoint
    assert settings.ssl_enabled
    assert settings.credentials_provider[0] == SIMPLE_PROVIDER


def test_env_endpoint_overrides_file_and_flag_overrides_env(tmp_path: Path) -> None:
    conf = write(tmp_path, '[s3]\nendpoint = "http://file:1"\nregion = "eu-west-1"\n')
    env = {"FMAPREP_S3_ENDPOINT": "http://127.0.0.1:29105", "AWS_DEFAULT_REGION": "us-west-2"}
    settings = load_s3_settings(conf, env=env)
    assert settings.endpoint == "http://127.0.0.1:29105"
    assert settings.region == "us-west-2"
    assert settings.path_style_access is True  # "auto" with an endpoint
    assert settings.ssl_enabled is False
    assert load_s3_settings(conf, env=env, endpoint="https://s3.example:9000").endpoint == (
        "https://s3.example:9000"
    )
    assert load_s3_settings(conf, env={}).endpoint == "http://file:1"


@pytest.mark.parametrize(
    "text",
    ['[s3]\nendpint = "x"\n', '[s4]\nendpoint = ""\n', '[s3]\npath_style_access = "yes"\n'],
)
def test_unknown_or_bad_keys_are_rejected(tmp_path: Path, text: str) -> None:
    with pytest.raises(StorageConfError):
        load_s3_settings(write(tmp_path, text), env={})


def test_bad_endpoint_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(StorageConfError, match="endpoint"):
        load_s3_settings(write(tmp_path, ""), env={"FMAPREP_S3_ENDPOINT": "127.0.0.1:9000"})


def test_hadoop_conf_carries_env_credentials_and_redact_hides_them(tmp_path: Path) -> None:
    settings = load_s3_settings(
        write(tmp_path, '[s3]\nendpoint = "http://127.0.0.1:1"\nhadoop_aws_version = "3.3.4"\n'),
        env={},
    )
    conf = hadoop_s3a_conf(settings, env=KEYS)
    assert conf["fs.s3a.endpoint"] == "http://127.0.0.1:1"
    assert conf["fs.s3a.path.style.access"] == "true"
    assert conf["fs.s3a.connection.ssl.enabled"] == "false"
    assert conf["fs.s3a.access.key"] == "AKIDEXAMPLE"
    assert conf["fs.s3a.aws.credentials.provider"].split(",")[0] == SIMPLE_PROVIDER
    shown = str(redact(conf))
    assert "s3cr3t-value" not in shown and "AKIDEXAMPLE" not in shown
    with_token = hadoop_s3a_conf(settings, env={**KEYS, "AWS_SESSION_TOKEN": "tok"})
    assert with_token["fs.s3a.aws.credentials.provider"].split(",")[0] == TEMPORARY_PROVIDER


def test_spark_conf_for_the_default_fs_and_for_s3a_readers(tmp_path: Path) -> None:
    """The job gives Spark only HDFS's default filesystem; the S3A conf is for users who read
    an output with ``sc.pickleFile`` (``python -m fmaprep.storage.s3_settings`` prints it)."""
    conf_file = write(tmp_path, '[s3]\nhadoop_aws_version = "3.3.4"\n')
    env = {"FMAPREP_STORAGE_CONF": str(conf_file), "FMAPREP_HDFS_URI": "hdfs://127.0.0.1:29100"}
    assert hdfs_spark_conf(env) == {"spark.hadoop.fs.defaultFS": "hdfs://127.0.0.1:29100"}
    assert hdfs_spark_conf({}) == {}
    s3a = spark_s3a_conf(load_s3_settings(env=env), env)
    assert s3a["spark.jars.packages"] == "org.apache.hadoop:hadoop-aws:3.3.4"
    assert s3a["spark.hadoop.fs.s3.impl"] == "org.apache.hadoop.fs.s3a.S3AFileSystem"
