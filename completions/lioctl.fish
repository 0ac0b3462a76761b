# fish completion for lioctl; candidates come from `lioctl __complete`.
function __lioctl_complete
    set -l out (command lioctl __complete fish (commandline -cp) 2>/dev/null)
    for c in $out
        if test "$c" = __files__
            __fish_complete_path (commandline -ct)
        else
            echo $c
        end
    end
end
complete -c lioctl -f -a '(__lioctl_complete)'
