#!/usr/bin/env bash
# Regenerates controlplane-lite/openapi/generated/zz_generated.openapi.go: the
# OpenAPI schemas of the Kubernetes API types skiff serves, produced by
# kube-openapi's openapi-gen from the k8s.io/api and k8s.io/apimachinery
# packages pinned in go.mod. Run it after bumping either module.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
cd "${repo_root}"

# Use exactly the kube-openapi that go.mod pins, so the generated code matches
# the builder and handler packages compiled into skiff.
kube_openapi_version="$(go list -m -f '{{.Version}}' k8s.io/kube-openapi)"

out_pkg="github.com/skiff-sh/skiff/controlplane-lite/openapi/generated"
out_dir="controlplane-lite/openapi/generated"

packages=(
  k8s.io/api/core/v1
  k8s.io/api/apps/v1
  k8s.io/api/autoscaling/v1
  k8s.io/api/coordination/v1
  k8s.io/api/events/v1
  k8s.io/api/apidiscovery/v2
  k8s.io/apimachinery/pkg/apis/meta/v1
  k8s.io/apimachinery/pkg/runtime
  k8s.io/apimachinery/pkg/util/intstr
  k8s.io/apimachinery/pkg/api/resource
  k8s.io/apimachinery/pkg/version
)

header="$(mktemp)"
trap 'rm -f "${header}"' EXIT
cat >"${header}" <<'HEADER'
/*
Code generated for skiff from the Kubernetes API types; see
controlplane-lite/openapi/hack/update-generated.sh.
*/
HEADER

# The API-rule report lists upstream naming quirks we do not own; keep it out
# of the way instead of failing on it.
go run "k8s.io/kube-openapi/cmd/openapi-gen@${kube_openapi_version}" \
  --output-dir "${out_dir}" \
  --output-pkg "${out_pkg}" \
  --output-file zz_generated.openapi.go \
  --go-header-file "${header}" \
  --report-filename /dev/null \
  "${packages[@]}"

gofmt -w "${out_dir}/zz_generated.openapi.go"
