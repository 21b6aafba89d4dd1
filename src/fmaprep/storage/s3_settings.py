"""S3 settings from ``conf/storage.toml`` + the environment (and, for readers who use Spark's
own S3A, as Hadoop/Spark conf).

The one place that says how fmaprep talks to S3: ``scripts/check-storage.sh`` and the preprocess
job both call :func:`load_s3_settings` (their boto3 clients use the result), so the health check
probes the exact configuration that the job will run with. :func:`spark_s3a_conf` is for users
who read an output with ``sc.pickleFile("s3a://...")``; the job itself gives Spark none of it.

Precedence: explicit arguments (CLI flags) > environment > the TOML file > built-in defaults.
Environment: ``FMAPREP_STORAGE_CONF`` (path of the TOML file), ``FMAPREP_S3_ENDPOINT``,
``AWS_REGION`` / ``AWS_DEFAULT_REGION``, ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` /
``AWS_SESSION_TOKEN``. Secrets are copied into the conf dict (S3A reads them from there) but
:func:`redact` hides them for printing; nothing in this module logs.

``python -m fmaprep.storage.s3_settings [--spark|--hadoop|--settings]`` prints the (redacted)
result.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from fmaprep.config import ConfigError, build_table, check_fields, read_tables
from fmaprep.redaction import redact, redact_strings

#: The file read when none is named: ``conf/storage.toml`` in the repository (absent when
#: fmaprep is installed from a wheel; the built-in defaults then apply).
DEFAULT_CONF_PATH = Path(__file__).resolve().parents[3] / "conf" / "storage.toml"

SIMPLE_PROVIDER = "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
TEMPORARY_PROVIDER = "org.apache.hadoop.fs.s3a.TemporaryAWSCredentialsProvider"
DEFAULT_PROVIDERS = (
    SIMPLE_PROVIDER,
    "com.amazonaws.auth.EnvironmentVariableCredentialsProvider",
    "org.apache.hadoop.fs.s3a.auth.IAMInstanceCredentialsProvider",
)
EMR_MARKERS = (Path("/mnt/var/lib/info/instance.json"), Path("/usr/share/aws/emr"))


class StorageConfError(ConfigError):
    """The storage configuration file or a value in it is invalid; the message names it."""


AUTO_VERSION = "auto"


@dataclass(frozen=True)
class S3Table:
    """The ``[s3]`` table of the storage TOML as written, checked by the pipeline config's own
    checker (:func:`fmaprep.config.check_fields`: types, choices, unknown keys with a
    suggestion, every problem at once). :func:`load_s3_settings` resolves it into
    :class:`S3Settings` with the environment and the flags."""

    endpoint: str = ""
    path_style_access: bool | Literal["auto"] = "auto"
    region: str = "us-east-1"
    credentials_provider: str | tuple[str, ...] = DEFAULT_PROVIDERS  # a list or "a,b"
    s3_scheme_via_s3a: bool | Literal["auto"] = "auto"
    hadoop_aws_version: str = "auto"
    directory_marker_retention: Literal["keep", "delete", "authoritative"] = "keep"

    def __post_init__(self) -> None:
        check_fields(self, "s3")


@dataclass(frozen=True)
class S3Settings:
    """How to reach S3. No secrets here: credentials stay in the environment."""

    endpoint: str | None = None  # None: AWS's own endpoint for the region
    path_style_access: bool = False
    region: str = "us-east-1"
    credentials_provider: tuple[str, ...] = DEFAULT_PROVIDERS
    s3_scheme_via_s3a: bool = True  # map s3:// to S3A (not on EMR, where s3:// is EMRFS)
    # None: add no hadoop-aws package; AUTO_VERSION: pyspark's own Hadoop, looked up only when an
    # S3A conf is built (the job itself reads S3 with boto3, and a YARN container's pyspark.zip
    # has no jars to look at)
    hadoop_aws_version: str | None = None
    # "keep": S3A does not delete parent directory markers after each write. Faster on AWS, and
    # required by s3proxy, which stalls on S3A's marker clean-up request.
    directory_marker_retention: str = "keep"

    @property
    def ssl_enabled(self) -> bool:
        return self.endpoint is None or not self.endpoint.lower().startswith("http://")


def on_emr() -> bool:
    """True on an EMR node (its instance info file or its S3 connector directory exists)."""
    return any(marker.exists() for marker in EMR_MARKERS)


def bundled_hadoop_version() -> str:
    """The Hadoop client version inside the installed pyspark wheel (e.g. ``"3.3.4"``)."""
    # find_spec locates the package without importing it (readers and tasks stay pyspark-free)
    spec = importlib.util.find_spec("pyspark")
    jars = Path(spec.origin).parent / "jars" if spec is not None and spec.origin else Path()
    if not jars.is_dir() and os.environ.get("SPARK_HOME"):  # spark-submit: pyspark.zip
        jars = Path(os.environ["SPARK_HOME"]) / "jars"
    for jar in sorted(jars.glob("hadoop-client-api-*.jar")):
        match = re.fullmatch(r"hadoop-client-api-(\d+\.\d+\.\d+)\.jar", jar.name)
        if match:
            return match.group(1)
    raise StorageConfError(f"no hadoop-client-api-*.jar in {jars}: cannot tell pyspark's Hadoop")


def _read_s3_table(conf_path: Path) -> S3Table:
    try:
        tables, problems = read_tables(conf_path, ("s3",))
        if problems:
            raise ConfigError("\n".join(problems))
        s3: S3Table = build_table(S3Table, "s3", tables["s3"])
    except ConfigError as exc:
        raise StorageConfError(f"{conf_path}: {exc}") from exc
    return s3


def load_s3_settings(
    path: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    *,
    endpoint: str | None = None,
    region: str | None = None,
) -> S3Settings:
    """Read ``[s3]`` from the TOML file, then apply the environment and explicit overrides.

    ``path`` None means ``$FMAPREP_STORAGE_CONF`` or else :data:`DEFAULT_CONF_PATH` (skipped when
    missing). ``endpoint`` / ``region`` are CLI-flag overrides; ``endpoint=""`` forces AWS.
    """
    environ = os.environ if env is None else env
    explicit = path is not None or bool(environ.get("FMAPREP_STORAGE_CONF"))
    conf_path = Path(path or environ.get("FMAPREP_STORAGE_CONF") or DEFAULT_CONF_PATH)
    if conf_path.is_file():
        s3 = _read_s3_table(conf_path)
    elif explicit:
        raise StorageConfError(f"storage conf {conf_path} does not exist")
    else:
        s3 = S3Table()

    chosen_endpoint = s3.endpoint
    if environ.get("FMAPREP_S3_ENDPOINT"):
        chosen_endpoint = environ["FMAPREP_S3_ENDPOINT"]
    if endpoint is not None:
        chosen_endpoint = endpoint
    chosen_endpoint = chosen_endpoint.strip().rstrip("/")
    if chosen_endpoint and not re.match(r"^https?://[^/\s]+$", chosen_endpoint):
        raise StorageConfError(
            f"S3 endpoint must look like http(s)://host[:port], got {chosen_endpoint!r}"
        )

    chosen_region = (
        region or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or s3.region
    )
    providers = s3.credentials_provider
    if isinstance(providers, str):
        providers = tuple(p.strip() for p in providers.split(",") if p.strip())
    hadoop_aws_version: str | None
    if s3.hadoop_aws_version == "auto":
        hadoop_aws_version = None if on_emr() else AUTO_VERSION
    else:
        hadoop_aws_version = s3.hadoop_aws_version or None
    path_style = s3.path_style_access
    via_s3a = s3.s3_scheme_via_s3a
    return S3Settings(
        endpoint=chosen_endpoint or None,
        path_style_access=bool(chosen_endpoint) if path_style == "auto" else path_style,
        region=chosen_region,
        credentials_provider=providers,
        s3_scheme_via_s3a=not on_emr() if via_s3a == "auto" else via_s3a,
        hadoop_aws_version=hadoop_aws_version,
        directory_marker_retention=s3.directory_marker_retention,
    )


def hadoop_s3a_conf(settings: S3Settings, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Hadoop ``fs.s3a.*`` keys (no ``spark.hadoop.`` prefix), credentials taken from ``env``."""
    environ = os.environ if env is None else env
    conf: dict[str, str] = {
        "fs.s3a.path.style.access": str(settings.path_style_access).lower(),
        "fs.s3a.connection.ssl.enabled": str(settings.ssl_enabled).lower(),
        "fs.s3a.endpoint.region": settings.region,
        "fs.s3a.directory.marker.retention": settings.directory_marker_retention,
    }
    if settings.endpoint:
        conf["fs.s3a.endpoint"] = settings.endpoint
    providers = list(settings.credentials_provider)
    access_key = environ.get("AWS_ACCESS_KEY_ID", "")
    secret_key = environ.get("AWS_SECRET_ACCESS_KEY", "")
    session_token = environ.get("AWS_SESSION_TOKEN", "")
    if access_key and secret_key:
        conf["fs.s3a.access.key"] = access_key
        conf["fs.s3a.secret.key"] = secret_key
        if session_token:
            conf["fs.s3a.session.token"] = session_token
            if TEMPORARY_PROVIDER not in providers:
                providers.insert(0, TEMPORARY_PROVIDER)
    conf["fs.s3a.aws.credentials.provider"] = ",".join(providers)
    if settings.s3_scheme_via_s3a:
        conf["fs.s3.impl"] = "org.apache.hadoop.fs.s3a.S3AFileSystem"
        conf["fs.AbstractFileSystem.s3.impl"] = "org.apache.hadoop.fs.s3a.S3A"
    return conf


