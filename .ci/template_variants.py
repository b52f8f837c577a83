"""Write the template once per deployment shape, with the parameters' defaults set to that shape.

checkov evaluates a template's Conditions with the parameters' defaults, so the default template
(Pipeline=managed) hides every media server resource from it. Each variant here is the same
template with other defaults, written as JSON (the intrinsic functions in their long form):

    python .ci/template_variants.py template.yaml OUTDIR   -> OUTDIR/<shape>.json, one per shape

Used by .ci/sam-checks.sh; tests/unit/test_template.py checks the shapes still pass the Rules.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from cfnlint.decode import decode

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/callkit-media:1a2b3c4"
CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"
TWILIO_STREAM = {"Pipeline": "cascading", "MediaImage": IMAGE, "CartesiaVoiceId": "voice-1"}

#: shape -> parameter values that differ from the template's defaults.
SHAPES: dict[str, dict[str, str]] = {
    "managed": {"PhoneNumber": "+15551234567"},
    # The other WebhookWarmup values ride along with the stream shapes (the default is snapstart).
    "cascading-cloudfront": {
        "PhoneNumber": "+15551234567",
        "TwilioAccountSid": "AC" + "0" * 32,
        "WebhookWarmup": "none",
        **TWILIO_STREAM,
    },
    "realtime-certificate-plivo": {
        "PhoneNumber": "+15551234567",
        "Provider": "plivo",
        "PlivoAuthId": "MAXXXXXXXXXXXXXXXXXX",
        "Pipeline": "realtime",
        "MediaImage": IMAGE,
        "MediaDomainName": "media.example.com",
        "MediaCertificateArn": CERTIFICATE,
        "WebhookWarmup": "provisioned",
    },
}


def load(template: Path) -> dict[str, Any]:
    document, matches = decode(str(template))
    if matches or document is None:
        sys.exit(f"{template}: {matches}")
    return dict(document)


def variant(document: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    out = json.loads(json.dumps(document))
    for name, value in values.items():
        out["Parameters"][name]["Default"] = value
    return out


def main() -> None:
    template, outdir = Path(sys.argv[1]), Path(sys.argv[2])
    outdir.mkdir(parents=True, exist_ok=True)
    document = load(template)
    for shape, values in SHAPES.items():
        (outdir / f"{shape}.json").write_text(json.dumps(variant(document, values), indent=1))
        print(outdir / f"{shape}.json")


if __name__ == "__main__":
    main()
