#!/usr/bin/env bash
# Usage: scripts/emr-create-cluster.sh --bucket BUCKET [options] [--dry-run]
#   Create an EMR 7 cluster (Amazon Linux 2023, Spark 3.5, Java 17) whose nodes get fmaprep from
#   the bootstrap action bootstrap/install-fmaprep.sh (pinned wheel + bootstrap/requirements-emr.txt
#   into /usr/bin/python3.11), and Spark pointed at that Python by conf/emr-configurations.json.
#
#   --bucket B         S3 bucket for code and logs (required); code under s3://B/PREFIX/,
#                      logs under s3://B/PREFIX/logs/
#   --prefix P         key prefix (default fmaprep)
#   --name N           cluster name (default fmaprep)
#   --release R        EMR release label (default emr-7.5.0)
#   --instance-type T  (default m5.xlarge)   --core-count N  core nodes (default 2)
#   --region R         AWS region (default: the CLI's configured one)
#   --subnet S         EC2 subnet id (optional)   --key-name K  EC2 key pair (optional)
#   --service-role R   (default EMR_DefaultRole)
#   --instance-profile P  EC2 instance profile (default EMR_EC2_DefaultRole; it needs
#                      s3:GetObject/PutObject/ListBucket on the bucket, see docs/emr.md)
#   --upload           copy the wheel (built now into dist/), the bootstrap script and the
#                      requirements to s3://B/PREFIX/ first
#   --endpoint-url U   send every aws call (s3 and emr) to this endpoint: a local AWS API
#                      emulator in the tests (awscli 1.x's emr commands ignore AWS_ENDPOINT_URL)
#   --dry-run          print the exact commands instead of running them
#
#   Example: scripts/emr-create-cluster.sh --bucket my-fma --upload --dry-run
set -euo pipefail
cd "$(dirname "$0")/.."

bucket="" prefix=fmaprep name=fmaprep release=emr-7.5.0 instance_type=m5.xlarge core_count=2
region="" subnet="" key_name="" service_role=EMR_DefaultRole instance_profile=EMR_EC2_DefaultRole
upload=0 dry_run=0 endpoint_url=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bucket) bucket=$2; shift 2 ;;
    --prefix) prefix=$2; shift 2 ;;
    --name) name=$2; shift 2 ;;
    --release) release=$2; shift 2 ;;
    --instance-type) instance_type=$2; shift 2 ;;
    --core-count) core_count=$2; shift 2 ;;
    --region) region=$2; shift 2 ;;
    --subnet) subnet=$2; shift 2 ;;
    --key-name) key_name=$2; shift 2 ;;
    --service-role) service_role=$2; shift 2 ;;
    --instance-profile) instance_profile=$2; shift 2 ;;
    --upload) upload=1; shift ;;
    --endpoint-url) endpoint_url=$2; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    -h | --help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "emr-create-cluster.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[[ -n $bucket ]] || { echo "emr-create-cluster.sh: --bucket is required" >&2; exit 2; }

version=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
wheel_name="fmaprep-$version-py3-none-any.whl"
code="s3://$bucket/$prefix"

aws=(aws)
[[ -n $endpoint_url ]] && aws+=(--endpoint-url "$endpoint_url")

me=emr-create-cluster.sh
# shellcheck source=scripts/emr-checks.sh
source scripts/emr-checks.sh
if ((!dry_run)); then
  check_bucket_region "$bucket" "$(emr_region "$region")"
  check_role "$service_role" --service-role
  check_instance_profile "$instance_profile"
fi

run() {  # print (dry run) or execute a command, quoted so it can be pasted
  if ((dry_run)); then
    python3 -c 'import shlex, sys; print(shlex.join(sys.argv[1:]))' "$@"
  else
    "$@"
  fi
}

if ((upload)); then
  if ((dry_run)); then
    echo "# build the wheel: .venv/bin/python -m pip wheel --no-deps -w dist ."
  else
    .venv/bin/python -m pip wheel --quiet --no-deps -w dist .
  fi
  run "${aws[@]}" s3 cp "dist/$wheel_name" "$code/dist/$wheel_name"
  run "${aws[@]}" s3 cp bootstrap/install-fmaprep.sh "$code/bootstrap/install-fmaprep.sh"
  run "${aws[@]}" s3 cp bootstrap/requirements-emr.txt "$code/bootstrap/requirements-emr.txt"
fi

ec2="InstanceProfile=$instance_profile"
[[ -n $subnet ]] && ec2+=",SubnetId=$subnet"
[[ -n $key_name ]] && ec2+=",KeyName=$key_name"
cmd=("${aws[@]}" emr create-cluster
  --name "$name"
  --release-label "$release"
  --applications Name=Hadoop Name=Spark
  --instance-groups
  "InstanceGroupType=MASTER,InstanceCount=1,InstanceType=$instance_type"
  "InstanceGroupType=CORE,InstanceCount=$core_count,InstanceType=$instance_type"
  --bootstrap-actions
  "Path=$code/bootstrap/install-fmaprep.sh,Name=install-fmaprep,Args=[$code/dist/$wheel_name,$code/bootstrap/requirements-emr.txt]"
  --configurations file://conf/emr-configurations.json
  --log-uri "$code/logs/"
  --service-role "$service_role"
  --ec2-attributes "$ec2"
  --tags project=fmaprep
)
[[ -n $region ]] && cmd+=(--region "$region")
run "${cmd[@]}"
