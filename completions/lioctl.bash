# bash completion for lioctl                                  -*- shell-script -*-
# Candidates come from `lioctl __complete`, which reads the live configuration.
_lioctl()
{
    local cur=${COMP_WORDS[COMP_CWORD]}
    local line=${COMP_LINE:0:COMP_POINT}
    local IFS=$'\n'
    local -a cands
    cands=($(command lioctl __complete bash "$line" "$cur" 2>/dev/null))
    COMPREPLY=()
    local c files=0
    for c in "${cands[@]}"; do
        if [[ $c == __files__ ]]; then files=1; else COMPREPLY+=("$c"); fi
    done
    if (( files )); then
        compopt -o filenames 2>/dev/null
        COMPREPLY+=($(compgen -f -- "$cur"))
    fi
    if (( ${#COMPREPLY[@]} == 1 )) && [[ ${COMPREPLY[0]} == */ || ${COMPREPLY[0]} == *= ]]; then
        compopt -o nospace 2>/dev/null
    fi
    return 0
}
complete -F _lioctl lioctl
