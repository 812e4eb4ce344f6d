#!/usr/bin/env bash
# Istio's canary upgrade of the namespaces a gate watches:
#
#   deploy/canary-upgrade.sh REVISION [VERSION]
#   meshgate change -- deploy/canary-upgrade.sh 1-2x
#
# istio.io "Canary upgrades" and "Safely upgrade the Istio control plane with revisions and
# tags", step by step, for the namespaces in $MESHGATE_NAMESPACES (or $MESHGATE_NAMESPACE),
# on the cluster of $KUBECONFIG (both set by `meshgate change`):
#
#  1. install control plane revision REVISION beside the one running, with the first of
#     these on the PATH (CANARY_INSTALLER=istioctl|helm|kubectl chooses instead):
#       istioctl  istioctl install -y --set revision=REVISION $ISTIOCTL_INSTALL_ARGS
#                 (istioctl's own version is installed; VERSION is not used)
#       helm      helm install istiod-REVISION istio/istiod -n istio-system
#                 --set revision=REVISION [--version VERSION] $HELM_INSTALL_ARGS
#                 (the chart repository must be known to helm as "istio")
#       kubectl   kubectl apply of deploy/istiod-revision.yaml, the istiod chart rendered
#                 for REVISION and VERSION (the embedded localmesh: no istioctl, no helm);
#                 VERSION defaults to one read from REVISION (1-29-0 is 1.29.0), else to the
#                 version running now; ISTIO_VERSION in the environment also sets it
#  2. wait until istiod-REVISION is Ready;
#  3. relabel each namespace: istio-injection- then istio.io/rev=REVISION (istio-injection
#     takes precedence over istio.io/rev, so it must go first);
#  4. kubectl rollout restart every Deployment there and kubectl rollout status each, then
#     wait until no pod there still runs a sidecar of the old revision (old pods end only
#     after new ones are Ready; their sidecars drain first);
#  5. move the injected gateways of istio-system (Deployments asking for Istio's gateway
#     injection template) to REVISION by labelling their pod template istio.io/rev=REVISION
#     (Istio's in-place gateway upgrade; a rolling restart). CANARY_MOVE_GATEWAYS=false
#     skips this;
#  6. remove each old revision that nothing uses any more: no pod in any namespace runs a
#     sidecar it injected. A revision still in use (another namespace, a gateway) is left
#     in place and the script says by whom. Before removing the `default` revision it
#     points the `default` revision tag at REVISION, so namespaces still labelled
#     istio-injection=enabled keep being injected (by REVISION).
#
# Waits are bounded by CANARY_TIMEOUT seconds each (default 300). Other settings:
# ISTIO_NAMESPACE (istio-system), KUBECTL (kubectl). Exit status: 0 done, 1 a step failed
# (the message says which and what to look at), 2 wrong usage.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PROG=canary-upgrade
KUBECTL=${KUBECTL:-kubectl}
ISTIO_NS=${ISTIO_NAMESPACE:-istio-system}
TIMEOUT=${CANARY_TIMEOUT:-300}
STARTED=$(date +%s)

say() { printf '%s: [%ss] %s\n' "$PROG" "$(($(date +%s) - STARTED))" "$*"; }
die() { printf '%s: %s\n' "$PROG" "$*" >&2; exit 1; }
usage() { sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
k() { "$KUBECTL" "$@"; }

if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi
REVISION=$1
VERSION=${2:-${ISTIO_VERSION:-}}
case $REVISION in
  default) die "REVISION must be a new revision's name, not 'default'" ;;
esac
printf '%s' "$REVISION" | grep -Eq '^[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?$' \
  || die "REVISION '$REVISION' is not a DNS label (lower-case letters, digits, '-'), e.g. 1-29-0"
if [ -n "$VERSION" ]; then
  printf '%s' "$VERSION" | grep -Eq '^[0-9]+\.[0-9]+(\.[0-9]+)?([-+.][A-Za-z0-9.-]+)?$' \
    || die "VERSION '$VERSION' is not an Istio version such as 1.29.0"
fi
NAMESPACES=${MESHGATE_NAMESPACES:-${MESHGATE_NAMESPACE:-}}
[ -n "$NAMESPACES" ] || die "no namespace to upgrade: set MESHGATE_NAMESPACE or MESHGATE_NAMESPACES (meshgate change sets both)"
case $TIMEOUT in ''|*[!0-9]*) die "CANARY_TIMEOUT '$TIMEOUT' is not a number of seconds" ;; esac
command -v "$KUBECTL" >/dev/null || die "$KUBECTL is not on the PATH"

# ---------------------------------------------------------------------------- helpers

