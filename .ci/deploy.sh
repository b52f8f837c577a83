#!/usr/bin/env bash
# `make deploy`: everything a first deploy needs, in order, so that it does not roll back.
#
#   1. the inputs the template's Rules require for this provider and pipeline (a voice id for
#      cascading, the account SID / auth id where REST calls are made), checked here first;
#   2. stream pipelines: the media image, built for the template's Architecture and pushed to an
#      ECR repository created if missing; the region's CloudFront origin-facing prefix list id;
#   3. the SSM SecureStrings the stack reads (carrier auth token; the OpenAI key in every mode, as
#      the relay or the media task uses it; Deepgram and Cartesia for cascading): all must exist
#      before `sam deploy`, since a media task cannot start without them. Missing ones are listed
#      with the `aws ssm put-parameter` command that creates each, and nothing is deployed;
#   4. sam build for the same architecture, then sam deploy with the parameter overrides that
#      `sam deploy --guided` would ask for.
#
# DRY_RUN=1 prints every command instead of running it and calls nothing (no AWS account, no
# Docker needed); the parameters cannot be checked then, so all of them are listed as required.
#
# Inputs (environment; `make deploy VAR=value` passes them): PROVIDER (twilio|plivo), PIPELINE
# (managed|cascading|realtime), PHONE_NUMBER (E.164), TWILIO_ACCOUNT_SID, PLIVO_AUTH_ID,
# CARTESIA_VOICE_ID, TRANSFER_NUMBER, OPENAI_BASE_URL, MEDIA_DOMAIN_NAME + MEDIA_CERTIFICATE_ARN,
# STACK (default callkit), REGION (default AWS_REGION, else us-east-1), ARCH (arm64|x86_64,
# default arm64), REPOSITORY (default callkit-media), TAG (default the git commit, plus -dirty),
# the SSM names TWILIO_AUTH_TOKEN_PARAM, PLIVO_AUTH_TOKEN_PARAM, OPENAI_API_KEY_PARAM,
# DEEPGRAM_API_KEY_PARAM, CARTESIA_API_KEY_PARAM (the template's defaults), EXTRA_OVERRIDES
# (more Key=Value pairs for sam deploy). AWS, DOCKER, SAM override the commands.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

read -r -a aws <<<"${AWS:-aws}"
read -r -a docker <<<"${DOCKER:-docker}"
read -r -a sam <<<"${SAM:-sam}"
dry_run=${DRY_RUN:-0}
[[ "$dry_run" == 0 || "$dry_run" == "" ]] && dry_run=0 || dry_run=1

provider=${PROVIDER:-twilio}
pipeline=${PIPELINE:-managed}
phone=${PHONE_NUMBER:-}
stack=${STACK:-callkit}
region=${REGION:-${AWS_REGION:-us-east-1}}
arch=${ARCH:-arm64}
repository=${REPOSITORY:-callkit-media}
twilio_token_param=${TWILIO_AUTH_TOKEN_PARAM:-/callkit/twilio/auth-token}
plivo_token_param=${PLIVO_AUTH_TOKEN_PARAM:-/callkit/plivo/auth-token}
openai_param=${OPENAI_API_KEY_PARAM:-/callkit/openai/api-key}
deepgram_param=${DEEPGRAM_API_KEY_PARAM:-/callkit/deepgram/api-key}
cartesia_param=${CARTESIA_API_KEY_PARAM:-/callkit/cartesia/api-key}
export SAM_CLI_TELEMETRY=0

say() { printf 'deploy: %s\n' "$*"; }
die() { printf 'deploy: %s\n' "$*" >&2; exit 1; }
# One word as the shell reads it: bare when safe, else single-quoted.
quote() {
    if [[ "$1" =~ ^[A-Za-z0-9_./:=,+@%-]+$ ]]; then
        printf '%s' "$1"
    else
        printf "'%s'" "${1//\'/\'\\\'\'}"
    fi
}
# Runs a command, or with DRY_RUN prints it (quoted, runnable as printed).
run() {
    if ((dry_run)); then
        printf '+'
        for word in "$@"; do printf ' '; quote "$word"; done
        printf '\n'
    else
        "$@"
    fi
}