def spark_s3a_conf(settings: S3Settings, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Spark conf for S3A: ``spark.hadoop.fs.s3a.*`` and, off EMR, ``spark.jars.packages``.

    Apply each pair with ``SparkSession.builder.config(key, value)`` before the session starts.
    """
    conf = {f"spark.hadoop.{key}": value for key, value in hadoop_s3a_conf(settings, env).items()}
    version = settings.hadoop_aws_version
    if version == AUTO_VERSION:
        version = bundled_hadoop_version()
    if version:
        conf["spark.jars.packages"] = f"org.apache.hadoop:hadoop-aws:{version}"
    return conf


def hdfs_spark_conf(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``spark.hadoop.fs.defaultFS`` from ``FMAPREP_HDFS_URI`` when that is set, else nothing.

    It makes ``hdfs:///path`` (no NameNode named) mean the same NameNode for Spark as for the
    ``hdfs`` tool. Unset (as on EMR), Spark keeps the cluster's ``HADOOP_CONF_DIR`` default.
    """
    environ = os.environ if env is None else env
    uri = environ.get("FMAPREP_HDFS_URI", "").strip().rstrip("/")
    if not uri:
        return {}
    if not re.match(r"^hdfs://[^/\s]+$", uri):
        raise StorageConfError(f"FMAPREP_HDFS_URI must look like hdfs://host:port, got {uri!r}")
    return {"spark.hadoop.fs.defaultFS": uri}


def redact_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A job config (``Config.to_dict()``) safe to store beside the data: secret-looking
    ``spark_conf`` values replaced by ``*****``, and every URL in any string value (an
    ``s3_endpoint`` of ``http://KEY:SECRET@minio:9000``, a proxy in ``spark_conf``) stripped of
    its userinfo and signing parameters."""
    job = dict(config.get("job", {}))
    if isinstance(job.get("spark_conf"), Mapping):
        job["spark_conf"] = redact(job["spark_conf"])
    cleaned: dict[str, Any] = redact_strings({**config, "job": job})
    return cleaned


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fmaprep.storage.s3_settings",
        description="Print the S3 settings or the Spark/Hadoop S3A conf (secrets redacted).",
    )
    parser.add_argument("--conf", help="storage TOML (default: $FMAPREP_STORAGE_CONF or conf/)")
    parser.add_argument("--endpoint", help="S3 endpoint override (like the job's flag)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--spark", action="store_true", help="Spark conf (default)")
    mode.add_argument("--hadoop", action="store_true", help="Hadoop fs.s3a.* conf")
    mode.add_argument("--settings", action="store_true", help="the resolved settings")
    args = parser.parse_args(argv)
    settings = load_s3_settings(args.conf, endpoint=args.endpoint)
    if args.settings:
        print(json.dumps(asdict(settings), indent=2))
    elif args.hadoop:
        print(json.dumps(redact(hadoop_s3a_conf(settings)), indent=2))
    else:
        print(json.dumps(redact(spark_s3a_conf(settings)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
