# shellcheck shell=bash
# bench/lib.sh — shared by the bench scripts (sourced, not run).

# remove_project PROJECT: every container (with its anonymous volumes), volume and
# network labelled io.corpintel.project=PROJECT.
remove_project() {
	local project=$1 kind ids
	for kind in container volume network; do
		if [[ $kind == container ]]; then
			ids=$(docker ps -aq --filter "label=io.corpintel.project=$project")
			# shellcheck disable=SC2086 # a list of ids
			[[ -n $ids ]] && docker rm -f -v $ids >/dev/null
		else
			ids=$(docker "$kind" ls -q --filter "label=io.corpintel.project=$project")
			# shellcheck disable=SC2086 # a list of ids
			[[ -n $ids ]] && docker "$kind" rm $ids >/dev/null
		fi
	done
	return 0
}