# "<namespace>/<pod> <revision>" for every pod injected by Istio (its sidecar.istio.io/status
# names the revision that injected it), in namespace $1 or, with --all, everywhere;
# pods being deleted are left out unless $2 is "terminating-too".
injected_pods() {
  local where=(-n "$1")
  [ "$1" = --all ] && where=(--all-namespaces)
  k get pods "${where[@]}" -o jsonpath='{range .items[*]}{.metadata.namespace}/{.metadata.name}{"|"}{.metadata.deletionTimestamp}{"|"}{.metadata.annotations.sidecar\.istio\.io/status}{"\n"}{end}' \
    | while IFS='|' read -r pod deleting status; do
        [ -n "$status" ] || continue
        [ -z "$deleting" ] || [ "${2:-}" = terminating-too ] || continue
        rev=$(printf '%s' "$status" | sed -n 's/.*"revision":"\([^"]*\)".*/\1/p')
        printf '%s %s\n' "$pod" "${rev:-default}"
      done
}

# Poll `$2...` every second until it succeeds; fail after TIMEOUT seconds saying $1.
wait_for() {
  local what=$1 deadline=$(($(date +%s) + TIMEOUT))
  shift
  until "$@"; do
    [ "$(date +%s)" -lt "$deadline" ] || die "timed out after ${TIMEOUT}s waiting for $what"
    sleep 1
  done
}

none_left() {  # no pod in namespace $1 (being deleted or not) runs revision $2's sidecar
  local pods
  pods=$(injected_pods "$1" terminating-too) || return 1
  [ -z "$(printf '%s\n' "$pods" | awk -v rev="$2" '$2 == rev')" ]
}

suffix() { [ "$1" = default ] && printf '' || printf -- '-%s' "$1"; }

installer() {
  if [ -n "${CANARY_INSTALLER:-}" ]; then
    case $CANARY_INSTALLER in istioctl|helm|kubectl) echo "$CANARY_INSTALLER"; return ;; esac
    die "CANARY_INSTALLER '$CANARY_INSTALLER' is none of istioctl, helm, kubectl"
  fi
  if command -v istioctl >/dev/null; then echo istioctl
  elif command -v helm >/dev/null; then echo helm
  else echo kubectl
  fi
}

running_version() {  # the image tag of an istiod running now
  k get deployments -n "$ISTIO_NS" -l app=istiod \
    -o jsonpath='{range .items[*]}{.spec.template.spec.containers[0].image}{"\n"}{end}' \
    | sed -n 's/.*:\([0-9][^:/]*\)$/\1/p' | head -n 1
}

render() {  # a manifest of deploy/ with its placeholders filled
  sed -e "s/__REVISION__/$REVISION/g" -e "s/__VERSION__/$VERSION/g" "$HERE/$1"
}

set_default_tag() {
  case $INSTALLER in
    istioctl) istioctl tag set default --revision "$REVISION" --overwrite --skip-confirmation ;;
    helm) say "helm: point the default tag at $REVISION yourself (the istiod chart's revisionTags={default}); not done" ;;
    kubectl) sed -e "s/__TAG__/default/g" -e "s/__REVISION__/$REVISION/g" \
               "$HERE/istio-revision-tag.yaml" | k apply -f - ;;
  esac
}

remove_revision() {
  local old=$1 s
  s=$(suffix "$old")
  case $INSTALLER in
    istioctl) istioctl uninstall -y --revision "$old" ;;
    helm)
      if helm status -n "$ISTIO_NS" "istiod$s" >/dev/null 2>&1; then
        helm uninstall -n "$ISTIO_NS" "istiod$s"
      else
        say "helm: no release istiod$s in $ISTIO_NS; remove revision $old with the tool that installed it"
        return 0
      fi ;;
    kubectl)
      k delete -n "$ISTIO_NS" --ignore-not-found deployment "istiod$s"
      k delete -n "$ISTIO_NS" --ignore-not-found service "istiod$s"
      k delete -n "$ISTIO_NS" --ignore-not-found configmap "istio$s" "istio-sidecar-injector$s"
      k delete -n "$ISTIO_NS" --ignore-not-found serviceaccount "istiod$s"
      k delete --ignore-not-found mutatingwebhookconfiguration "istio-sidecar-injector$s" ;;
  esac
}

# ---------------------------------------------------------------------------- the upgrade

for ns in $NAMESPACES; do
  k get namespace "$ns" >/dev/null || die "namespace $ns does not exist (or may not be read)"
done
OLD=$(for ns in $NAMESPACES; do injected_pods "$ns"; done | awk '{print $2}' \
      | grep -vx "$REVISION" | sort -u || true)
INSTALLER=$(installer)
if [ -z "$VERSION" ] && [ "$INSTALLER" = kubectl ]; then
  if printf '%s' "$REVISION" | grep -Eq '^[0-9]+-[0-9]+(-[0-9]+)?$'; then
    VERSION=$(printf '%s' "$REVISION" | tr - .)
    printf '%s' "$VERSION" | grep -Eq '^[0-9]+\.[0-9]+$' && VERSION=$VERSION.0
  else
    VERSION=$(running_version)
    [ -n "$VERSION" ] || die "no VERSION given and no istiod running in $ISTIO_NS to take it from"
  fi
