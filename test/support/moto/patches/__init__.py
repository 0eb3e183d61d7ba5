"""The gaps between moto 5.2.1 and AWS that stemcell's flow meets, filled as AWS documents the behaviour."""

from __future__ import annotations

from . import autoscaling, awslambda, cloudformation, common, dynamodb, ec2, events, kms, s3, sqs


def apply_all(samples_dir: str, endpoint: str) -> None:
    common.SETTINGS["samples_dir"] = samples_dir
    common.SETTINGS["endpoint"] = endpoint
    import moto.settings

    # CloudFormation custom resources answer on this URL (moto assumes Docker's host name otherwise).
    moto.settings.moto_server_host = lambda: "http://127.0.0.1"
    for module in (events, s3, awslambda, sqs, kms, cloudformation, ec2, autoscaling, dynamodb):
        module.apply()
    common.install_routes()
