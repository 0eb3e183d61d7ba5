#!/usr/bin/env bash
# Builds the two artifacts the CloudFormation templates take from S3 (see README "Deploying to AWS"):
#   dist/subscriber.zip            the member accounts' subscriber function (infra/member.yml), one ESM bundle
#   dist/stemcell-builder.tar.gz   the builder package the EC2 builders unpack (infra/region.yml user data)
# Usage: infra/package-artifacts.sh — run it on Linux with the builders' CPU (x86_64 for region.yml's default
# AMI): the builder package carries node_modules, the Node.js binary of the project's own install included.
# Needs: zip, tar, git, and the project's own node (npm run setup).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
rm -rf dist && mkdir -p dist/subscriber/functions/subscriber

# Same esbuild settings as serverless.yml: ESM, node24, minified, SDK v3 from the Lambda runtime.
esbuild functions/subscriber/handler.ts --bundle --platform=node --target=node24 --format=esm --minify \
  --main-fields=module,main --external:'@aws-sdk/*' \
  --banner:js="import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" \
  --outfile=dist/subscriber/functions/subscriber/handler.mjs
(cd dist/subscriber && zip -qr ../subscriber.zip .)

# The builder runs from a checkout with its dependencies, Node.js 24 included (the `node` package).
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$stage"
(cd "$stage" && npm ci --no-audit --no-fund)
tar -czf dist/stemcell-builder.tar.gz -C "$stage" .
ls -l dist/subscriber.zip dist/stemcell-builder.tar.gz