# --- 1. inputs (the template's Rules, checked before anything is called) -----------------------
problems=()
case "$provider" in twilio | plivo) ;; *) problems+=("PROVIDER must be twilio or plivo (got '$provider')") ;; esac
case "$pipeline" in managed | cascading | realtime) ;; *) problems+=("PIPELINE must be managed, cascading or realtime (got '$pipeline')") ;; esac
case "$arch" in arm64 | x86_64) ;; *) problems+=("ARCH must be arm64 or x86_64 (got '$arch')") ;; esac
[[ "$phone" =~ ^\+[1-9][0-9]{1,14}$ ]] || problems+=("PHONE_NUMBER: the number callers dial, E.164 (+15551234567)")
[[ "$provider" == plivo && "$pipeline" == managed ]] && problems+=("Plivo has no managed mode: PIPELINE=cascading or realtime")
stream=0
[[ "$pipeline" == cascading || "$pipeline" == realtime ]] && stream=1
if ((stream)) && [[ "$provider" == twilio && -z "${TWILIO_ACCOUNT_SID:-}" ]]; then
    problems+=("TWILIO_ACCOUNT_SID (AC...): stream calls hang up and transfer through Twilio's REST API")
fi
if [[ "$provider" == plivo && -z "${PLIVO_AUTH_ID:-}" ]]; then
    problems+=("PLIVO_AUTH_ID: Plivo calls hang up and transfer through Plivo's REST API")
fi
if [[ "$pipeline" == cascading && -z "${CARTESIA_VOICE_ID:-}" ]]; then
    problems+=("CARTESIA_VOICE_ID: the Cartesia voice a cascading call speaks with")
fi
if [[ -n "${MEDIA_DOMAIN_NAME:-}" && -z "${MEDIA_CERTIFICATE_ARN:-}" || -z "${MEDIA_DOMAIN_NAME:-}" && -n "${MEDIA_CERTIFICATE_ARN:-}" ]]; then
    problems+=("MEDIA_DOMAIN_NAME and MEDIA_CERTIFICATE_ARN go together")