fi
say "canary upgrade of namespace(s) $NAMESPACES to revision $REVISION${VERSION:+ (Istio $VERSION)} with $INSTALLER; old revision(s): ${OLD:-none}"

say "1. installing revision $REVISION"
case $INSTALLER in
  istioctl)
    # shellcheck disable=SC2086 # the user's extra arguments, split as they wrote them
    istioctl install -y --set revision="$REVISION" ${ISTIOCTL_INSTALL_ARGS:-} \
      || die "istioctl install --set revision=$REVISION failed (see its output above)" ;;
  helm)
    # shellcheck disable=SC2086
    helm install "istiod-$REVISION" istio/istiod -n "$ISTIO_NS" --set revision="$REVISION" \
      ${VERSION:+--version "$VERSION"} ${HELM_INSTALL_ARGS:-} \
      || die "helm install istiod-$REVISION failed (see its output above)" ;;
  kubectl)
    render istiod-revision.yaml | k apply -f - \
      || die "kubectl apply of deploy/istiod-revision.yaml failed (see its output above)" ;;
esac

say "2. waiting for istiod-$REVISION"
k rollout status -n "$ISTIO_NS" "deployment/istiod-$REVISION" --timeout="${TIMEOUT}s" \
  || die "istiod-$REVISION did not become Ready within ${TIMEOUT}s: kubectl -n $ISTIO_NS describe deployment istiod-$REVISION"

say "3. relabelling namespace(s) $NAMESPACES: istio.io/rev=$REVISION"
for ns in $NAMESPACES; do
  k label namespace "$ns" istio-injection- >/dev/null 2>&1 || true
  k label namespace "$ns" "istio.io/rev=$REVISION" --overwrite
done

say "4. restarting the Deployments of $NAMESPACES onto revision $REVISION"
for ns in $NAMESPACES; do
  deployments=$(k get deployments -n "$ns" -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
  [ -n "$deployments" ] || { say "$ns has no Deployment"; continue; }
  k rollout restart deployment -n "$ns"
  for d in $deployments; do
    k rollout status -n "$ns" "deployment/$d" --timeout="${TIMEOUT}s" \
      || die "deployment $ns/$d did not roll out within ${TIMEOUT}s: kubectl -n $ns describe deployment $d; kubectl -n $ns get events"
  done
  for old in $OLD; do
    wait_for "the pods of $ns on revision $old to end" none_left "$ns" "$old"
  done
done

if [ "${CANARY_MOVE_GATEWAYS:-true}" = true ]; then
  say "5. moving the injected gateways of $ISTIO_NS to revision $REVISION"
  gateways=$(k get deployments -n "$ISTIO_NS" -o jsonpath='{range .items[*]}{.metadata.name}{"|"}{.spec.template.metadata.annotations.inject\.istio\.io/templates}{"|"}{.spec.template.metadata.labels.istio\.io/rev}{"\n"}{end}' \
             | awk -F '|' -v rev="$REVISION" '$2 == "gateway" && $3 != rev {print $1}')
  for g in $gateways; do
    k patch deployment -n "$ISTIO_NS" "$g" --type merge \
      -p "{\"spec\":{\"template\":{\"metadata\":{\"labels\":{\"istio.io/rev\":\"$REVISION\"}}}}}"
    k rollout status -n "$ISTIO_NS" "deployment/$g" --timeout="${TIMEOUT}s" \
      || die "gateway $ISTIO_NS/$g did not roll out within ${TIMEOUT}s"
    for old in $OLD; do
      wait_for "gateway $g's pods on revision $old to end" none_left "$ISTIO_NS" "$old"
    done
  done
  [ -n "$gateways" ] || say "no injected gateway to move"
else
  say "5. gateways left as they are (CANARY_MOVE_GATEWAYS=${CANARY_MOVE_GATEWAYS})"
fi

say "6. removing the old revision(s) nothing uses any more"
for old in $OLD; do
  users=$(injected_pods --all | awk -v rev="$old" '$2 == rev {print $1}')
  if [ -n "$users" ]; then
    say "revision $old stays: $(printf '%s\n' "$users" | wc -l) pod(s) still run its sidecars, e.g. $(printf '%s\n' "$users" | head -n 5 | tr '\n' ' ')"
    continue
  fi
  if [ "$old" = default ]; then
    say "pointing the default tag at $REVISION (namespaces labelled istio-injection=enabled are injected by it from now on)"
    set_default_tag || die "could not set the default revision tag to $REVISION"
  fi
  remove_revision "$old" || die "removing revision $old failed (see the output above)"
  say "revision $old removed"
done

say "done: namespace(s) $NAMESPACES run revision $REVISION"
