"""`make deploy-dry-run` (.ci/deploy.sh with DRY_RUN=1) on a machine with no AWS account: it prints
the image build, the parameter checks and the sam deploy command, and calls nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("make") is None or shutil.which("bash") is None, reason="needs make and bash"
    ),
]


def dry_run(tmp_path: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    # aws, docker and sam stand-ins that record any call: a dry run must make none.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    calls = tmp_path / "calls"
    for tool in ("aws", "docker", "sam"):
        fake = bin_dir / tool
        fake.write_text(f'#!/bin/sh\necho "{tool} $*" >> "{calls}"\nexit 1\n')
        fake.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "HOME": os.environ.get("HOME", str(tmp_path)),
    }
    args = [f"{key}={value}" for key, value in variables.items()]
    result = subprocess.run(
        ["make", "--no-print-directory", "deploy-dry-run", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert not calls.exists(), f"a dry run called {calls.read_text()}"
    return result


def test_cascading_prints_image_parameters_and_deploy(tmp_path: Path) -> None:
    result = dry_run(
        tmp_path,
        PIPELINE="cascading",
        PHONE_NUMBER="+15551234567",
        TWILIO_ACCOUNT_SID="AC" + "0" * 32,
        CARTESIA_VOICE_ID="voice-1",
        TAG="t1",
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    image = "ACCOUNT.dkr.ecr.us-east-1.amazonaws.com/callkit-media:t1"
    assert (
        f"+ docker buildx build --platform linux/arm64 --file media_server/Dockerfile --tag {image} --push ."
        in out
    )
    assert "+ aws ecr describe-repositories --region us-east-1 --repository-names callkit-media" in out
    assert "+ aws ecr create-repository --region us-east-1 --repository-name callkit-media" in out
    assert "docker login --username AWS --password-stdin ACCOUNT.dkr.ecr.us-east-1.amazonaws.com" in out
    assert "com.amazonaws.global.cloudfront.origin-facing" in out
    # Every key the stack reads for cascading, each with the command that creates it: the media
    # task needs the OpenAI key too.
    for name, variable in [
        ("/callkit/twilio/auth-token", "TWILIO_AUTH_TOKEN"),
        ("/callkit/openai/api-key", "OPENAI_API_KEY"),
        ("/callkit/deepgram/api-key", "DEEPGRAM_API_KEY"),
        ("/callkit/cartesia/api-key", "CARTESIA_API_KEY"),
    ]:
        assert f"Values={name} " in out
        assert (
            f'aws ssm put-parameter --region us-east-1 --type SecureString --name {name} --value "${variable}"'
            in out
        )
    assert "/callkit/plivo/auth-token --value" not in out
    assert "+ env LAMBDA_ARCH=aarch64 sam build --parameter-overrides Architecture=arm64" in out
    deploy = next(line for line in out.splitlines() if line.startswith("+ sam deploy "))
    for override in (
        "Architecture=arm64",
        "Provider=twilio",
        "Pipeline=cascading",
        "PhoneNumber=+15551234567",
        "CartesiaVoiceId=voice-1",
        f"MediaImage={image}",
        "TwilioAccountSid=AC",
        "CloudFrontPrefixListId=",
    ):
        assert override in deploy
    assert out.index("docker buildx build") < out.index("put-parameter") < out.index("+ sam deploy")


def test_managed_needs_no_image_and_only_two_keys(tmp_path: Path) -> None:
    result = dry_run(tmp_path, PHONE_NUMBER="+15551234567", ARCH="x86_64")
    assert result.returncode == 0, result.stderr
    assert "docker" not in result.stdout
    assert "--name /callkit/twilio/auth-token" in result.stdout
    assert "--name /callkit/openai/api-key" in result.stdout
    assert "deepgram" not in result.stdout
    assert "Architecture=x86_64" in result.stdout
    assert "LAMBDA_ARCH=x86_64" in result.stdout


def test_inputs_the_rules_require_are_named_before_anything_runs(tmp_path: Path) -> None:
    result = dry_run(tmp_path, PROVIDER="plivo", PIPELINE="cascading")
    assert result.returncode != 0
    for variable in ("PHONE_NUMBER", "PLIVO_AUTH_ID", "CARTESIA_VOICE_ID"):
        assert variable in result.stderr
    assert "sam deploy" not in result.stdout


def test_warmup_parameters_pass_through_extra_overrides(tmp_path: Path) -> None:
    """WebhookWarmup and RelayWarmup keep the template's default (snapstart) unless EXTRA_OVERRIDES
    names them; the script lists only the parameters it must fill in itself."""
    default = dry_run(tmp_path, PHONE_NUMBER="+15551234567")
    assert default.returncode == 0, default.stderr
    deploy = next(line for line in default.stdout.splitlines() if line.startswith("+ sam deploy "))
    assert "Warmup=" not in deploy
    chosen = dry_run(
        tmp_path, PHONE_NUMBER="+15551234567", EXTRA_OVERRIDES="WebhookWarmup=none RelayWarmup=provisioned"
    )
    assert chosen.returncode == 0, chosen.stderr
    deploy = next(line for line in chosen.stdout.splitlines() if line.startswith("+ sam deploy "))
    overrides = deploy.split("--parameter-overrides ", 1)[1].split()
    assert "WebhookWarmup=none" in overrides
    assert "RelayWarmup=provisioned" in overrides