fi
if ((${#problems[@]})); then
    printf 'deploy: missing or wrong inputs (make deploy VAR=value ...):\n' >&2
    printf '  - %s\n' "${problems[@]}" >&2
    exit 2
fi

overrides=(
    "Architecture=$arch" "Provider=$provider" "Pipeline=$pipeline" "PhoneNumber=$phone"
    "TwilioAuthTokenParameter=$twilio_token_param" "PlivoAuthTokenParameter=$plivo_token_param"
    "OpenAIApiKeyParameter=$openai_param"
)
[[ -n "${TWILIO_ACCOUNT_SID:-}" ]] && overrides+=("TwilioAccountSid=$TWILIO_ACCOUNT_SID")
[[ -n "${PLIVO_AUTH_ID:-}" ]] && overrides+=("PlivoAuthId=$PLIVO_AUTH_ID")
[[ -n "${TRANSFER_NUMBER:-}" ]] && overrides+=("TransferNumber=$TRANSFER_NUMBER")
[[ -n "${OPENAI_BASE_URL:-}" ]] && overrides+=("OpenAIBaseUrl=$OPENAI_BASE_URL")

# --- 2. the media image and the prefix list (stream pipelines) ---------------------------------
if ((stream)); then
    overrides+=("DeepgramApiKeyParameter=$deepgram_param" "CartesiaApiKeyParameter=$cartesia_param")
    [[ -n "${CARTESIA_VOICE_ID:-}" ]] && overrides+=("CartesiaVoiceId=$CARTESIA_VOICE_ID")
    if [[ -n "${MEDIA_DOMAIN_NAME:-}" ]]; then
        overrides+=("MediaDomainName=$MEDIA_DOMAIN_NAME" "MediaCertificateArn=$MEDIA_CERTIFICATE_ARN")
    fi
    tag=${TAG:-$(git rev-parse --short HEAD 2>/dev/null || date +%Y%m%d%H%M%S)}
    # A new tag per build: a redeploy with the same image reference starts no new tasks.
    [[ -z "${TAG:-}" && -n "$(git status --porcelain 2>/dev/null)" ]] && tag="$tag-dirty-$(date +%s)"
    if ((dry_run)); then
        account=${AWS_ACCOUNT_ID:-ACCOUNT}
        run "${aws[@]}" sts get-caller-identity --query Account --output text
    else
        account=$("${aws[@]}" sts get-caller-identity --query Account --output text)
    fi
    registry="$account.dkr.ecr.$region.amazonaws.com"
    image="$registry/$repository:$tag"
    say "media image: $image (linux/$arch)"
    describe=("${aws[@]}" ecr describe-repositories --region "$region" --repository-names "$repository")
    create=("${aws[@]}" ecr create-repository --region "$region" --repository-name "$repository"
        --image-scanning-configuration scanOnPush=true --image-tag-mutability IMMUTABLE)
    if ((dry_run)); then
        run "${describe[@]}"
        say "(only if that fails: the repository is missing)"
        run "${create[@]}"
    elif ! "${describe[@]}" >/dev/null 2>&1; then
        say "creating the ECR repository $repository"
        "${create[@]}" >/dev/null
    fi
    if ((dry_run)); then
        printf '+ %s ecr get-login-password --region %s | %s login --username AWS --password-stdin %s\n' \
            "${aws[*]}" "$region" "${docker[*]}" "$registry"
    else
        "${aws[@]}" ecr get-login-password --region "$region" \
            | "${docker[@]}" login --username AWS --password-stdin "$registry"
    fi
    # buildx emulates the other architecture when the machine's differs (QEMU binfmt).
    run "${docker[@]}" buildx build --platform "linux/$arch" --file media_server/Dockerfile \
        --tag "$image" --push .
    overrides+=("MediaImage=$image")

    if [[ -z "${MEDIA_CERTIFICATE_ARN:-}" ]]; then
        lookup=("${aws[@]}" ec2 describe-managed-prefix-lists --region "$region"
            --filters Name=prefix-list-name,Values=com.amazonaws.global.cloudfront.origin-facing
            --query "PrefixLists[0].PrefixListId" --output text)
        if ((dry_run)); then
            run "${lookup[@]}"
            prefix_list=PREFIX_LIST_ID
        else
            prefix_list=$("${lookup[@]}")
            [[ "$prefix_list" == pl-* ]] || die "no CloudFront origin-facing prefix list in $region"
        fi
        overrides+=("CloudFrontPrefixListId=$prefix_list")
    fi
fi

# --- 3. the SSM SecureStrings the stack reads ---------------------------------------------------
declare -A env_of=(
    ["$twilio_token_param"]=TWILIO_AUTH_TOKEN ["$plivo_token_param"]=PLIVO_AUTH_TOKEN
    ["$openai_param"]=OPENAI_API_KEY ["$deepgram_param"]=DEEPGRAM_API_KEY ["$cartesia_param"]=CARTESIA_API_KEY
)
needed=("$([[ "$provider" == twilio ]] && echo "$twilio_token_param" || echo "$plivo_token_param")" "$openai_param")
[[ "$pipeline" == cascading ]] && needed+=("$deepgram_param" "$cartesia_param")
missing=()
for name in "${needed[@]}"; do
    check=("${aws[@]}" ssm describe-parameters --region "$region"
        --parameter-filters "Key=Name,Values=$name" --query "Parameters[0].Type" --output text)
    if ((dry_run)); then
        run "${check[@]}"
        missing+=("$name")
    elif [[ "$("${check[@]}")" != SecureString ]]; then
        missing+=("$name")
    fi
done
if ((${#missing[@]})); then
    if ((dry_run)); then
        say "required SSM SecureStrings (dry run: not checked; create any that do not exist):"
    else
        say "missing SSM SecureStrings (the stack reads them; a media task cannot start without them):"
    fi
    for name in "${missing[@]}"; do
        printf '  aws ssm put-parameter --region %s --type SecureString --name %s --value "$%s"\n' \
            "$region" "$name" "${env_of[$name]}"
    done
    ((dry_run)) || die "create them, then run make deploy again"
fi

# --- 4. build and deploy ------------------------------------------------------------------------
lambda_arch=$([[ "$arch" == arm64 ]] && echo aarch64 || echo x86_64)
[[ -n "${EXTRA_OVERRIDES:-}" ]] && read -r -a extra <<<"$EXTRA_OVERRIDES" && overrides+=("${extra[@]}")
run env "LAMBDA_ARCH=$lambda_arch" "${sam[@]}" build --parameter-overrides "Architecture=$arch"
# The command line's --parameter-overrides replaces samconfig.toml's list rather than adding to it.
run "${sam[@]}" deploy --stack-name "$stack" --region "$region" --capabilities CAPABILITY_IAM \
    --resolve-s3 --s3-prefix "$stack" --no-fail-on-empty-changeset --parameter-overrides "${overrides[@]}"
if ((dry_run)); then
    say "dry run: nothing was called"
else
    run "${aws[@]}" cloudformation describe-stacks --region "$region" --stack-name "$stack" \
        --query "Stacks[0].Outputs[?OutputKey=='ConsoleInstructions'].OutputValue" --output text
fi
