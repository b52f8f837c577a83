"""template.yaml: parameters a guided deploy can explain, Rules that refuse a combination that would
break calls, and the private media path (cfn-lint and checkov run in `make check`; these pin the
decisions they cannot see)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parents[2]


def _load_template() -> dict[str, Any]:
    document, matches = decode(str(ROOT / "template.yaml"))
    assert not matches and document is not None, matches
    # Plain dicts and lists, intrinsic functions in their long form ({"Ref": ...}, {"Fn::If": ...}).
    loaded: dict[str, Any] = json.loads(json.dumps(document))
    return loaded


TEMPLATE = _load_template()
PARAMETERS: dict[str, dict[str, Any]] = TEMPLATE["Parameters"]
RESOURCES: dict[str, dict[str, Any]] = TEMPLATE["Resources"]


def _variants() -> Any:
    spec = importlib.util.spec_from_file_location("template_variants", ROOT / ".ci" / "template_variants.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- a small evaluator of the Rules' functions, with CloudFormation's parameter values ------------


def _value(node: Any, values: dict[str, Any]) -> Any:
    if isinstance(node, dict) and len(node) == 1:
        ((name, argument),) = node.items()
        if name == "Ref":
            return values[argument]
        if name == "Fn::Equals":
            return _value(argument[0], values) == _value(argument[1], values)
        if name == "Fn::Not":
            return not _value(argument[0], values)
        if name == "Fn::And":
            return all(_value(a, values) for a in argument)
        if name == "Fn::Or":
            return any(_value(a, values) for a in argument)
        if name == "Fn::Contains":
            return _value(argument[1], values) in _value(argument[0], values)
        raise AssertionError(f"the test's evaluator has no {name}")
    return node


def failed_rules(overrides: dict[str, str]) -> list[str]:
    """Names of the Rules whose assertions fail for these parameter values (defaults elsewhere)."""
    values: dict[str, Any] = {}
    for name, parameter in PARAMETERS.items():
        raw = overrides.get(name, parameter.get("Default"))
        if parameter["Type"] == "CommaDelimitedList":
            values[name] = [] if raw is None else [item.strip() for item in str(raw).split(",")]
        else:
            values[name] = raw
    failed = []
    for rule_name, rule in TEMPLATE["Rules"].items():
        if "RuleCondition" in rule and not _value(rule["RuleCondition"], values):
            continue
        if not all(_value(a["Assert"], values) for a in rule["Assertions"]):
            failed.append(rule_name)
    return failed


# --- parameters ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_every_parameter_is_described(name: str) -> None:
    description = PARAMETERS[name].get("Description", "")
    assert len(description) > 20, f"{name}: `sam deploy --guided` shows this Description"


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_free_text_parameters_are_constrained(name: str) -> None:
    parameter = PARAMETERS[name]
    if parameter["Type"] != "String":
        return
    assert {"AllowedPattern", "AllowedValues"} & parameter.keys(), (
        f"{name}: no AllowedPattern or AllowedValues"
    )
    if "AllowedPattern" in parameter:
        assert "ConstraintDescription" in parameter, f"{name}: say what the pattern wants"


def test_every_parameter_is_in_a_group() -> None:
    groups = TEMPLATE["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    grouped = [name for group in groups for name in group["Parameters"]]
    assert sorted(grouped) == sorted(PARAMETERS)


# --- Rules: no default that breaks a call --------------------------------------------------------


def test_the_rules_exist() -> None:
    assert {
        "CascadingNeedsAVoice",
        "TwilioStreamCallsNeedTheAccountSid",
        "PlivoCallsNeedTheAuthId",
        "StreamPipelinesNeedAMediaImage",
        "PlivoNeedsAStreamPipeline",
    } <= TEMPLATE["Rules"].keys()


IMAGE = {"MediaImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/callkit-media:1a2b3c4"}
SID = {"TwilioAccountSid": "AC" + "0" * 32}


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, []),
        ({"Pipeline": "cascading", **IMAGE, **SID}, ["CascadingNeedsAVoice"]),
        ({"Pipeline": "cascading", "CartesiaVoiceId": "v", **IMAGE}, ["TwilioStreamCallsNeedTheAccountSid"]),
        ({"Pipeline": "realtime", **IMAGE, **SID}, []),
        ({"Pipeline": "realtime", "Provider": "plivo", **IMAGE}, ["PlivoCallsNeedTheAuthId"]),
        ({"Pipeline": "managed", "Provider": "plivo", "PlivoAuthId": "MA1"}, ["PlivoNeedsAStreamPipeline"]),
        ({"Pipeline": "realtime", **SID}, ["StreamPipelinesNeedAMediaImage"]),
        (
            {
                "Pipeline": "realtime",
                "VpcId": "vpc-1",
                "PublicSubnetIds": "subnet-1,subnet-2",
                **IMAGE,
                **SID,
            },
            ["ExistingVpcBehindCloudFrontNeedsPrivateSubnets"],
        ),
    ],
)
def test_rules_refuse_what_would_break_a_call(overrides: dict[str, str], expected: list[str]) -> None:
    assert failed_rules(overrides) == expected


def test_the_checked_deployment_shapes_pass_the_rules() -> None:
    for shape, values in _variants().SHAPES.items():
        assert failed_rules(values) == [], shape


def test_the_voice_id_has_no_working_default() -> None:
    """The old empty default deployed, and every cascading call then failed at construction."""
    assert "CascadingNeedsAVoice" in failed_rules({"Pipeline": "cascading", **IMAGE, **SID})


# --- retention, architecture, private media path -------------------------------------------------


def test_a_failed_first_create_does_not_leave_the_table_behind() -> None:
    table = RESOURCES["CallsTable"]
    assert table["DeletionPolicy"] == "RetainExceptOnCreate"
    assert table["UpdateReplacePolicy"] == "Retain"


def test_one_architecture_parameter_drives_functions_layer_and_task() -> None:
    ref = {"Ref": "Architecture"}
    assert TEMPLATE["Globals"]["Function"]["Architectures"] == [ref]
    layer = RESOURCES["CallkitLayer"]
    assert layer["Properties"]["CompatibleArchitectures"] == [ref]
    assert layer["Metadata"]["BuildArchitecture"] == ref
    platform = RESOURCES["MediaTaskDefinition"]["Properties"]["RuntimePlatform"]
    assert platform["CpuArchitecture"] == {"Fn::If": ["IsArm64", "ARM64", "X86_64"]}


def test_the_load_balancer_behind_cloudfront_is_internal_and_admits_only_cloudfront() -> None:
    balancer = RESOURCES["MediaLoadBalancer"]["Properties"]
    assert balancer["Scheme"] == {"Fn::If": ["MediaUsesCloudFront", "internal", "internet-facing"]}
    assert "SecurityGroupIngress" not in RESOURCES["MediaLoadBalancerSecurityGroup"]["Properties"]
    ingress = RESOURCES["MediaLoadBalancerFromCloudFront"]
    assert ingress["Condition"] == "MediaUsesCloudFront"
    assert "CidrIp" not in ingress["Properties"]
    assert ingress["Properties"]["SourcePrefixListId"]["Fn::If"][2] == {
        "Fn::FindInMap": ["CloudFrontOriginFacing", {"Ref": "AWS::Region"}, "PrefixListId"]
    }
    open_ingress = RESOURCES["MediaLoadBalancerFromCarriers"]
    assert open_ingress["Condition"] == "HasMediaCertificate"
    assert open_ingress["Properties"]["FromPort"] == 443


def test_cloudfront_reaches_the_load_balancer_through_a_vpc_origin_with_a_random_header() -> None:
    origin = RESOURCES["MediaCdn"]["Properties"]["DistributionConfig"]["Origins"][0]
    assert origin["VpcOriginConfig"]["VpcOriginId"] == {"Fn::GetAtt": ["MediaVpcOrigin", "Id"]}
    assert "CustomOriginConfig" not in origin
    secret_reference = {"Fn::Sub": "{{resolve:secretsmanager:${MediaOriginSecret}:SecretString}}"}
    assert origin["OriginCustomHeaders"][0]["HeaderValue"] == secret_reference
    conditions = RESOURCES["MediaListenerRule"]["Properties"]["Conditions"]
    header = conditions[1]["Fn::If"][1]["HttpHeaderConfig"]
    assert header["Values"] == [secret_reference]
    assert "GenerateSecretString" in RESOURCES["MediaOriginSecret"]["Properties"]
    assert "AWS::StackId" not in json.dumps(TEMPLATE["Resources"]), "the stack id is guessable"


def test_every_checkov_skip_says_why() -> None:
    for name, resource in RESOURCES.items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert len(skip.get("comment", "")) > 30, f"{name}: {skip['id']} needs its reason"


# --- warm-up: the webhook's HTTP API and the relay's WebSocket API on an alias -------------------


def _parameter_values(overrides: dict[str, str]) -> dict[str, Any]:
    return {name: overrides.get(name, parameter.get("Default")) for name, parameter in PARAMETERS.items()}


def _condition(name: str, values: dict[str, Any]) -> bool:
    return bool(_value(_with_conditions(TEMPLATE["Conditions"][name], values), values))


def _with_conditions(node: Any, values: dict[str, Any]) -> Any:
    """``{"Condition": name}`` inside a condition replaced by its truth value."""
    if isinstance(node, dict):
        if set(node) == {"Condition"}:
            return _condition(node["Condition"], values)
        return {key: _with_conditions(item, values) for key, item in node.items()}
    if isinstance(node, list):
        return [_with_conditions(item, values) for item in node]
    return node


_NO_VALUE = object()


def resolved(node: Any, overrides: dict[str, str]) -> Any:
    """``node`` with every ``Fn::If`` decided for these parameter values, ``AWS::NoValue`` dropped."""
    values = _parameter_values(overrides)

    def walk(item: Any) -> Any:
        if isinstance(item, dict):
            if set(item) == {"Fn::If"}:
                name, then, otherwise = item["Fn::If"]
                return walk(then if _condition(name, values) else otherwise)
            if item == {"Ref": "AWS::NoValue"}:
                return _NO_VALUE
            out = {key: walk(child) for key, child in item.items()}
            return {key: child for key, child in out.items() if child is not _NO_VALUE}
        if isinstance(item, list):
            return [child for child in map(walk, item) if child is not _NO_VALUE]
        return item

    return walk(node)


WARMUPS = ("none", "snapstart", "provisioned")
WEBHOOK_ALIAS = {"Ref": "WebhookFunction.Alias"}
WEBHOOK_FUNCTION = {"Fn::GetAtt": ["WebhookFunction", "Arn"]}


def test_the_webhook_warmup_parameter_mirrors_the_relays() -> None:
    for prefix in ("Webhook", "Relay"):
        warmup = PARAMETERS[f"{prefix}Warmup"]
        assert sorted(warmup["AllowedValues"]) == sorted(WARMUPS)
        assert warmup["Default"] == "snapstart", "chosen from bench/README.md's cold-start figures"
        assert PARAMETERS[f"{prefix}ProvisionedConcurrency"]["MinValue"] == 1


@pytest.mark.parametrize("warmup", WARMUPS)
def test_the_webhook_integration_and_its_permission_name_the_alias_when_warmed(warmup: str) -> None:
    """SnapStart and provisioned concurrency exist on published versions only: traffic to the
    unqualified function would never use them, and a grant on the function does not cover the alias."""
    overrides = {"WebhookWarmup": warmup}
    target = WEBHOOK_FUNCTION if warmup == "none" else WEBHOOK_ALIAS
    integration = resolved(RESOURCES["WebhookIntegration"]["Properties"], overrides)
    assert integration["IntegrationUri"] == target
    assert integration["IntegrationType"] == "AWS_PROXY"
    permission = resolved(RESOURCES["WebhookInvokePermission"]["Properties"], overrides)
    assert permission["FunctionName"] == target
    assert permission["Principal"] == "apigateway.amazonaws.com"
    # The new target's grant exists before the integration moves to it (no refused webhooks).
    assert RESOURCES["WebhookIntegration"]["DependsOn"] in (
        "WebhookInvokePermission",
        ["WebhookInvokePermission"],
    )


@pytest.mark.parametrize("prefix", ["Webhook", "Relay"])
@pytest.mark.parametrize("warmup", WARMUPS)
def test_snapstart_only_for_snapstart_and_never_with_provisioned_concurrency(
    prefix: str, warmup: str
) -> None:
    function = RESOURCES[f"{prefix}Function"]
    properties = resolved(function["Properties"], {f"{prefix}Warmup": warmup, "Pipeline": "managed"})
    assert properties["AutoPublishAlias"] == "live"
    assert properties["VersionDeletionPolicy"] == "Delete", (
        "a SnapStart version's snapshot is billed while it exists"
    )
    apply_on = properties["SnapStart"]["ApplyOn"]
    assert apply_on == ("PublishedVersions" if warmup == "snapstart" else "None")
    provisioned = properties.get("ProvisionedConcurrencyConfig")
    if warmup == "provisioned":
        assert provisioned == {"ProvisionedConcurrentExecutions": {"Ref": f"{prefix}ProvisionedConcurrency"}}
    else:
        assert provisioned is None
    assert not (apply_on == "PublishedVersions" and provisioned), "Lambda refuses both on one version"


def test_every_route_of_the_http_api_goes_through_the_one_webhook_integration() -> None:
    http_api = {"Ref": "HttpApi"}
    integrations = [
        name
        for name, resource in RESOURCES.items()
        if resource["Type"] == "AWS::ApiGatewayV2::Integration"
        and resource["Properties"]["ApiId"] == http_api
    ]
    assert integrations == ["WebhookIntegration"]
    routes = {
        name: resource
        for name, resource in RESOURCES.items()
        if resource["Type"] == "AWS::ApiGatewayV2::Route" and resource["Properties"]["ApiId"] == http_api
    }
    assert {"WebhookRoute", "StatusRoute", "RelayEndedRoute", "TransferRoute"} <= routes.keys()
    for name, route in routes.items():
        assert route["Properties"]["Target"] == {"Fn::Sub": "integrations/${WebhookIntegration}"}, name
        assert "Condition" not in route, f"{name}: the stage's DependsOn names every route"
    assert sorted(RESOURCES["HttpApiDefaultStage"]["DependsOn"]) == sorted(routes)
    assert RESOURCES["HttpApiDefaultStage"]["Properties"]["AutoDeploy"] is True, (
        "a changed integration target reaches the stage without a Deployment resource"
    )
